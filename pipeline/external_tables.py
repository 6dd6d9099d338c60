"""External tables in the pipeline: imported as a tracked artifact, checked, joined in Transform.

- `ExternalTableGen` validates each configured table (`modules.external.TABLES`), copies it
  into its output artifact and records the source URI and the content's SHA-256 in ML
  Metadata. The fingerprint is also the component's parameter, computed when the pipeline
  is built, so a changed table is never answered from the cache: it is imported again, and
  Transform, Trainer and the rest rerun on it.
- `ExternalFeatureCheck` joins every span to the tables and checks the joined columns like
  any other feature: per-span statistics, a schema (value ranges, every trip matched) and
  drift of the newest span against the previous one. The DataGate judges its report.
- `EnrichingTransform` is TFX's Transform with the tables as one more input: its executor
  passes the artifact's files to `preprocessing_fn`, which bakes the join into the graph.
"""
import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
from tfx import types
from tfx import v1 as tfx
from tfx.components.transform import executor as transform_executor
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from modules import external
from modules.preprocessing import EXTERNAL_TABLES_CONFIG_KEY

logger = logging.getLogger(__name__)

# Custom property of the ExternalTables artifact: per table, source URI, SHA-256, rows, keys.
TABLES_PROPERTY = "tables"
# The input of EnrichingTransform that takes ExternalTableGen's output.
EXTERNAL_TABLES_KEY = "external_tables"


class ExternalTables(Artifact):
    """Snapshots of the external tables a run used: one `<name>.csv` per table."""

    TYPE_NAME = "taxi.ExternalTables"


@dataclasses.dataclass(frozen=True)
class ExternalTableSource:
    """Where a table comes from and what its content was when the pipeline was built."""

    name: str
    uri: str
    sha256: str


def file_sha256(uri: str) -> str:
    """Returns the SHA-256 of a file's bytes (any path tf.io.gfile reads)."""
    with tf.io.gfile.GFile(uri, "rb") as table_file:
        return hashlib.sha256(table_file.read()).hexdigest()


class ExternalTableChangedError(RuntimeError):
    """A table's file changed between building the pipeline and running it."""


def table_source(name: str, uri: str, sha256: Optional[str] = None) -> ExternalTableSource:
    """Describes table `name` read from `uri`, fingerprinting the file unless `sha256` is given.

    Args:
        name: One of `modules.external.TABLES`.
        uri: The file: a local path (made absolute, so the record does not depend on the
            working directory) or any URI tf.io.gfile reads, such as gs://.
        sha256: The content's SHA-256, when `uri` is where the pipeline's steps will find the
            file (say inside a container image) and it is not readable here.

    Returns:
        The source, fingerprinted.

    Raises:
        ValueError: when `name` is not one of `modules.external.TABLES`.
        FileNotFoundError: when `sha256` is not given and the file does not exist.
    """
    if name not in external.TABLES:
        raise ValueError(f"unknown external table {name!r}; the model joins {sorted(external.TABLES)}")
    if "://" not in uri and sha256 is None:
        uri = os.path.abspath(uri)
    if sha256 is None and not tf.io.gfile.exists(uri):
        raise FileNotFoundError(f"external table {name!r}: no file at {uri}")
    return ExternalTableSource(name=name, uri=uri, sha256=sha256 or file_sha256(uri))


# The repository's data/ folder, where the shipped, versioned tables live.
REPO_DATA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def shipped_table_path(name: str, data_root: str = REPO_DATA_ROOT) -> str:
    """The path of table `name` under a data root laid out like the shipped `data/`."""
    from pipeline import configs

    return os.path.join(data_root, configs.EXTERNAL_TABLE_FILES[name])


def parse_overrides(values: Sequence[str]) -> Dict[str, str]:
    """Parses `NAME=PATH` strings (a command line's or an environment variable's).

    Args:
        values: e.g. `["us_il_holidays=data/external/us_il_holidays/v2/holidays.csv"]`.

    Returns:
        Table name -> path.

    Raises:
        ValueError: when a value is not NAME=PATH or names an unknown table.
    """
    overrides: Dict[str, str] = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not name or not path:
            raise ValueError(f"external table {value!r} is not NAME=PATH")
        if name not in external.TABLES:
            raise ValueError(f"unknown external table {name!r}; the model joins {sorted(external.TABLES)}")
        overrides[name] = path
    return overrides


