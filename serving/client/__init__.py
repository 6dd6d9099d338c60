"""A small client for TensorFlow Serving's REST and gRPC APIs, and for the taxi model on it.

The same functions work against the real `tensorflow/serving` container and the project's
local model server, which speak the same API (see serving/README.md):

    from serving import client

    client.model_status_rest("localhost:8501", "big_tipper")
    client.predict_rest("localhost:8501", "half_plus_two", [1.0, 2.0])      # -> [2.5, 3.0]
    client.predict_grpc("localhost:8500", "half_plus_two", [1.0, 2.0])      # -> {"y": array}
    client.predict_trips_rest("localhost:8501", "big_tipper",
                              [{"trip_miles": 1.2, "payment_type": "Cash"}])  # -> [0.07]

Every REST call has a timeout and every gRPC call a deadline. A request the server refuses
(or cannot be reached for) raises `ServingError` with the server's own message and the HTTP
status or gRPC code. (The project's server raises `serving.devserver.errors.StatusError` inside;
this one is what a caller of any server sees.)

Opt-in request logging: `predict_trips_rest(..., request_log=RequestLog(log_dir, 0.05))` writes a
share of the answered requests, typed by the model's signature, in the format `python -m
pipeline skew` reads (`serving/client/request_log.py`); a logging failure is counted, never raised.

Taxi trips may be partial: a feature that is absent or None is sent as its missing marker
from `modules.features` (NaN for float inputs, -1 for integer inputs, "" for string inputs),
which the model treats exactly like an empty CSV cell. The dtype of each input is read from
the model's own metadata, not written down here, so the client follows the served model.

The command line is a thin wrapper apart from the library (`serving/client/cli.py`):
`python -m serving.client --help`.
"""
import json
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import quote

import grpc
import requests

from modules import features

if TYPE_CHECKING:  # Imported lazily at run time: they load TensorFlow (seconds).
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    from serving.client.request_log import RequestLog

logger = logging.getLogger(__name__)

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_TIMEOUT_S = 10.0
# TensorFlow Serving accepts messages up to 2 GiB; Python gRPC's default 4 MiB limit would
# reject a large batch (or its answer) long before the server would.
MAX_GRPC_MESSAGE_BYTES = 2**31 - 1
# The signature TensorFlow Serving uses when a request names none.
SERVER_DEFAULT_SIGNATURE = "serving_default"

_FLOAT_DTYPES = frozenset({"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"})
_INT_DTYPES = frozenset(
    {"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64"}
)
_STRING_DTYPES = frozenset({"DT_STRING"})
# Raw columns a trip may carry (e.g. a whole CSV row) that the model does not take.
_IGNORED_TRIP_KEYS = frozenset(features.UNUSED_RAW_KEYS) | {features.TIPS_KEY}

Instances = Sequence[Any]
DtypeMapping = Mapping[str, str]


class ServingError(Exception):
    """A request the model server refused, or that got no answer.

    Attributes:
        message: The server's own message (REST `error` field, gRPC details), or why no
            answer came (connection refused, timeout).
        target: The URL, or the gRPC address and method, the request went to.
        http_status: HTTP status of the REST answer; None for gRPC or without an answer.
        grpc_code: gRPC status code of a gRPC call; None for REST.
    """

    def __init__(
        self,
        message: str,
        target: str,
        http_status: Optional[int] = None,
        grpc_code: Optional[grpc.StatusCode] = None,
    ) -> None:
        self.message = message
        self.target = target
        self.http_status = http_status
        self.grpc_code = grpc_code
        if http_status is not None:
            status = f"HTTP {http_status}"
        elif grpc_code is not None:
            status = f"gRPC {grpc_code.name}"
        else:
            status = "no answer"
        super().__init__(f"{target}: {status}: {message}")


# ---------------------------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------------------------


def model_url(host_port: str, model: str, version: Optional[int] = None, label: Optional[str] = None) -> str:
    """Returns the REST URL of a model, a version of it, or a labelled version.

    Args:
        host_port: `host:port` of the REST API, optionally with an `http://` or `https://` scheme.
        model: Model name, e.g. "big_tipper".
        version: A version number; excludes `label`.
        label: A version label such as "stable" or "canary"; excludes `version`.

    Returns:
        e.g. "http://localhost:8501/v1/models/big_tipper/labels/stable".

    Raises:
        ValueError: If both `version` and `label` are given, or the model name is empty.
    """
    if not model:
        raise ValueError("model name is empty")
    if version is not None and label is not None:
        raise ValueError(f"give a version ({version}) or a label ({label!r}), not both")
    base = host_port if "://" in host_port else f"http://{host_port}"
    url = f"{base.rstrip('/')}/v1/models/{quote(model, safe='')}"
    if version is not None:
        url += f"/versions/{int(version)}"
    elif label is not None:
        url += f"/labels/{quote(label, safe='')}"
    return url


