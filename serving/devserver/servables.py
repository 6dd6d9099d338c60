"""SavedModel servables and the manager that loads, versions, labels and unloads them.

A model is a base path holding numeric version folders (`00000123` is version 123; any other
name is ignored). The manager polls each base path every `file_system_poll_wait_seconds`,
works out the aspired versions from the model's version policy (latest N, default 1; all;
specific), loads aspired versions that are not serving, and only then unloads versions that
are no longer aspired, so a request always finds a servable (TensorFlow Serving's
availability-preserving policy). Unloading just drops the manager's reference: requests that
already hold a servable finish on it.

A version that fails to load (missing or garbage `saved_model.pb`, half-written variables,
a failing warm-up record) is reported like tensorflow_model_server reports it: state END with
the load error's code and message in the status API, while older versions keep serving. Where
TensorFlow Serving retries a failed load a fixed number of times, this manager retries it
whenever the folder's contents change (file names, sizes or mtimes), which is what a
half-written export does once the writer finishes.
"""
import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2, prediction_log_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from serving.devserver.errors import StatusError, failed_precondition, invalid_argument, not_found
from serving.versions import parse_version

logger = logging.getLogger(__name__)

SERVING_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TensorFlow Serving replays at most this many warm-up records per version.
_MAX_WARMUP_RECORDS = 1000

State = get_model_status_pb2.ModelVersionStatus.State

def _status_code_from_tf(error: tf.errors.OpError) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == error.error_code:
            return code
    return grpc.StatusCode.UNKNOWN


def _numpy_dtype_name(array: np.ndarray) -> str:
    if array.dtype == object:
        return "string"
    return tf.as_dtype(array.dtype).name.replace("float32", "float").replace("float64", "double")


def _dtype_name(dtype: int) -> str:
    return tf.dtypes.as_dtype(dtype).name.replace("float32", "float").replace("float64", "double")