def resolve_sources(
    overrides: Optional[Mapping[str, str]] = None, data_root: str = REPO_DATA_ROOT
) -> Tuple[ExternalTableSource, ...]:
    """Every table the model joins, fingerprinted now.

    Args:
        overrides: Table name -> file, replacing the default file of that table.
        data_root: Where the default files are, laid out like the shipped `data/`
            (`pipeline.configs.EXTERNAL_TABLE_FILES`); the repository's `data/` by default.

    Returns:
        One source per table of `modules.external.TABLES`, by name.

    Raises:
        ValueError: when `overrides` names an unknown table.
        FileNotFoundError: when a table's file does not exist.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(external.TABLES))
    if unknown:
        raise ValueError(f"unknown external tables {unknown}; the model joins {sorted(external.TABLES)}")
    return tuple(
        table_source(name, overrides.get(name) or shipped_table_path(name, data_root)) for name in sorted(external.TABLES)
    )


def refingerprint(sources: Sequence[ExternalTableSource]) -> Tuple[ExternalTableSource, ...]:
    """The same files, fingerprinted again: for a process that builds a pipeline per run (the
    watcher, the replay), so each run's parameter describes the file as it is then."""
    return tuple(table_source(source.name, source.uri) for source in sources)


def preprocessing_config(table_files: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """`preprocessing_fn`'s custom_config entry that names each table's file.

    Args:
        table_files: Table name -> file, e.g. `{s.name: s.uri for s in resolve_sources()}`.

    Returns:
        `{modules.preprocessing.EXTERNAL_TABLES_CONFIG_KEY: table_files}`.
    """
    return {EXTERNAL_TABLES_CONFIG_KEY: dict(table_files)}


def sources_json(sources: Sequence[ExternalTableSource]) -> str:
    """Serializes the sources for ExternalTableGen's parameter."""
    return json.dumps([dataclasses.asdict(source) for source in sources], sort_keys=True)


def check_sources(sources: Sequence[ExternalTableSource]) -> None:
    """Raises ValueError unless `sources` names every table the model joins, once each."""
    names = [source.name for source in sources]
    missing = sorted(set(external.TABLES) - set(names))
    unknown = sorted(set(names) - set(external.TABLES))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if missing or unknown or repeated:
        raise ValueError(
            f"external tables: the model joins {sorted(external.TABLES)}; "
            f"missing {missing}, unknown {unknown}, given twice {repeated}"
        )


def table_file(artifact_uri: str, name: str) -> str:
    """The file of table `name` inside an ExternalTables artifact."""
    return os.path.join(artifact_uri, f"{name}.csv")


def table_records(artifact: ExternalTables) -> Dict[str, dict]:
    """What the artifact records per table: source_uri, sha256, rows, first_key, last_key."""
    return json.loads(artifact.get_string_custom_property(TABLES_PROPERTY) or "{}")


def load_tables(artifact_uri: str, names: Sequence[str]) -> Dict[str, external.ExternalTable]:
    """Reads and validates the named tables of an ExternalTables artifact.

    Args:
        artifact_uri: The artifact's folder.
        names: Tables to read, e.g. `table_records(artifact)`'s keys.

    Returns:
        Table name -> table.

    Raises:
        modules.external.ExternalTableError: when a snapshot is malformed.
    """
    return {name: external.read_table(table_file(artifact_uri, name), external.TABLES[name]) for name in names}


def snapshot_tables(sources: str, output_uri: str) -> Dict[str, dict]:
    """Validates each table and copies it into `output_uri`; ExternalTableGen's work.

    Args:
        sources: `sources_json(...)`: name, URI and the SHA-256 the file had when the pipeline
            was built.
        output_uri: The ExternalTables artifact's folder.

    Returns:
        Per table: source_uri, sha256, rows, first_key, last_key.

    Raises:
        ExternalTableChangedError: when a file's content is not the one the pipeline was built for.
        modules.external.ExternalTableError: when a table is not UTF-8 text or is malformed.
    """
    records: Dict[str, dict] = {}
    for source in json.loads(sources):
        with tf.io.gfile.GFile(source["uri"], "rb") as source_file:
            content = source_file.read()
        sha256 = hashlib.sha256(content).hexdigest()
        if sha256 != source["sha256"]:
            raise ExternalTableChangedError(
                f"external table {source['name']!r} ({source['uri']}) changed after the pipeline was built: "
                f"SHA-256 {sha256}, expected {source['sha256']}; build the pipeline again"
            )
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise external.ExternalTableError(
                f"external table {source['name']!r} ({source['uri']}) is not UTF-8 text: {error}"
            ) from error
        table = external.parse_table(text, external.TABLES[source["name"]], source["uri"])
        with tf.io.gfile.GFile(table_file(output_uri, source["name"]), "wb") as snapshot:
            snapshot.write(content)
        records[source["name"]] = {
            "source_uri": source["uri"],
            "sha256": sha256,
            "rows": len(table.keys),
            "first_key": table.key_text(table.keys[0]),
            "last_key": table.key_text(table.keys[-1]),
        }
        logger.info("external table %s: %d rows from %s, sha256 %s", source["name"], len(table.keys), source["uri"], sha256)
    return records


@tfx.dsl.components.component
def ExternalTableGen(
    tables: tfx.dsl.components.OutputArtifact[ExternalTables],
    sources: tfx.dsl.components.Parameter[str],
    code_fingerprint: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Validates each external table and snapshots it into the artifact, with its fingerprint.

    `sources` is `sources_json(...)`; `code_fingerprint` is part of the cache key only. A file
    changed since the pipeline was built, or a malformed one, fails the run here, before
    anything reads it (see `snapshot_tables`).
    """
    del code_fingerprint
    records = snapshot_tables(sources, tables.uri)
    tables.set_string_custom_property(TABLES_PROPERTY, json.dumps(records, sort_keys=True))


class EnrichingTransformSpec(standard_component_specs.TransformSpec):
    """TFX's TransformSpec with the external tables as one more input."""

    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        EXTERNAL_TABLES_KEY: ChannelParameter(type=ExternalTables),
    }


class EnrichingTransformExecutor(transform_executor.Executor):
    """TFX's Transform executor; first puts the tables' files into `preprocessing_fn`'s custom_config."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Runs TFX's Transform with the tables' files in `preprocessing_fn`'s custom_config."""
        input_dict = dict(input_dict)
        tables_artifact = input_dict.pop(EXTERNAL_TABLES_KEY)[0]
        config_key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom_config = json_utils.loads(exec_properties.get(config_key) or "null") or {}
        custom_config.update(
            preprocessing_config({name: table_file(tables_artifact.uri, name) for name in table_records(tables_artifact)})
        )
        super().Do(input_dict, output_dict, {**exec_properties, config_key: json_utils.dumps(custom_config)})


class EnrichingTransform(Transform):
    """Transform whose `preprocessing_fn` joins the external tables of an ExternalTableGen.

    Materializes transformed examples, as TFX's Transform does by default, but computes no
    pre- or post-transform statistics (StatisticsGen already has the raw data's).
    """

    SPEC_CLASS = EnrichingTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EnrichingTransformExecutor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        external_tables: types.BaseChannel,
        preprocessing_fn: str,
        custom_config: Optional[Dict] = None,
    ) -> None:
        """Builds the component.

        Args:
            examples: Raw examples.
            schema: The raw data's schema.
            external_tables: An ExternalTableGen's `tables` output.
            preprocessing_fn: Dotted path of a `preprocessing_fn(inputs, custom_config)`.
            custom_config: Passed to `preprocessing_fn`, with the tables' files added at run time
                under `modules.preprocessing.EXTERNAL_TABLES_CONFIG_KEY`.
        """
        artifact = standard_artifacts
        spec = EnrichingTransformSpec(
            examples=examples,
            schema=schema,
            external_tables=external_tables,
            preprocessing_fn=preprocessing_fn,
            custom_config=json_utils.dumps(custom_config or {}),
            force_tf_compat_v1=0,
            # Pre-transform statistics would repeat StatisticsGen's, and nothing here reads the
            # post-transform ones: skipping both saves 2 to 4 s of every run.
            disable_statistics=1,
            transform_graph=types.Channel(type=artifact.TransformGraph),
            transformed_examples=types.Channel(type=artifact.Examples),
            updated_analyzer_cache=types.Channel(type=artifact.TransformCache),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
