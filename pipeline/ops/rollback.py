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

Exit codes: 0 done; 2 refused (a version that is not pushed or has no push in ML Metadata, a
config file whose folder is missing or not writable: nothing changed); 1 the server refused the
config or did not answer, or the version failed to load (the server reports it END with an
error; it is given the config it had back at once), or the config file failed while it was
written after the server took the config (the message says what serves); 75 as above.
"""
import argparse
import contextlib
import logging
import os
import sys
import time
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import grpc
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops import metadata, writer_lock
from pipeline.ops.metadata import OutputLayout
from serving import client
from serving.versions import STABLE_LABEL, model_config_path, version_numbers

logger = logging.getLogger(__name__)

ROLLBACK_EXECUTION_TYPE = "ServingRollback"
EXIT_SERVER = 1
EXIT_REFUSED = 2
# TF Serving may still report a version's failure from an earlier attempt for a moment after a
# reload that lists it again; such a failure counts once it has stood this long.
STALE_FAILURE_GRACE_S = 10.0


class RollbackError(ValueError):
    """The rollback cannot be done as asked; the message says why."""


class ConfigWriteError(Exception):
    """A config file could not be written; the message says which, and what the server serves."""


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


def check_config_file(config_file: str) -> None:
    """Refuses a config file that cannot be written, before the running server is changed.

    Raises:
        RollbackError: when the file's folder does not exist or is not writable, or the path is
            a folder.
    """
    folder = os.path.dirname(os.path.abspath(config_file))
    if not os.path.isdir(folder):
        raise RollbackError(f"config file {config_file!r}: its folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise RollbackError(f"config file {config_file!r}: its folder {folder!r} is not writable")
    if os.path.isdir(config_file):
        raise RollbackError(f"config file {config_file!r} is a folder")


def served_config(config_file: str, base_path: str, model_name: str = SERVING_MODEL_NAME) -> Optional[model_server_config_pb2.ModelServerConfig]:
    """The config the server was last given by these tools: `config_file`'s, or the default
    policy (the newest version) when there is no such file; None when the file does not parse."""
    if not os.path.exists(config_file):
        return model_config(base_path, None, model_name)
    try:
        with open(config_file) as config_in:
            return text_format.Parse(config_in.read(), model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as error:
        logger.warning("cannot read %s (%s): a failed reload cannot give the server its previous config back", config_file, error)
        return None


def write_config(config: model_server_config_pb2.ModelServerConfig, config_file: str) -> str:
    """Writes `config` as text to `config_file` in one step (a polling server never reads half a
    file); returns the text."""
    text = text_format.MessageToString(config)
    tmp_path = f"{config_file}.tmp"
    try:
        with open(tmp_path, "w") as config_out:
            config_out.write(text)
        os.replace(tmp_path, config_file)
    except OSError:
        if os.path.isfile(tmp_path):
            os.remove(tmp_path)
        raise
    return text


def write_configs(config: model_server_config_pb2.ModelServerConfig, config_files: Sequence[str], reloaded: Optional[str] = None) -> None:
    """Writes `config` to every file of `config_files`, in order.

    Args:
        config: The config the server was given.
        config_files: Where to write it.
        reloaded: host:port of the server that took `config` already, or None.

    Raises:
        ConfigWriteError: when a file cannot be written; the message names it, the files that
            hold the config and what the server serves.
    """
    for position, config_file in enumerate(config_files):
        try:
            write_config(config, config_file)
        except OSError as error:
            held = f"the new config is in {', '.join(config_files[:position])}" if position else "no config file was changed"
            served = f"the server at {reloaded} serves the new config, " if reloaded else ""
            # The first file holds the state a step is judged by: once it is written, running
            # the step again would be refused, so the other files are copied from it.
            remedy = f"copy {config_files[0]} to {config_file}" if position else "make it writable and run the step again"
            raise ConfigWriteError(
                f"writing the config file {config_file} failed: {error.strerror or error}; {served}{held}, "
                f"nothing was recorded; {remedy}"
            ) from error


def pushed_model_artifact(store: metadata_store.MetadataStore, version: int, where: str) -> metadata_store_pb2.Artifact:
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


def record_serving_change(
    store: metadata_store.MetadataStore,
    execution_type_name: str,
    properties: Mapping[str, str],
    pushed_models: Sequence[metadata_store_pb2.Artifact] = (),
) -> int:
    """Adds a COMPLETE execution of `execution_type_name` with string `properties` to ML Metadata,
    with the given PushedModel artifacts as its inputs, so lineage shows what serving did and
    with which versions; returns the execution's id."""
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
def recording(output_dir: Optional[str], setting: metadata.MetadataSetting) -> Iterator[Optional[Tuple[metadata_store.MetadataStore, str]]]:
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


