"""Return serving to an earlier pushed version, or back to "newest version", deleting nothing.

    python -m pipeline rollback --serving-dir outputs/serving_model --list
    python -m pipeline rollback --serving-dir outputs/serving_model --to 1795786429 \\
        --grpc localhost:8500 --metadata outputs/metadata.db
    python -m pipeline rollback --serving-dir outputs/serving_model --latest --grpc localhost:8500

A rollback is a version policy, not a deletion: it writes a ModelServerConfig that pins the
chosen version (`specific`) and labels it `stable`, to `--config-file` (default
`models.config` next to the serving directory) so a restarted server keeps it
(`--model_config_file=...`), and, with `--grpc`, sends it to the running server with
HandleReloadConfigRequest (TF Serving and the local server both take it). `--latest` writes
the default policy back (the newest version serves). With `--metadata`, the rollback is
recorded in ML Metadata as a `ServingRollback` execution whose input is the chosen version's
PushedModel artifact, so lineage shows when serving went back and to what.
"""
import argparse
import logging
import os
import sys
import time
from typing import List, Optional, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops import metadata
from serving.versions import version_numbers

logger = logging.getLogger(__name__)

STABLE_LABEL = "stable"
ROLLBACK_EXECUTION_TYPE = "ServingRollback"


class RollbackError(ValueError):
    """The rollback cannot be done as asked; the message says why."""


def pushed_versions(serving_dir: str) -> List[int]:
    """Returns the complete version folders (holding saved_model.pb) under `serving_dir`, ascending."""
    if not os.path.isdir(serving_dir):
        raise RollbackError(f"serving directory {serving_dir!r} does not exist")
    return version_numbers(serving_dir)


def model_config(base_path: str, version: Optional[int], model_name: str = SERVING_MODEL_NAME) -> model_server_config_pb2.ModelServerConfig:
    """Returns the ModelServerConfig that serves `version` (labelled stable), or the newest version when None."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name = model_name
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    if version is None:
        entry.model_version_policy.latest.num_versions = 1
    else:
        entry.model_version_policy.specific.versions.append(version)
        entry.version_labels[STABLE_LABEL] = version
    return config


def _record_in_metadata(metadata_path: str, version: Optional[int], config_file: str) -> int:
    """Adds a ServingRollback execution to ML Metadata, linked to the version's PushedModel."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    store = metadata_store.MetadataStore(metadata.connection_config(metadata_path, metadata.WRITE))
    execution_type = metadata_store_pb2.ExecutionType(name=ROLLBACK_EXECUTION_TYPE)
    for name in ("to_version", "config_file", "time"):
        execution_type.properties[name] = metadata_store_pb2.STRING
    type_id = store.put_execution_type(execution_type, can_add_fields=True)
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.properties["to_version"].string_value = "latest" if version is None else str(version)
    execution.properties["config_file"].string_value = config_file
    execution.properties["time"].string_value = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = []
    if version is not None:
        pushed = [
            artifact
            for artifact in store.get_artifacts_by_type("PushedModel")
            if artifact.custom_properties.get("pushed_version") is not None
            and artifact.custom_properties["pushed_version"].string_value == str(version)
        ]
        if not pushed:
            raise RollbackError(f"ML Metadata {metadata_path!r} has no PushedModel for version {version}")
        event = metadata_store_pb2.Event(artifact_id=pushed[-1].id, type=metadata_store_pb2.Event.INPUT)
        events.append((pushed[-1], event))
    execution_id, _, _ = store.put_execution(execution, artifact_and_events=events, contexts=[])
    return execution_id


def rollback(
    serving_dir: str,
    version: Optional[int],
    config_file: str,
    base_path: Optional[str] = None,
    grpc_address: Optional[str] = None,
    metadata_path: Optional[str] = None,
) -> model_server_config_pb2.ModelServerConfig:
    """Makes serving use `version` (None: the newest again); see the module docstring.

    Raises:
        RollbackError: when the version is not a complete pushed version.
    """
    versions = pushed_versions(serving_dir)
    if version is not None and version not in versions:
        raise RollbackError(f"version {version} is not a complete pushed version in {serving_dir!r}; there are {versions}")
    config = model_config(base_path or os.path.abspath(serving_dir), version)
    text = text_format.MessageToString(config)
    tmp_path = f"{config_file}.tmp"
    with open(tmp_path, "w") as config_out:
        config_out.write(text)
    os.replace(tmp_path, config_file)  # a polling server never reads half a file
    if grpc_address:
        from serving.client import reload_config_grpc

        reload_config_grpc(grpc_address, text)
    if metadata_path:
        _record_in_metadata(metadata_path, version, os.path.abspath(config_file))
    return config


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipeline rollback", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving-dir", required=True, help="the Pusher's serving_model directory")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, help="the version to serve")
    target.add_argument("--latest", action="store_true", help="serve the newest version again")
    target.add_argument("--list", action="store_true", help="list the pushed versions")
    parser.add_argument("--config-file", help="where to write the ModelServerConfig (default: models.config next to --serving-dir)")
    parser.add_argument("--base-path", help="base_path the server sees (default: --serving-dir; /models/big_tipper in the container)")
    parser.add_argument("--grpc", help="host:port of a running server to reload now")
    parser.add_argument("--metadata", help="ML Metadata SQLite file to record the rollback in")
    args = parser.parse_args(argv)
    try:
        if args.list:
            print("\n".join(str(version) for version in pushed_versions(args.serving_dir)))
            return 0
        config_file = args.config_file or os.path.join(os.path.dirname(os.path.abspath(args.serving_dir)), "models.config")
        rollback(args.serving_dir, None if args.latest else args.to, config_file, args.base_path, args.grpc, args.metadata)
    except RollbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    what = "the newest version" if args.latest else f"version {args.to} (label {STABLE_LABEL})"
    print(f"serving {what}: wrote {config_file}{'; reloaded ' + args.grpc if args.grpc else ''}. Nothing was deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
