"""The output dir's layout and the ML Metadata connection: the one home of both.

A run's output dir holds:
- `metadata.db`: ML Metadata (SQLite), every run's executions, artifacts and lineage;
- `pipeline_root/`: the artifacts, one folder per component;
- `serving_model/`: the versions the Pusher wrote, TF Serving's model base path;
- `reports/`: one HTML report per run (`pipeline.ops.report`).

Every entry point and tool finds these through `OutputLayout`, and opens ML Metadata through
`connection_config`.
"""
import dataclasses
import os
from typing import List

from ml_metadata.proto import metadata_store_pb2

METADATA_FILE = "metadata.db"
PIPELINE_ROOT_FOLDER = "pipeline_root"
SERVING_MODEL_FOLDER = "serving_model"
REPORTS_FOLDER = "reports"


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where a run's metadata, artifacts, served versions and reports live under its output dir."""

    output_dir: str

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, METADATA_FILE)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, PIPELINE_ROOT_FOLDER)

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_dir, SERVING_MODEL_FOLDER)

    @property
    def reports_dir(self) -> str:
        return os.path.join(self.output_dir, REPORTS_FOLDER)


# How a connection opens the SQLite file: a run creates it; tools that record write to an
# existing file; readers only read.
CREATE = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
WRITE = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
READ = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY


def connection_config(metadata_path: str, mode: int = CREATE) -> metadata_store_pb2.ConnectionConfig:
    """The ML Metadata connection of a SQLite file, opened with `mode` (CREATE, WRITE or READ).
    With CREATE the file's folder is made now, as a run's first writer needs it."""
    if mode == CREATE:
        os.makedirs(os.path.dirname(os.path.abspath(metadata_path)), exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = mode
    return config


# Set on an execution `abandon_unfinished` marked failed.
ABANDONED_PROPERTY = "abandoned"


def abandon_unfinished(config: metadata_store_pb2.ConnectionConfig) -> List[int]:
    """Marks FAILED every execution still NEW or RUNNING: the work of a run that was killed
    (kill -9, a lost machine) before it could record an outcome. Call it before a run, when no
    other run writes to the same metadata.

    Returns:
        The ids of the executions marked, ascending; [] when the file does not exist yet.
    """
    if config.HasField("sqlite") and not os.path.isfile(config.sqlite.filename_uri):
        return []
    from ml_metadata import metadata_store

    store = metadata_store.MetadataStore(config)
    # Asked of the database, so the cost does not grow with the history of finished runs.
    unfinished = store.get_executions(
        list_options=metadata_store.ListOptions(filter_query="last_known_state = NEW OR last_known_state = RUNNING")
    )
    for execution in unfinished:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = "left unfinished by an interrupted run; marked failed by the next run"
    if unfinished:
        store.put_executions(unfinished)
    return sorted(execution.id for execution in unfinished)