def _record_in_metadata(store: metadata_store.MetadataStore, pushed_model: Optional[metadata_store_pb2.Artifact], version: Optional[int], config_file: str) -> int:
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


def _rollback(
    serving_dir: str,
    version: Optional[int],
    config_file: str,
    base_path: Optional[str],
    grpc_address: Optional[str],
    recorder: Optional[Tuple[metadata_store.MetadataStore, str]],
) -> model_server_config_pb2.ModelServerConfig:
    """`rollback`'s work; `recorder` is (store, where) or None."""
    versions = pushed_versions(serving_dir)
    if version is not None and version not in versions:
        raise RollbackError(f"version {version} is not a complete pushed version in {serving_dir!r}; there are {versions}")
    pushed_model = pushed_model_artifact(recorder[0], version, recorder[1]) if recorder and version is not None else None
    base_path = base_path or os.path.abspath(serving_dir)
    config = model_config(base_path, version)
    check_config_file(config_file)
    # The server first: a config it refuses is written nowhere.
    if grpc_address:
        reload_server(grpc_address, config, previous=served_config(config_file, base_path), previous_source=config_file)
    write_configs(config, [config_file], grpc_address)
    if recorder:
        _record_in_metadata(recorder[0], pushed_model, version, os.path.abspath(config_file))
    return config


class _VersionState(NamedTuple):
    """One version as the server's status API reports it; a load error has a code other than OK."""

    state: str
    error_code: str = "OK"
    error_message: str = ""

    def load_error(self) -> Optional[str]:
        """The server's message for a version that ended with an error, else None."""
        if self.state != "END" or self.error_code in ("OK", "0"):
            return None
        return f"{self.error_code}: {self.error_message}"


_UNKNOWN = _VersionState("")


def _version_states(grpc_address: str, model_name: str) -> Dict[int, _VersionState]:
    """Version -> state (and load error) of every version the server knows of `model_name`."""
    try:
        status = client.model_status_grpc(grpc_address, model_name)
    except client.ServingError as error:
        if error.grpc_code is not None and error.grpc_code.name == "NOT_FOUND":
            return {}
        raise
    states = {}
    for entry in status.get("model_version_status", []):
        error = entry.get("status", {})
        states[int(entry["version"])] = _VersionState(entry.get("state", ""), str(error.get("error_code", "OK")), error.get("error_message", ""))
    return states