def json_default(value: Any) -> Any:
    """Lets json.dumps write numpy scalars and arrays (anything with `tolist`)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON: {value!r}")


def build_predict_request(instances: Instances, signature: Optional[str] = None) -> str:
    """Returns the JSON body of a row-format REST predict request.

    NaN and infinities are written as the bare `NaN` / `Infinity` literals, which TensorFlow
    Serving accepts (and which the taxi model reads as "missing" for float features).

    Args:
        instances: One item per example: a value (single-input signatures) or an object
            mapping each signature input to its value.
        signature: Signature name; None lets the server use "serving_default".

    Returns:
        The request body, e.g. '{"instances": [1.0, 2.0]}'.

    Raises:
        ValueError: If there are no instances.
        TypeError: If a value cannot be written as JSON.
    """
    if isinstance(instances, (str, bytes, Mapping)) or len(instances) == 0:
        raise ValueError(f"instances must be a non-empty list of examples, got {instances!r:.200}")
    body: Dict[str, Any] = {}
    if signature:
        body["signature_name"] = signature
    body["instances"] = list(instances)
    return json.dumps(body, default=json_default)


def error_from_rest_response(http_status: int, body: str, url: str) -> ServingError:
    """Returns the ServingError for a non-2xx REST answer.

    TensorFlow Serving answers `{"error": "<message>"}`; anything else (a proxy's HTML page,
    an empty body) is passed on as text.

    Args:
        http_status: The HTTP status of the answer.
        body: The answer's body text.
        url: The URL the request went to.

    Returns:
        An error carrying the server's message and the HTTP status.
    """
    message = body.strip()
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, Mapping) and "error" in decoded:
        message = str(decoded["error"])
    return ServingError(message or "(empty answer)", target=url, http_status=http_status)


def _rest_call(method: str, url: str, timeout_s: float, body: Optional[str] = None) -> Any:
    """Sends one REST request and returns the decoded JSON answer; raises ServingError."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    logger.debug("%s %s", method, url)
    try:
        response = requests.request(
            method,
            url,
            data=body.encode("utf-8") if body is not None else None,
            headers={"Content-Type": "application/json"} if body is not None else None,
            timeout=timeout_s,
        )
    except requests.Timeout as err:
        raise ServingError(f"no answer within {timeout_s} s ({err})", target=url) from err
    except requests.RequestException as err:
        raise ServingError(f"could not reach the server ({err})", target=url) from err
    if not 200 <= response.status_code < 300:
        raise error_from_rest_response(response.status_code, response.text, url)
    try:
        return response.json()
    except ValueError as err:
        raise ServingError(
            f"answer is not JSON ({err}): {response.text[:200]!r}", target=url, http_status=response.status_code
        ) from err