class Servable:
    """One loaded version of one model: its SignatureDefs and a session to run them.

    Like tensorflow_model_server, a version is loaded into its own graph and session with the
    SavedModel loader, and each request runs a session callable that feeds the signature's
    input tensors and fetches its outputs. This serves TF1 graphs and TF2 (Keras) SavedModels
    alike, with TensorFlow Serving's semantics: only the C++ runtime checks shapes (a [3]
    batch fed to a placeholder declared [-1, 1] works, as it does in TensorFlow Serving), and
    one odd signature never keeps the others from loading.

    Attributes:
        name: The model name.
        version: The version number.
        path: The version folder.
        signature_defs: Signature key -> SignatureDef, exactly as stored in the SavedModel's
            `serve` MetaGraphDef (what GetModelMetadata reports).
    """

    def __init__(self, name: str, version: int, path: str) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dict(
            _read_serving_meta_graph(path).signature_def
        )
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        try:
            with self._graph.as_default():
                tf.compat.v1.saved_model.loader.load(self._session, [SERVING_TAG], path)
        except tf.errors.OpError as error:
            self._session.close()
            raise StatusError(_status_code_from_tf(error), error.message) from error
        except (ValueError, OSError, RuntimeError) as error:
            self._session.close()
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from error
        self._graph.finalize()
        self._callables: Dict[Tuple, Callable] = {}
        self._callables_lock = threading.Lock()
        # Per signature key, what every request would otherwise re-derive from the protos.
        self._input_dtypes: Dict[str, Dict[str, int]] = {}
        self._expected_numpy: Dict[str, Dict[str, Optional[np.dtype]]] = {}
        self._runners: Dict[Tuple, Tuple[Callable, Tuple[str, ...]]] = {}

    def __del__(self) -> None:
        # Unloading drops the manager's reference; requests still running keep the servable
        # alive, so the session closes only once the last of them is done.
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()

    def _callable(self, feeds: Tuple[str, ...], fetches: Tuple[str, ...]) -> Callable:
        key = (feeds, fetches)
        with self._callables_lock:
            runner = self._callables.get(key)
            if runner is None:
                options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                # Session callables run without the Python client's feed-shape check, which
                # tensorflow_model_server (C++) does not have either.
                runner = self._session._make_callable_from_options(options)  # noqa: SLF001
                self._callables[key] = runner
        return runner

    def _runner(
        self, signature_key: str, aliases: Tuple[str, ...], output_filter: Sequence[str]
    ) -> Tuple[Callable, Tuple[str, ...]]:
        """(session callable, output aliases) for sorted input aliases and an output filter.

        Cached per request shape, so the steady state is one dict lookup without a lock
        (a dict read is atomic; a miss builds under `_callables_lock`).
        """
        key = (signature_key, aliases, tuple(output_filter))
        found = self._runners.get(key)
        if found is not None:
            return found
        signature_def = self.signature_defs[signature_key]
        outputs = tuple(selected_outputs(signature_def, output_filter))
        runner = self._callable(
            tuple(signature_def.inputs[alias].name for alias in aliases),
            tuple(signature_def.outputs[alias].name for alias in outputs),
        )
        self._runners[key] = (runner, outputs)
        return runner, outputs

    def input_dtypes(self, signature_key: str) -> Dict[str, int]:
        """Input alias -> DataType enum of a signature (a key of `signature_defs`)."""
        dtypes = self._input_dtypes.get(signature_key)
        if dtypes is None:
            dtypes = {
                alias: info.dtype
                for alias, info in self.signature_defs[signature_key].inputs.items()
            }
            self._input_dtypes[signature_key] = dtypes
        return dtypes

    def signature(self, signature_name: str) -> Tuple[str, meta_graph_pb2.SignatureDef]:
        """Returns (key, SignatureDef) for a requested name, "" meaning `serving_default`.

        Raises:
            StatusError: FAILED_PRECONDITION `Serving signature key "s" not found.`, the
                message tensorflow_model_server gives a gRPC Predict for an unknown signature.
        """
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise failed_precondition(f'Serving signature key "{key}" not found.')
        return key, self.signature_defs[key]

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> Dict[str, np.ndarray]:
        """Runs a signature on named input arrays, as TensorFlow Serving's Predict does.

        Args:
            signature_key: A key of `signature_defs`.
            inputs: Input alias -> array; the aliases must be exactly the signature's inputs.
            output_filter: Output aliases to return; all outputs when empty.

        Returns:
            Output alias -> array (strings as object arrays of bytes).

        Raises:
            StatusError: INVALID_ARGUMENT for missing, extra or mistyped inputs, unknown output
                aliases, or a shape the model rejects; the TensorFlow error's own code otherwise.
        """
        self.validate_inputs(signature_key, inputs)
        aliases = tuple(sorted(inputs))
        runner, outputs = self._runner(signature_key, aliases, output_filter)
        try:
            results = runner(*[_feed_value(inputs[alias]) for alias in aliases])
        except tf.errors.OpError as error:
            raise StatusError(_status_code_from_tf(error), error.message) from error
        except (ValueError, TypeError) as error:
            raise invalid_argument(str(error)) from error
        return {alias: _as_output(value) for alias, value in zip(outputs, results)}

    def validate_inputs(self, signature_key: str, inputs: Mapping[str, np.ndarray]) -> None:
        """Checks input names and dtypes against a signature without running it.

        Raises:
            StatusError: INVALID_ARGUMENT with TensorFlow Serving's message for missing, extra
                or mistyped inputs.
        """
        expected = self._expected_numpy.get(signature_key)
        if expected is None:
            expected = {
                alias: _numpy_dtype_of(dtype)
                for alias, dtype in self.input_dtypes(signature_key).items()
            }
            self._expected_numpy[signature_key] = expected
        if len(inputs) == len(expected) and all(
            expected.get(alias) is not None and array.dtype == expected[alias]
            for alias, array in inputs.items()
        ):
            return  # The usual request: exactly the inputs, each of its numpy dtype.
        signature_def = self.signature_defs[signature_key]
        _check_input_names(signature_def, inputs)
        for alias, array in inputs.items():
            _check_dtype(alias, array, signature_def.inputs[alias].dtype)


def _numpy_dtype_of(dtype: int) -> Optional[np.dtype]:
    """The numpy dtype an input of DataType `dtype` arrives as (object for strings), or None
    when it has none (those inputs always take the full check)."""
    if dtype == types_pb2.DT_STRING:
        return np.dtype(object)
    try:
        return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)
    except TypeError:
        return None