def reload_server(
    grpc_address: str,
    config: model_server_config_pb2.ModelServerConfig,
    model_name: str = SERVING_MODEL_NAME,
    timeout_s: float = 300.0,
    previous: Optional[model_server_config_pb2.ModelServerConfig] = None,
    previous_source: str = "",
) -> None:
    """Makes the running server serve `config`, labels included (HandleReloadConfigRequest).

    TF Serving refuses a label on a version that is not loaded yet, and its reload may return
    before a newly listed version is, so a config whose labels name an unloaded version is sent
    twice: first with only the labels whose versions are loaded (the others wait), then, once
    every listed version is AVAILABLE, as it is. If a listed version fails to load (the server
    reports it END with an error) or is not AVAILABLE within `timeout_s`, the first reload has
    changed the server already: it is given `previous` (the config it had) back.

    Args:
        grpc_address: host:port of the server's gRPC API.
        config: The config to serve.
        model_name: The model whose versions `config` lists.
        timeout_s: How long listed versions may take to load.
        previous: The config the server had, sent back when a listed version does not load;
            None when it is not known.
        previous_source: Where `previous` comes from (a file), for the message.

    Raises:
        client.ServingError: when the server refuses a config or does not answer, or a listed
            version fails to load or does not load in time; the message says what the server
            serves then.
    """
    [entry] = [entry for entry in config.model_config_list.config if entry.name == model_name]
    wanted = set(entry.model_version_policy.specific.versions)
    states = _version_states(grpc_address, model_name)
    available = {version for version, state in states.items() if state.state == "AVAILABLE"}
    if set(entry.version_labels.values()) <= available:
        client.reload_config_grpc(grpc_address, text_format.MessageToString(config), timeout_s)
        return
    stale = {version: states.get(version, _UNKNOWN).load_error() for version in wanted}
    first = model_server_config_pb2.ModelServerConfig()
    first.CopyFrom(config)
    [first_entry] = [entry for entry in first.model_config_list.config if entry.name == model_name]
    for label, version in entry.version_labels.items():
        if version not in available:
            del first_entry.version_labels[label]
    client.reload_config_grpc(grpc_address, text_format.MessageToString(first), timeout_s)
    started = time.monotonic()
    while True:
        states = _version_states(grpc_address, model_name)
        if all(states.get(version, _UNKNOWN).state == "AVAILABLE" for version in wanted):
            break
        waited = time.monotonic() - started
        for version in sorted(wanted):
            state = states.get(version, _UNKNOWN)
            error = state.load_error()
            if error and (error != stale[version] or waited > STALE_FAILURE_GRACE_S):
                code = getattr(grpc.StatusCode, state.error_code, grpc.StatusCode.UNKNOWN)
                _give_back(grpc_address, f"version {version} of {model_name!r} failed to load: {error}", code, previous, previous_source, timeout_s)
        if waited > timeout_s:
            waiting = sorted(version for version in wanted if states.get(version, _UNKNOWN).state != "AVAILABLE")
            problem = f"versions {waiting} of {model_name!r} did not become AVAILABLE within {timeout_s:.0f}s"
            _give_back(grpc_address, problem, grpc.StatusCode.DEADLINE_EXCEEDED, previous, previous_source, timeout_s)
        time.sleep(0.2)
    client.reload_config_grpc(grpc_address, text_format.MessageToString(config), timeout_s)


def _give_back(
    grpc_address: str,
    problem: str,
    code: grpc.StatusCode,
    previous: Optional[model_server_config_pb2.ModelServerConfig],
    previous_source: str,
    timeout_s: float,
) -> None:
    """Sends the server `previous` after a reload whose versions did not load, then raises
    ServingError saying what went wrong and what the server serves now."""
    target = f"{grpc_address} GetModelStatus"
    changed = (
        "the server keeps the config of the first reload: it lists the new versions and has no "
        "label on a version that was not loaded; give it a config of loaded versions (e.g. `rollback --to` one)"
    )
    if previous is None:
        raise client.ServingError(f"{problem}. The previous config is not known, so {changed}", target=target, grpc_code=code)
    source = f" ({previous_source})" if previous_source and os.path.exists(previous_source) else " (the newest version, as no config file was written yet)"
    try:
        client.reload_config_grpc(grpc_address, text_format.MessageToString(previous), timeout_s)
    except client.ServingError as error:
        raise client.ServingError(f"{problem}. Giving the server its previous config{source} back failed too ({error}), so {changed}", target=target, grpc_code=code) from None
    raise client.ServingError(f"{problem}. The server was given its previous config{source} back", target=target, grpc_code=code)


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
        return EXIT_REFUSED
    except client.ServingError as error:
        print(f"error: the server at {args.grpc} did not take the config, so nothing was written: {error}", file=sys.stderr)
        return EXIT_SERVER
    except ConfigWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SERVER
    what = "the newest version" if args.latest else f"version {args.to} (label {STABLE_LABEL})"
    print(f"serving {what}: wrote {config_file}{'; reloaded ' + args.grpc if args.grpc else ''}. Nothing was deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