def predict_rest(
    host_port: str,
    model: str,
    instances: Instances,
    version: Optional[int] = None,
    label: Optional[str] = None,
    signature: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> List[Any]:
    """Runs a REST predict request (row format) and returns its predictions.

    Args:
        host_port: `host:port` of the REST API, e.g. "localhost:8501".
        model: Model name.
        instances: One item per example; see `build_predict_request`.
        version: Ask this version; default is the newest loaded one.
        label: Ask the version with this label ("stable", "canary"); excludes `version`.
        signature: Signature name; None uses "serving_default".
        timeout_s: Seconds to wait for the answer.

    Returns:
        The `predictions` list: one value per instance for a single-output signature, one
        object (output alias -> value) per instance otherwise.

    Raises:
        ServingError: If the server refuses the request or does not answer in time.
        ValueError: If the arguments are inconsistent (see `model_url`, `build_predict_request`).
    """
    url = model_url(host_port, model, version, label) + ":predict"
    answer = _rest_call("POST", url, timeout_s, build_predict_request(instances, signature))
    if not isinstance(answer, Mapping) or "predictions" not in answer:
        raise ServingError(f"answer has no 'predictions': {str(answer)[:200]}", target=url, http_status=200)
    return answer["predictions"]


def model_status_rest(
    host_port: str,
    model: str,
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Dict[str, Any]:
    """Returns the model's status, as TensorFlow Serving's REST API writes it.

    Args:
        host_port: `host:port` of the REST API.
        model: Model name.
        version: Only this version.
        label: Only the version with this label.
        timeout_s: Seconds to wait for the answer.

    Returns:
        e.g. {"model_version_status": [{"version": "123", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}.

    Raises:
        ServingError: e.g. HTTP 404 when the server knows no version of the model.
    """
    return _rest_call("GET", model_url(host_port, model, version, label), timeout_s)


def model_metadata_rest(
    host_port: str,
    model: str,
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Dict[str, Any]:
    """Returns the model's metadata (its signatures), as TensorFlow Serving's REST API writes it.

    Args:
        host_port: `host:port` of the REST API.
        model: Model name.
        version: A specific version; default is the newest loaded one.
        label: The version with this label.
        timeout_s: Seconds to wait for the answer.

    Returns:
        {"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {name: {...}}}}};
        read it with `signature_inputs`.

    Raises:
        ServingError: If the server refuses the request or does not answer in time.
    """
    return _rest_call("GET", model_url(host_port, model, version, label) + "/metadata", timeout_s)


# ---------------------------------------------------------------------------------------------
# Metadata and taxi trips
# ---------------------------------------------------------------------------------------------


def signature_inputs(metadata: Mapping[str, Any], signature: Optional[str] = None) -> Dict[str, str]:
    """Returns the inputs of one signature and their dtypes, from a metadata answer.

    Works on the answers of both `model_metadata_rest` and `model_metadata_grpc`.

    Args:
        metadata: A metadata answer.
        signature: Signature name; None means "serving_default".

    Returns:
        Input alias -> dtype name, e.g. {"x": "DT_FLOAT"}.

    Raises:
        ValueError: If the answer has no such signature (the message lists those it has).
    """
    signature = signature or SERVER_DEFAULT_SIGNATURE
    try:
        signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"metadata answer has no metadata.signature_def.signature_def: {str(metadata)[:200]}") from err
    if signature not in signature_defs:
        raise ValueError(f"the model has no signature {signature!r}; it has {sorted(signature_defs)}")
    inputs = signature_defs[signature].get("inputs", {})
    return {alias: str(tensor_info.get("dtype", "DT_INVALID")) for alias, tensor_info in inputs.items()}


def _fill_value(key: str, value: Any, dtype: str) -> Any:
    """Returns `value` as the JSON type of `dtype`, or the missing marker for None."""
    if dtype in _FLOAT_DTYPES:
        if value is None:
            return features.MISSING_FLOAT
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"feature {key!r} is a number ({dtype}), got {value!r}")
        return float(value)
    if dtype in _INT_DTYPES:
        if value is None:
            return features.MISSING_INT
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"feature {key!r} is an integer ({dtype}), got {value!r}")
        return value
    if dtype in _STRING_DTYPES:
        if value is None:
            return features.MISSING_STRING
        if not isinstance(value, str):
            raise ValueError(f"feature {key!r} is a string ({dtype}), got {value!r}")
        return value
    raise ValueError(f"feature {key!r} has dtype {dtype}, which a taxi trip cannot carry")


def fill_missing_features(trip: Mapping[str, Any], dtypes: DtypeMapping) -> Dict[str, Any]:
    """Returns one complete serving instance for a (possibly partial) taxi trip.

    Args:
        trip: Raw feature name -> value, e.g. {"trip_miles": 1.2, "payment_type": "Cash"}.
            Absent features and None values become the missing marker of their dtype
            (NaN, -1, ""). Columns the model does not read (the label, the timestamp) are
            dropped, so a whole CSV row may be passed.
        dtypes: Input name -> dtype name of the serving signature (`signature_inputs`).

    Returns:
        Every feature of `modules.features.RAW_FEATURE_KEYS`, with a value of the input's type.

    Raises:
        ValueError: If the trip has a feature the model does not know (a typo, say), a value
            of the wrong type, or the served signature lacks one of the model's features.
    """
    unknown = sorted(set(trip) - set(features.RAW_FEATURE_KEYS) - _IGNORED_TRIP_KEYS)
    if unknown:
        raise ValueError(f"unknown taxi features {unknown}; the model reads {features.RAW_FEATURE_KEYS}")
    not_served = [key for key in features.RAW_FEATURE_KEYS if key not in dtypes]
    if not_served:
        raise ValueError(
            f"the served signature has no input for features {not_served} (it takes {sorted(dtypes)}): "
            "the model on the server and modules.features disagree"
        )
    return {key: _fill_value(key, trip.get(key), dtypes[key]) for key in features.RAW_FEATURE_KEYS}


def trips_to_instances(trips: Sequence[Mapping[str, Any]], dtypes: DtypeMapping) -> List[Dict[str, Any]]:
    """Returns the serving instances for several trips; see `fill_missing_features`.

    Raises:
        ValueError: If there are no trips, or one is not an object or is invalid (the
            message gives its position).
    """
    if isinstance(trips, Mapping) or len(trips) == 0:
        raise ValueError("trips must be a non-empty list of objects (feature name -> value)")
    instances = []
    for position, trip in enumerate(trips):
        if not isinstance(trip, Mapping):
            raise ValueError(f"trip {position} is not an object (feature name -> value): {trip!r:.200}")
        try:
            instances.append(fill_missing_features(trip, dtypes))
        except ValueError as err:
            raise ValueError(f"trip {position}: {err}") from err
    return instances


def _probabilities(predictions: Sequence[Any]) -> List[float]:
    """Returns P(big tipper) per trip from row-format predictions."""
    if predictions and isinstance(predictions[0], Mapping):
        # Several outputs: pick the probability by its name. Imported here because
        # modules.signatures loads TensorFlow Transform.
        from modules.signatures import PROBABILITY_OUTPUT

        return [float(row[PROBABILITY_OUTPUT]) for row in predictions]
    return [float(value[0] if isinstance(value, list) else value) for value in predictions]


def predict_trips_rest(
    host_port: str,
    model: str,
    trips: Sequence[Mapping[str, Any]],
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    dtypes: Optional[DtypeMapping] = None,
    request_log: Optional["RequestLog"] = None,
) -> List[float]:
    """Returns P(big tipper) for each taxi trip, over REST.

    Args:
        host_port: `host:port` of the REST API.
        model: Model name, e.g. "big_tipper".
        trips: Raw feature name -> value per trip; absent features are sent as missing.
        version: Ask this version.
        label: Ask the version with this label.
        timeout_s: Seconds to wait for each answer.
        dtypes: Input dtypes of the serving signature; None reads them from the model's
            metadata first (one more request; pass them when predicting in a loop).
        request_log: Opt-in sampling: a `serving.client.request_log.RequestLog` that logs a
            share of the answered requests, typed by `dtypes`, for `python -m pipeline skew`.
            Logging never fails or delays the call (see that module).

    Returns:
        One probability per trip, in order.

    Raises:
        ServingError: If the server refuses a request or does not answer in time.
        ValueError: If a trip is invalid (see `fill_missing_features`).
    """
    if dtypes is None:
        dtypes = signature_inputs(model_metadata_rest(host_port, model, version, label, timeout_s))
    instances = trips_to_instances(trips, dtypes)
    probabilities = _probabilities(predict_rest(host_port, model, instances, version, label, None, timeout_s))
    if request_log is not None:
        request_log.log_rows(instances, dtypes)
    return probabilities


# ---------------------------------------------------------------------------------------------
# gRPC
# ---------------------------------------------------------------------------------------------


def _grpc_channel(host_port: str) -> grpc.Channel:
    """Opens an insecure channel that allows messages as large as TensorFlow Serving does."""
    return grpc.insecure_channel(
        host_port,
        options=[
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
        ],
    )


def error_from_rpc_error(err: grpc.RpcError, target: str) -> ServingError:
    """Returns the ServingError for a failed gRPC call, with the server's code and details.

    Args:
        err: The error the stub raised (a `grpc.Call`).
        target: The address and method, e.g. "localhost:8500 Predict".

    Returns:
        An error carrying the gRPC code and the server's message.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return ServingError(details or "(no details)", target=target, grpc_code=code)


def _set_model_spec(
    spec: Any, model: str, version: Optional[int], label: Optional[str], signature: Optional[str] = None
) -> None:
    """Fills a tensorflow.serving.ModelSpec in place."""
    if not model:
        raise ValueError("model name is empty")
    if version is not None and label is not None:
        raise ValueError(f"give a version ({version}) or a label ({label!r}), not both")
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = label
    if signature:
        spec.signature_name = signature


def _call_grpc(host_port: str, method: str, request: Any, timeout_s: float) -> Any:
    """Calls one TensorFlow Serving RPC with a deadline; raises ServingError."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    target = f"{host_port} {method}"
    logger.debug("gRPC %s", target)
    with _grpc_channel(host_port) as channel:
        if method in ("GetModelStatus", "HandleReloadConfigRequest"):
            stub: Any = model_service_pb2_grpc.ModelServiceStub(channel)
        else:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return getattr(stub, method)(request, timeout=timeout_s)
        except grpc.RpcError as err:
            raise error_from_rpc_error(err, target) from err


def _message_to_dict(message: Any) -> Dict[str, Any]:
    """Returns a proto as JSON-style dict with TensorFlow Serving's REST field names."""
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, including_default_value_fields=True
    )


def _instances_to_columns(instances: Instances, dtypes: DtypeMapping) -> Dict[str, List[Any]]:
    """Turns row-format instances into one list per signature input."""
    if isinstance(instances, (str, bytes, Mapping)) or len(instances) == 0:
        raise ValueError(f"instances must be a non-empty list of examples, got {instances!r:.200}")
    if all(isinstance(instance, Mapping) for instance in instances):
        names = sorted(instances[0])
        for position, instance in enumerate(instances):
            if sorted(instance) != names:
                raise ValueError(f"instance {position} has inputs {sorted(instance)}, instance 0 has {names}")
        return {name: [instance[name] for instance in instances] for name in names}
    if len(dtypes) != 1:
        raise ValueError(
            f"the signature takes several inputs {sorted(dtypes)}: give each instance as an object"
        )
    return {next(iter(dtypes)): list(instances)}


def build_predict_grpc_request(
    model: str,
    instances: Instances,
    dtypes: DtypeMapping,
    version: Optional[int] = None,
    label: Optional[str] = None,
    signature: Optional[str] = None,
) -> "predict_pb2.PredictRequest":
    """Returns the gRPC PredictRequest for row-format instances (as `predict_rest` takes them).

    Args:
        model: Model name.
        instances: One item per example; objects keyed by input for several inputs.
        dtypes: Input alias -> dtype name of the signature (`signature_inputs`).
        version: Ask this version.
        label: Ask the version with this label.
        signature: Signature name; None lets the server use "serving_default".

    Returns:
        A request with one batch-major tensor per input.

    Raises:
        ValueError: If an input is not in the signature, the instances disagree on their
            inputs, or values do not form a rectangular array of the input's dtype.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    _set_model_spec(request.model_spec, model, version, label, signature)
    for name, column in _instances_to_columns(instances, dtypes).items():
        if name not in dtypes:
            raise ValueError(f"input {name!r} is not in the signature, which takes {sorted(dtypes)}")
        try:
            dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(dtypes[name]))
            values = np.asarray(column, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
        except (ValueError, TypeError) as err:
            raise ValueError(f"input {name!r} ({dtypes[name]}): {err}") from err
    return request


def model_metadata_grpc(
    host_port: str,
    model: str,
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Dict[str, Any]:
    """Returns the model's metadata over gRPC, in the same shape as `model_metadata_rest`.

    Args:
        host_port: `host:port` of the gRPC API, e.g. "localhost:8500".
        model: Model name.
        version: A specific version; default is the newest loaded one.
        label: The version with this label.
        timeout_s: Deadline of the call, in seconds.

    Returns:
        {"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}.

    Raises:
        ServingError: If the call fails (e.g. NOT_FOUND for an unknown model).
    """
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    _set_model_spec(request.model_spec, model, version, label)
    response = _call_grpc(host_port, "GetModelMetadata", request, timeout_s)
    metadata: Dict[str, Any] = {}
    if "signature_def" in response.metadata:
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_def_map)
        metadata["signature_def"] = _message_to_dict(signature_def_map)
    return {"model_spec": _message_to_dict(response.model_spec), "metadata": metadata}


def model_status_grpc(
    host_port: str,
    model: str,
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Dict[str, Any]:
    """Returns the model's status over gRPC, in the same shape as `model_status_rest`.

    Args:
        host_port: `host:port` of the gRPC API.
        model: Model name.
        version: Only this version.
        label: Only the version with this label.
        timeout_s: Deadline of the call, in seconds.

    Returns:
        {"model_version_status": [{"version": "123", "state": "AVAILABLE", "status": {...}}]}.

    Raises:
        ServingError: If the call fails (e.g. NOT_FOUND for an unknown model).
    """
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    _set_model_spec(request.model_spec, model, version, label)
    return _message_to_dict(_call_grpc(host_port, "GetModelStatus", request, timeout_s))


def predict_grpc(
    host_port: str,
    model: str,
    instances: Instances,
    version: Optional[int] = None,
    label: Optional[str] = None,
    signature: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    dtypes: Optional[DtypeMapping] = None,
    request_log: Optional["RequestLog"] = None,
) -> Dict[str, "np.ndarray"]:
    """Runs a gRPC Predict call on row-format instances and returns the output tensors.

    Args:
        host_port: `host:port` of the gRPC API, e.g. "localhost:8500".
        model: Model name.
        instances: One item per example, as for `predict_rest`.
        version: Ask this version.
        label: Ask the version with this label.
        signature: Signature name; None uses "serving_default".
        timeout_s: Deadline of each call, in seconds.
        dtypes: Input alias -> dtype name of the signature; None reads them from the model's
            metadata first (one more call; pass them when predicting in a loop).
        request_log: Opt-in sampling of answered calls on `serving_default`, typed by
            `dtypes` (see `predict_trips_rest`).

    Returns:
        Output alias -> batch-major numpy array.

    Raises:
        ServingError: If the server refuses the call or misses the deadline.
        ValueError: If the instances do not fit the signature's inputs.
    """
    import tensorflow as tf

    if dtypes is None:
        dtypes = signature_inputs(model_metadata_grpc(host_port, model, version, label, timeout_s), signature)
    request = build_predict_grpc_request(model, instances, dtypes, version, label, signature)
    response = _call_grpc(host_port, "Predict", request, timeout_s)
    outputs = {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}
    # Only the signature that takes the raw features is logged: skew compares those.
    if request_log is not None and (signature or SERVER_DEFAULT_SIGNATURE) == SERVER_DEFAULT_SIGNATURE:
        columns = _instances_to_columns(instances, dtypes)
        request_log.log_rows([dict(zip(columns, values)) for values in zip(*columns.values())], dtypes)
    return outputs


def predict_trips_grpc(
    host_port: str,
    model: str,
    trips: Sequence[Mapping[str, Any]],
    version: Optional[int] = None,
    label: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    dtypes: Optional[DtypeMapping] = None,
    request_log: Optional["RequestLog"] = None,
) -> List[float]:
    """Returns P(big tipper) for each taxi trip, over gRPC; see `predict_trips_rest`."""
    from modules.signatures import PROBABILITY_OUTPUT

    if dtypes is None:
        dtypes = signature_inputs(model_metadata_grpc(host_port, model, version, label, timeout_s))
    outputs = predict_grpc(
        host_port, model, trips_to_instances(trips, dtypes), version, label, None, timeout_s, dtypes, request_log
    )
    if PROBABILITY_OUTPUT not in outputs:
        raise ServingError(
            f"the answer has no output {PROBABILITY_OUTPUT!r}, only {sorted(outputs)}",
            target=f"{host_port} Predict",
            grpc_code=grpc.StatusCode.OK,
        )
    return [float(value) for value in outputs[PROBABILITY_OUTPUT].reshape(-1)]


def reload_config_grpc(host_port: str, model_config_text: str, timeout_s: float = 60.0) -> None:
    """Replaces the server's model configuration (HandleReloadConfigRequest), e.g. to roll back.

    The server loads the versions the new configuration asks for before it unloads the
    others, and answers when done. It forgets the change on restart: also write the
    configuration to the file `--model_config_file` names.

    Args:
        host_port: `host:port` of the gRPC API.
        model_config_text: A text-format ModelServerConfig, e.g. the contents of
            serving/deploy/config/models.rollback.config.example with real version numbers.
        timeout_s: Deadline of the call, in seconds (loading a model can take a while).

    Raises:
        ValueError: If the text is not a valid ModelServerConfig.
        ServingError: If the server rejects the configuration.
    """
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    try:
        config = text_format.Parse(model_config_text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as err:
        raise ValueError(f"not a valid ModelServerConfig: {err}") from err
    request = model_management_pb2.ReloadConfigRequest(config=config)
    response = _call_grpc(host_port, "HandleReloadConfigRequest", request, timeout_s)
    if response.status.error_code != 0:
        raise ServingError(
            response.status.error_message or f"error code {response.status.error_code}",
            target=f"{host_port} HandleReloadConfigRequest",
            grpc_code=grpc.StatusCode.OK,
        )
