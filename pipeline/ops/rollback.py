"""Return serving to an earlier pushed version, or back to "newest version", deleting nothing.

    python -m pipeline rollback --output-dir outputs --list
    python -m pipeline rollback --output-dir outputs --to 1795786429 --grpc localhost:8500
    python -m pipeline rollback --output-dir outputs --latest --grpc localhost:8500
    python -m pipeline rollback --serving-dir /srv/models/big_tipper --to 1795786429

A rollback is a version policy, not a deletion: it writes a ModelServerConfig that pins the
chosen version (`specific`) and labels it `stable`, to `--config-file` (default
`models.config` next to the serving directory) so a restarted server keeps it
(`--model_config_file=...`), and, with `--grpc`, sends it to the running server with
HandleReloadConfigRequest (TF Serving and the local server both take it). `--latest` writes
the default policy back (the newest version serves). With `--output-dir` (the serving
directory is then OUTPUT_DIR/serving_model unless `--serving-dir` says otherwise), the rollback
is recorded in the output dir's ML Metadata (its SQLite file, or `--metadata-url`) as a
`ServingRollback` execution whose input is the chosen version's PushedModel artifact, so
lineage shows when serving went back and to what; it holds the output dir's writer lock, so
no pipeline run pushes while it pins (exit 75 while another process writes).
"""
import argparse
import contextlib
import logging
import os
import sys
import time
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops import metadata, writer_lock
from pipeline.ops.metadata import OutputLayout
from serving import client
from serving.versions import STABLE_LABEL, model_config_path, version_numbers

logger = logging.getLogger(__name__)

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
    if version is None:
        config = model_server_config_pb2.ModelServerConfig()
        entry = config.model_config_list.config.add()
        entry.name = model_name
        entry.base_path = base_path
        entry.model_platform = "tensorflow"
        entry.model_version_policy.latest.num_versions = 1
        return config
    return pinned_config(base_path, {STABLE_LABEL: version}, model_name)


def pinned_config(base_path: str, labels: Mapping[str, int], model_name: str = SERVING_MODEL_NAME) -> model_server_config_pb2.ModelServerConfig:
    """Returns the ModelServerConfig that loads exactly the labelled versions (`specific`), each
    under its label (e.g. {"stable": 1795786429, "canary": 1795786529})."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name = model_name
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    entry.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
    for label, version in sorted(labels.items()):
        entry.version_labels[label] = version
    return config


def write_config(config: model_server_config_pb2.ModelServerConfig, config_file: str) -> str:
    """Writes `config` as text to `config_file` in one step (a polling server never reads half a
    file); returns the text."""
    text = text_format.MessageToString(config)
    tmp_path = f"{config_file}.tmp"
    with open(tmp_path, "w") as config_out:
        config_out.write(text)
    os.replace(tmp_path, config_file)
    return text


def pushed_model_artifact(store, version: int, where: str):
    """The PushedModel artifact ML Metadata (`where`, for the message) holds for `version`.

    Raises:
        RollbackError: when the store never recorded a push of that version.
    """
    pushed = [
        artifact
        for artifact in store.get_artifacts_by_type("PushedModel")
        if artifact.custom_properties.get("pushed_version") is not None
        and artifact.custom_properties["pushed_version"].string_value == str(version)
    ]
    if not pushed:
        raise RollbackError(f"ML Metadata ({where}) has no PushedModel for version {version}")
    return pushed[-1]


def record_serving_change(store, execution_type_name: str, properties: Mapping[str, str], pushed_models: Sequence = ()) -> int:
    """Adds a COMPLETE execution of `execution_type_name` with string `properties` to ML Metadata,
    with the given PushedModel artifacts as its inputs, so lineage shows what serving did and
    with which versions; returns the execution's id."""
    from ml_metadata.proto import metadata_store_pb2

    execution_type = metadata_store_pb2.ExecutionType(name=execution_type_name)
    for name in properties:
        execution_type.properties[name] = metadata_store_pb2.STRING
    # Steps of one type may record different properties (a compare its numbers, a promote the
    # previous stable), so the type grows and any one execution may omit some.
    type_id = store.put_execution_type(execution_type, can_add_fields=True, can_omit_fields=True)
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    for name, value in properties.items():
        execution.properties[name].string_value = value
    events = [
        (pushed_model, metadata_store_pb2.Event(artifact_id=pushed_model.id, type=metadata_store_pb2.Event.INPUT))
        for pushed_model in pushed_models
    ]
    execution_id, _, _ = store.put_execution(execution, artifact_and_events=events, contexts=[])
    return execution_id


def utc_now() -> str:
    """The time now, as the serving tools record it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def recording(output_dir: Optional[str], setting: metadata.MetadataSetting) -> Iterator[Optional[Tuple[Any, str]]]:
    """(store, where) of the output dir's ML Metadata under its writer lock for the `with` block,
    or None when `output_dir` is None (nothing is recorded).

    Raises:
        RollbackError: when the metadata setting does not fit the output dir or does not open.
        writer_lock.OutputBusyError: when another process writes to the output dir.
    """
    if output_dir is None:
        yield None
        return
    output_dir = os.path.abspath(output_dir)
    try:
        with writer_lock.writing(output_dir, setting) as store:
            yield store, setting.describe(output_dir)
    except (metadata.MetadataSettingError, writer_lock.MetadataLocationError) as error:
        raise RollbackError(str(error)) from None


def _record_in_metadata(store, pushed_model, version: Optional[int], config_file: str) -> int:
    """Adds a ServingRollback execution to ML Metadata, linked to the version's PushedModel."""
    properties = {"to_version": "latest" if version is None else str(version), "config_file": config_file, "time": utc_now()}
    return record_serving_change(store, ROLLBACK_EXECUTION_TYPE, properties, [pushed_model] if pushed_model is not None else [])


def rollback(
    serving_dir: str,
    version: Optional[int],
    config_file: str,
    base_path: Optional[str] = None,
    grpc_address: Optional[str] = None,
    output_dir: Optional[str] = None,
    setting: metadata.MetadataSetting = metadata.MetadataSetting(),
) -> model_server_config_pb2.ModelServerConfig:
    """Makes serving use `version` (None: the newest again); see the module docstring.

    Args:
        serving_dir: The Pusher's serving directory.
        version: The version to pin, or None for the newest.
        config_file: Where the ModelServerConfig is written.
        base_path: The base_path the server sees (default: `serving_dir`).
        grpc_address: host:port of a running server to reload now, or None.
        output_dir: The output dir whose ML Metadata records the rollback (under its writer
            lock), or None to record nothing.
        setting: Where that output dir's ML Metadata lives.

    Raises:
        RollbackError: when the version is not a complete pushed version, or the metadata has
            no push of it (nothing is written then).
        writer_lock.OutputBusyError: when another process writes to the output dir.
    """
    with recording(output_dir, setting) as recorder:
        return _rollback(serving_dir, version, config_file, base_path, grpc_address, recorder)


def _rollback(serving_dir, version, config_file, base_path, grpc_address, recorder) -> model_server_config_pb2.ModelServerConfig:
    """`rollback`'s work; `recorder` is (store, where) or None."""
    versions = pushed_versions(serving_dir)
    if version is not None and version not in versions:
        raise RollbackError(f"version {version} is not a complete pushed version in {serving_dir!r}; there are {versions}")
    pushed_model = pushed_model_artifact(recorder[0], version, recorder[1]) if recorder and version is not None else None
    config = model_config(base_path or os.path.abspath(serving_dir), version)
    # The server first: a config it refuses is written nowhere.
    if grpc_address:
        reload_server(grpc_address, config)
    write_config(config, config_file)
    if recorder:
        _record_in_metadata(recorder[0], pushed_model, version, os.path.abspath(config_file))
    return config


def _available_versions(grpc_address: str, model_name: str) -> List[int]:
    try:
        status = client.model_status_grpc(grpc_address, model_name)
    except client.ServingError as error:
        if error.grpc_code is not None and error.grpc_code.name == "NOT_FOUND":
            return []
        raise
    return sorted(int(entry["version"]) for entry in status.get("model_version_status", []) if entry.get("state") == "AVAILABLE")


def reload_server(grpc_address: str, config: model_server_config_pb2.ModelServerConfig, model_name: str = SERVING_MODEL_NAME, timeout_s: float = 300.0) -> None:
    """Makes the running server serve `config`, labels included (HandleReloadConfigRequest).

    TF Serving refuses a label on a version that is not loaded yet, and its reload may return
    before a newly listed version is, so a config whose labels name an unloaded version is sent
    twice: first with only the labels whose versions are loaded (the others wait), then, once
    every listed version is AVAILABLE, as it is.

    Raises:
        client.ServingError: when the server refuses a config or does not answer.
        RollbackError: when a listed version does not become AVAILABLE within `timeout_s`.
    """
    [entry] = [entry for entry in config.model_config_list.config if entry.name == model_name]
    wanted = set(entry.model_version_policy.specific.versions)
    available = set(_available_versions(grpc_address, model_name))
    if set(entry.version_labels.values()) <= available:
        client.reload_config_grpc(grpc_address, text_format.MessageToString(config), timeout_s)
        return
    first = model_server_config_pb2.ModelServerConfig()
    first.CopyFrom(config)
    [first_entry] = [entry for entry in first.model_config_list.config if entry.name == model_name]
    for label, version in entry.version_labels.items():
        if version not in available:
            del first_entry.version_labels[label]
    client.reload_config_grpc(grpc_address, text_format.MessageToString(first), timeout_s)
    deadline = time.monotonic() + timeout_s
    while not wanted <= set(_available_versions(grpc_address, model_name)):
        if time.monotonic() > deadline:
            raise RollbackError(f"versions {sorted(wanted)} of {model_name!r} did not all become AVAILABLE on {grpc_address} within {timeout_s:.0f}s")
        time.sleep(0.2)
    client.reload_config_grpc(grpc_address, text_format.MessageToString(config), timeout_s)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipeline rollback", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", help="the pipeline's output dir: record the rollback in its ML Metadata (serving dir OUTPUT_DIR/serving_model)")
    parser.add_argument("--serving-dir", help="the Pusher's serving_model directory (default: OUTPUT_DIR/serving_model)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, help="the version to serve")
    target.add_argument("--latest", action="store_true", help="serve the newest version again")
    target.add_argument("--list", action="store_true", help="list the pushed versions")
    parser.add_argument("--config-file", help="where to write the ModelServerConfig (default: models.config next to --serving-dir)")
    parser.add_argument("--base-path", help="base_path the server sees (default: --serving-dir; /models/big_tipper in the container)")
    parser.add_argument("--grpc", help="host:port of a running server to reload now")
    metadata.add_metadata_flag(parser)
    args = parser.parse_args(argv)
    if not args.serving_dir and not args.output_dir:
        parser.error("give --output-dir (records the rollback in its ML Metadata) or --serving-dir")
    serving_dir = args.serving_dir or OutputLayout(os.path.abspath(args.output_dir)).serving_model_dir
    try:
        if args.list:
            print("\n".join(str(version) for version in pushed_versions(serving_dir)))
            return 0
        setting = metadata.setting_from(args.metadata_url)
        config_file = args.config_file or model_config_path(serving_dir)
        rollback(serving_dir, None if args.latest else args.to, config_file, args.base_path, args.grpc, args.output_dir, setting)
    except writer_lock.OutputBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return writer_lock.EXIT_BUSY
    except (RollbackError, metadata.MetadataSettingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except client.ServingError as error:
        print(f"error: the server at {args.grpc} did not take the config, so nothing was written: {error}", file=sys.stderr)
        return 1
    what = "the newest version" if args.latest else f"version {args.to} (label {STABLE_LABEL})"
    print(f"serving {what}: wrote {config_file}{'; reloaded ' + args.grpc if args.grpc else ''}. Nothing was deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