def _check_dtype(alias: str, array: np.ndarray, expected: int) -> None:
    if expected == types_pb2.DT_STRING:
        matches = array.dtype == object or array.dtype.kind in "SU"
    else:
        matches = array.dtype != object and tf.as_dtype(array.dtype) == tf.dtypes.as_dtype(expected)
    if not matches:
        raise invalid_argument(
            f"Expects arg[{alias}] to be {_dtype_name(expected)} but "
            f"{_numpy_dtype_name(array)} is provided"
        )


def _feed_value(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "U":
        # Text arrays (numpy str) feed a DT_STRING tensor as UTF-8 bytes.
        return np.vectorize(lambda text: text.encode("utf-8"), otypes=[object])(array)
    return array


def _as_output(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        # Keep every string output an object array of bytes, whatever its rank.
        converted = np.empty(array.shape, dtype=object)
        converted[...] = array
        return converted
    return array


def _check_input_names(signature_def: meta_graph_pb2.SignatureDef, inputs: Mapping) -> None:
    expected = set(signature_def.inputs)
    given = set(inputs)
    if given == expected:
        return
    if len(given) != len(expected):
        extra = sorted(given - expected)
        missing = sorted(expected - given)
        raise invalid_argument(
            f"input size does not match signature: {len(given)}!={len(expected)} "
            f"len({{{','.join(sorted(given))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    unknown = sorted(given - expected)[0]
    raise invalid_argument(
        f"input tensor alias not found in signature: {unknown}. "
        f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}."
    )


def selected_outputs(
    signature_def: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]
) -> List[str]:
    """Returns the output aliases a request asks for (all, sorted, when it names none).

    Raises:
        StatusError: INVALID_ARGUMENT for an unknown or repeated alias, with TF Serving's message.
    """
    if not output_filter:
        return sorted(signature_def.outputs)
    seen = set()
    for alias in output_filter:
        if alias not in signature_def.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature_def.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _read_serving_meta_graph(path: str) -> meta_graph_pb2.MetaGraphDef:
    """Reads the `serve` MetaGraphDef of a SavedModel folder.

    Raises:
        StatusError: NOT_FOUND when no saved_model.pb/.pbtxt exists, PERMISSION_DENIED or
            FAILED_PRECONDITION when the folder or file cannot be read (with the system's
            reason), DATA_LOSS when it does not parse, NOT_FOUND when no MetaGraphDef carries
            the `serve` tag.
    """
    binary_path = os.path.join(path, "saved_model.pb")
    text_path = os.path.join(path, "saved_model.pbtxt")
    saved_model = saved_model_pb2.SavedModel()
    if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
        raise StatusError(grpc.StatusCode.PERMISSION_DENIED, f"Could not read the version folder {path}: permission denied")
    try:
        if os.path.lexists(binary_path):
            with open(binary_path, "rb") as model_file:
                saved_model.ParseFromString(model_file.read())
        elif os.path.lexists(text_path):
            from google.protobuf import text_format

            with open(text_path, encoding="utf-8") as model_file:
                text_format.Parse(model_file.read(), saved_model)
        else:
            raise not_found(
                "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
                f"{path}"
            )
    except (proto_message.DecodeError, UnicodeDecodeError, ValueError) as error:
        raise StatusError(
            grpc.StatusCode.DATA_LOSS, f"Could not parse SavedModel at {path}: {error}"
        ) from error
    except OSError as error:
        # The file is there but cannot be read (a folder in its place, a dangling link, no
        # permission): say so, rather than that it is missing.
        raise StatusError(
            grpc.StatusCode.FAILED_PRECONDITION, f"Could not read SavedModel at {path}: {error.strerror or error}"
        ) from error
    if not saved_model.meta_graphs:
        # Garbage bytes can parse "successfully" as an empty message; that is still corrupt.
        raise StatusError(
            grpc.StatusCode.DATA_LOSS,
            f"Could not parse SavedModel at {path}: it holds no MetaGraphDef",
        )
    for meta_graph in saved_model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise not_found(
        f"Could not find meta graph def matching supplied tags: {{ {SERVING_TAG} }}. "
        f"To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        f"`saved_model_cli` (export directory: {path})"
    )


# ---------------------------------------------------------------------------------------------
# Version management


@dataclasses.dataclass
class VersionRecord:
    """What the manager knows about one version folder."""

    version: int
    path: str
    state: int = State.START
    error: Optional[StatusError] = None
    servable: Optional[Servable] = None
    # Folder contents when a load failed; a changed fingerprint makes the manager retry.
    failed_fingerprint: Optional[Tuple] = None


@dataclasses.dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig
    versions: Dict[int, VersionRecord] = dataclasses.field(default_factory=dict)
    labels: Dict[str, int] = dataclasses.field(default_factory=dict)
    base_path_missing_logged: bool = False


def _folder_fingerprint(path: str) -> Tuple:
    entries = []
    for root, _, files in os.walk(path):
        for file_name in files:
            full = os.path.join(root, file_name)
            try:
                stat = os.stat(full)
            except OSError:
                continue  # Removed while walking: the next poll sees the settled folder.
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def list_versions(base_path: str) -> Dict[int, str]:
    """Returns version -> folder for the child folders of a model base path whose names are
    versions (`serving.versions.parse_version`: digits within int64; TF Serving ignores others).

    Raises:
        OSError: When the base path cannot be listed.
    """
    versions = {}
    for entry in os.listdir(base_path):
        full = os.path.join(base_path, entry)
        version = parse_version(entry)
        if version is not None and os.path.isdir(full):
            # Two spellings of one number (`7`, `007`): keep one, deterministically.
            if version not in versions or entry < os.path.basename(versions[version]):
                versions[version] = full
    return versions


def aspired_versions(
    policy: file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy,
    on_disk: Iterable[int],
) -> List[int]:
    """Applies a version policy to the versions found on disk.

    Args:
        policy: The model's `model_version_policy` (unset means latest 1).
        on_disk: Versions present under the base path.

    Returns:
        The versions that should serve, newest first.
    """
    available = sorted(set(on_disk), reverse=True)
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return available
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return [version for version in available if version in wanted]
    count = policy.latest.num_versions if choice == "latest" else 1
    return available[: max(count, 1)]


def config_for_single_model(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """Builds the ModelServerConfig equivalent of `--model_name` / `--model_base_path`."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Checks a ModelServerConfig before it is applied.

    Raises:
        StatusError: INVALID_ARGUMENT naming the offending entry: not a model_config_list,
            a missing name or base_path, a duplicate name, or a platform other than tensorflow.
    """
    if config.WhichOneof("config") != "model_config_list":
        raise invalid_argument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported"
        )
    seen = set()
    for index, model in enumerate(config.model_config_list.config):
        if not model.name:
            raise invalid_argument(f"model_config_list.config[{index}] has no name")
        if not model.base_path:
            raise invalid_argument(f"Model {model.name} has no base_path")
        if model.name in seen:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        if model.model_platform not in ("", "tensorflow"):
            raise invalid_argument(
                f"Model {model.name}: model_platform {model.model_platform!r} is not supported; "
                "this server serves TensorFlow SavedModels only"
            )
        seen.add(model.name)


WarmupRunner = Callable[[Servable, prediction_log_pb2.PredictionLog], None]


class ServableManager:
    """Keeps the configured models' aspired versions loaded and answers lookups.

    Thread-safe: lookups take a short lock; loads run outside it, one sync at a time.

    Args:
        config: The models to serve.
        poll_wait_seconds: Seconds between polls of the base paths; 0 or less disables polling
            after the initial load (as in tensorflow_model_server).
        warmup_runner: Replays one warm-up record against a freshly loaded servable; None
            skips warm-up.
        load_observer: Told (version path, whether the SavedModel loaded) after each load
            attempt, e.g. `ServerMetrics.record_load`; None tells nobody.
    """

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        poll_wait_seconds: float = 1.0,
        warmup_runner: Optional[WarmupRunner] = None,
        load_observer: Optional[Callable[[str, bool], None]] = None,
    ) -> None:
        validate_config(config)
        self._load_observer = load_observer or (lambda path, loaded: None)
        self._config = config
        self._poll_wait_seconds = poll_wait_seconds
        self._warmup_runner = warmup_runner
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._models: Dict[str, _Model] = {}
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Loads every model's aspired versions, applies labels, then starts polling.

        Raises:
            StatusError: When a configured label names a version that is not available.
        """
        self._apply_config(self._config)
        if self._poll_wait_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll_loop, name="servable-poller", daemon=True
            )
            self._poller.start()

    def stop(self) -> None:
        """Stops polling and drops every servable."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=max(self._poll_wait_seconds, 1.0) + 30.0)
        with self._lock:
            self._models.clear()

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Swaps the served models for a new config (HandleReloadConfigRequest).

        New and changed models are loaded before this returns; models absent from the new
        config are unloaded.

        Raises:
            StatusError: INVALID_ARGUMENT for a malformed config, FAILED_PRECONDITION for a
                label that names a version which is not available.
        """
        validate_config(config)
        self._apply_config(config)

    def poll_once(self) -> None:
        """Re-reads every base path and loads/unloads versions accordingly."""
        with self._sync_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                self._sync_model(model)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad poll.
                logger.exception("polling the model base paths failed; will retry")

    def _apply_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        with self._sync_lock:
            wanted = {model.name: model for model in config.model_config_list.config}
            with self._lock:
                for name in list(self._models):
                    if name not in wanted:
                        logger.info("unloading model %s: no longer in the config", name)
                        del self._models[name]
                for name, model_config in wanted.items():
                    existing = self._models.get(name)
                    if existing is None:
                        self._models[name] = _Model(config=model_config)
                    else:
                        existing.config = model_config
                models = [self._models[name] for name in wanted]
            for model in models:
                self._sync_model(model)
            self._config = config
            errors = []
            for model in models:
                try:
                    self._apply_labels(model)
                except StatusError as error:
                    errors.append(error)
            if errors:
                raise errors[0]

    def _apply_labels(self, model: _Model) -> None:
        labels = dict(model.config.version_labels)
        with self._lock:
            for label, version in sorted(labels.items()):
                record = model.versions.get(version)
                if record is None or record.state != State.AVAILABLE:
                    raise failed_precondition(
                        f"Request to assign label to version {version} of model "
                        f"{model.config.name}, which is not currently available for inference"
                    )
            model.labels = labels

    # -- loading ----------------------------------------------------------------------------

    def _sync_model(self, model: _Model) -> None:
        name = model.config.name
        base_path = model.config.base_path
        try:
            on_disk = list_versions(base_path)
        except OSError as error:
            if not model.base_path_missing_logged:
                logger.error("model %s: cannot list base path %s: %s", name, base_path, error)
                model.base_path_missing_logged = True
            return
        model.base_path_missing_logged = False
        aspired = aspired_versions(model.config.model_version_policy, on_disk)
        if not on_disk:
            logger.warning("model %s: no versions found under base path %s", name, base_path)

        for version in aspired:
            with self._lock:
                record = model.versions.get(version)
                if record is not None and record.state == State.AVAILABLE:
                    continue
            path = on_disk[version]
            if record is not None and record.failed_fingerprint is not None:
                if record.failed_fingerprint == _folder_fingerprint(path):
                    continue  # Same files that failed before: wait until they change.
            self._load(model, version, path)

        with self._lock:
            serving_aspired = any(
                model.versions.get(version) is not None
                and model.versions[version].state == State.AVAILABLE
                for version in aspired
            )
            for version, record in sorted(model.versions.items()):
                if record.state != State.AVAILABLE or version in aspired:
                    continue
                # Availability first: keep an old version until an aspired one serves, unless
                # nothing is aspired any more (the base path was emptied).
                if serving_aspired or not aspired:
                    logger.info("model %s: unloading version %d", name, version)
                    record.state = State.END
                    record.servable = None
                    record.error = None

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        with self._lock:
            record = VersionRecord(version=version, path=path, state=State.LOADING)
            previous = model.versions.get(version)
            model.versions[version] = record if previous is None else previous
            model.versions[version].state = State.LOADING
            record = model.versions[version]
        fingerprint = _folder_fingerprint(path)
        started = time.monotonic()
        logger.info("model %s: loading version %d from %s", name, version, path)
        try:
            try:
                servable = Servable(name, version, path)
            except Exception:
                self._load_observer(path, False)
                raise
            self._load_observer(path, True)
            self._warm_up(servable)
        except StatusError as error:
            self._mark_failed(name, record, error, fingerprint)
            return
        except Exception as error:  # noqa: BLE001 - any load failure is reported, not fatal.
            self._mark_failed(
                name, record, StatusError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}"),
                fingerprint,
            )
            return
        with self._lock:
            record.servable = servable
            record.error = None
            record.failed_fingerprint = None
            record.state = State.AVAILABLE
        logger.info(
            "model %s: version %d is available (loaded in %.2fs)",
            name, version, time.monotonic() - started,
        )

    def _mark_failed(
        self, name: str, record: VersionRecord, error: StatusError, fingerprint: Tuple
    ) -> None:
        logger.error(
            "model %s: loading version %d from %s failed: %s",
            name, record.version, record.path, error.message,
        )
        with self._lock:
            record.state = State.END
            record.servable = None
            record.error = error
            record.failed_fingerprint = fingerprint

    def _warm_up(self, servable: Servable) -> None:
        warmup_path = os.path.join(servable.path, WARMUP_FILE)
        if self._warmup_runner is None or not os.path.isfile(warmup_path):
            return
        count = 0
        for record in tf.data.TFRecordDataset(warmup_path):
            if count >= _MAX_WARMUP_RECORDS:
                break
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record.numpy())
            try:
                self._warmup_runner(servable, log)
            except StatusError as error:
                raise StatusError(
                    error.code, f"Failed to warm up model with record {count}: {error.message}"
                ) from error
            count += 1
        logger.info("model %s: version %d warmed up with %d records", servable.name, servable.version, count)

    # -- lookups ----------------------------------------------------------------------------

    def model_names(self) -> List[str]:
        """Returns the configured model names."""
        with self._lock:
            return sorted(self._models)

    def get_servable(
        self, name: str, version: Optional[int] = None, label: Optional[str] = None
    ) -> Servable:
        """Finds the servable a request addresses.

        Args:
            name: Model name.
            version: A specific version, or None.
            label: A version label, or None (at most one of version and label).

        Returns:
            The servable: the named version, the labelled one, or the newest available.

        Raises:
            StatusError: NOT_FOUND `Servable not found for request: Latest(M)` /
                `Specific(M, V)`; INVALID_ARGUMENT `Unrecognized servable version label: L`.
        """
        with self._lock:
            model = self._models.get(name)
            if label is not None and version is not None:
                raise invalid_argument(
                    f"Both model version ({version}) and model version label ({label}) "
                    "cannot be supplied."
                )
            if label is not None:
                if model is None or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is not None:
                record = model.versions.get(version) if model is not None else None
                if record is None or record.servable is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return record.servable
            servables = [
                record.servable
                for _, record in sorted(model.versions.items(), reverse=True)
                if record.servable is not None
            ] if model is not None else []
            if not servables:
                raise not_found(f"Servable not found for request: Latest({name})")
            return servables[0]

    def model_status(
        self, name: str, version: Optional[int] = None, label: Optional[str] = None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Builds a GetModelStatusResponse: every known version, newest first, or one version.

        Raises:
            StatusError: NOT_FOUND `Could not find any versions of model M` /
                `Could not find version V of model M`; INVALID_ARGUMENT for an unknown label.
        """
        response = get_model_status_pb2.GetModelStatusResponse()
        with self._lock:
            model = self._models.get(name)
            if label is not None:
                if model is None or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            records = dict(model.versions) if model is not None else {}
            if version is not None:
                if version not in records:
                    raise not_found(f"Could not find version {version} of model {name}")
                selected = [records[version]]
            else:
                if not records:
                    raise not_found(f"Could not find any versions of model {name}")
                selected = [records[key] for key in sorted(records, reverse=True)]
            for record in selected:
                status = response.model_version_status.add()
                status.version = record.version
                status.state = record.state
                status.status.SetInParent()
                if record.error is not None:
                    status.status.error_code = record.error.code.value[0]
                    status.status.error_message = record.error.message
        return response


def model_spec_for(
    servable: Servable, signature_name: Optional[str]
) -> model_pb2.ModelSpec:
    """The model_spec a response echoes: name, the version served and the signature used."""
    spec = model_pb2.ModelSpec(name=servable.name)
    spec.version.value = servable.version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec
