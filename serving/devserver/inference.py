"""Inference shared by the REST and gRPC front ends: predict, classify, regress, multi-inference.

Both front ends resolve the servable, call these functions (REST from a thread pool, gRPC from
its worker threads; never on an event loop) and only translate the results to their wire
format, so the two APIs cannot drift apart. Validation and messages follow TensorFlow Serving's
`predict_util.cc`, `classifier.cc`, `regressor.cc` and `multi_inference.cc`.

`InferenceService.request_hooks` is where a later "log a sample of requests" feature plugs in:
each hook is called after every inference request with a `RequestRecord`.
"""
import dataclasses
import functools
import logging
import math
import sys
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from serving.devserver import deadlines, json_tensor
from serving.devserver.batching import Batcher
from serving.devserver.errors import StatusError, invalid_argument
from serving.devserver.servables import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
    ServableManager,
    model_spec_for,
    selected_outputs,
)

logger = logging.getLogger(__name__)

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"
SIGNATURE_DEF_FIELD = "signature_def"


@dataclasses.dataclass
class RequestRecord:
    """One finished inference request, as handed to request hooks.

    Attributes:
        api: Predict, Classify, Regress or MultiInference.
        entrypoint: REST or GRPC.
        model_name: The requested model name.
        status: `OK` or the canonical error code name.
        latency_micros: Wall time of the request.
        request: The request (a JSON object for REST, the request proto for gRPC).
        response: The response body (JSON text for REST, the proto for gRPC); None on error.
    """

    api: str
    entrypoint: str
    model_name: str
    status: str
    latency_micros: float
    request: object
    response: object


RequestHook = Callable[[RequestRecord], None]


# ---------------------------------------------------------------------------------------------
# Tensor protos


# DataType -> (numpy dtype, repeated value field) of the tensors `_decode_plain` handles.
_PLAIN_DTYPES = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
}
# tensor_content holds the sender's raw bytes; only decode it here where numpy reads them as is.
_NATIVE_LITTLE_ENDIAN = sys.byteorder == "little"


def _decode_plain(proto: tensor_pb2.TensorProto) -> Optional[np.ndarray]:
    """Decodes the TensorProtos clients usually send (one value per element, known shape), or
    returns None to leave every other case, and its error messages, to `tf.make_ndarray`.

    `tf.make_ndarray` costs tens of microseconds per tensor in dtype bookkeeping, which adds
    up to most of a small model's request time when a signature has a dozen inputs.
    """
    if proto.tensor_shape.unknown_rank:
        return None
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        return None
    count = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        values = proto.string_val
        if len(values) != count:
            return None
        return np.array(list(values), dtype=object).reshape(shape)
    plain = _PLAIN_DTYPES.get(proto.dtype)
    if plain is None:
        return None
    dtype, field = plain
    content = proto.tensor_content
    if content:
        if not _NATIVE_LITTLE_ENDIAN or len(content) != count * dtype.itemsize:
            return None
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    values = getattr(proto, field)
    if len(values) != count:
        return None  # Empty or shorter lists mean "repeat the last value": TensorFlow's rule.
    return np.fromiter(values, dtype=dtype, count=count).reshape(shape)


# TensorFlow fills a TensorProto that carries fewer values than its shape holds with its last
# value, so a few bytes can declare millions of elements. The server honours the rule up to this
# many elements per tensor; beyond it a request must carry its values, so the memory a request
# takes stays proportional to its size.
MAX_FILLED_ELEMENTS = 65536
# The most rows (the first dimension of a predict input, or tf.Examples) one request may ask
# for (`--max_request_rows`); 0 means no limit. Far above any client's batch, well below what
# exhausts the server.
DEFAULT_MAX_REQUEST_ROWS = 4_000_000


def _check_fill(alias: str, proto: tensor_pb2.TensorProto) -> None:
    """Refuses a tensor that declares more than MAX_FILLED_ELEMENTS elements but carries fewer."""
    if proto.tensor_shape.unknown_rank or proto.tensor_content:
        return
    count = math.prod(max(dim.size, 0) for dim in proto.tensor_shape.dim)
    if count <= MAX_FILLED_ELEMENTS:
        return
    carried = max(len(getattr(proto, field)) for field in _VALUE_FIELDS)
    if carried < count:
        raise invalid_argument(
            f"Input {alias}: the tensor's shape holds {count} elements but it carries {carried} values; "
            f"the server fills in missing values only up to {MAX_FILLED_ELEMENTS} elements per tensor"
        )


# The TensorProto's repeated value fields (float_val, string_val, ...), from its descriptor.
_VALUE_FIELDS = tuple(field.name for field in tensor_pb2.TensorProto.DESCRIPTOR.fields if field.name.endswith("_val"))

# The types a client can send as values: not DT_RESOURCE or DT_VARIANT (handles to server
# state), nor DT_INVALID.
_REQUEST_DTYPES = frozenset(
    dtype
    for dtype in types_pb2.DataType.values()
    if dtype not in (types_pb2.DT_INVALID, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT) and dtype < 100
)


def array_from_tensor_proto(alias: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decodes a request TensorProto.

    Raises:
        StatusError: INVALID_ARGUMENT naming the input when the proto is malformed.
    """
    array = _decode_plain(proto)
    if array is not None:
        return array
    _check_fill(alias, proto)
    if proto.dtype not in _REQUEST_DTYPES:
        name = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() else str(proto.dtype)
        raise invalid_argument(f"Input {alias}: a request tensor cannot be of type {name}")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError, NotImplementedError) as error:
        raise invalid_argument(f"Input {alias}: malformed TensorProto: {error}") from error


_FIELD_BY_KIND = {
    np.dtype(np.float32): "float_val",
    np.dtype(np.float64): "double_val",
    np.dtype(np.int32): "int_val",
    np.dtype(np.int16): "int_val",
    np.dtype(np.int8): "int_val",
    np.dtype(np.uint8): "int_val",
    np.dtype(np.uint16): "int_val",
    np.dtype(np.int64): "int64_val",
    np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val",
    np.dtype(np.bool_): "bool_val",
}


@functools.lru_cache(maxsize=None)
def _datatype_enum(dtype: np.dtype) -> int:
    """The DataType enum of a numpy dtype (cached: `tf.as_dtype` is slow per request)."""
    return tf.as_dtype(dtype).as_datatype_enum


def tensor_proto_from_array(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes an output array in the typed value fields (`float_val`, `string_val`, ...),
    which is how TensorFlow Serving fills PredictResponse outputs."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]
    )
    if array.dtype == object or array.dtype.kind in "SU":
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape)
        proto.string_val.extend(
            value if isinstance(value, bytes) else str(value).encode("utf-8")
            for value in array.ravel()
        )
        return proto
    field = _FIELD_BY_KIND.get(array.dtype)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=_datatype_enum(array.dtype), tensor_shape=shape)
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


# ---------------------------------------------------------------------------------------------
# The service


class InferenceService:
    """Runs inference requests against the servables of a `ServableManager`.

    Args:
        manager: Where servables are looked up.
        batcher: Merges concurrent predict calls when batching is enabled; None runs each alone.
    """

    def __init__(
        self, manager: ServableManager, batcher: Optional[Batcher] = None, max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS
    ) -> None:
        self.manager = manager
        self.batcher = batcher
        self.max_request_rows = max_request_rows
        self.request_hooks: List[RequestHook] = []

    def check_rows(self, rows: int, what: str) -> None:
        """Refuses a request of more than `max_request_rows` rows, before any model runs.

        Raises:
            StatusError: INVALID_ARGUMENT naming the count, the limit and the flag.
        """
        if 0 < self.max_request_rows < rows:
            raise invalid_argument(
                f"The request has {rows} {what}; this server accepts at most {self.max_request_rows} "
                "per request (--max_request_rows): split it into smaller requests"
            )

    def notify(self, record: RequestRecord) -> None:
        """Hands a finished request to every hook; a failing hook is logged, never fatal."""
        for hook in self.request_hooks:
            try:
                hook(record)
            except Exception:  # noqa: BLE001 - observability must not break serving.
                logger.exception("request hook %r failed", hook)

    # -- predict ----------------------------------------------------------------------------

    def predict(
        self,
        servable: Servable,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> Tuple[str, Dict[str, np.ndarray]]:
        """Runs a predict signature.

        Args:
            servable: The resolved servable.
            signature_name: Requested signature ("" for serving_default).
            inputs: Input alias -> array.
            output_filter: Output aliases to return (all when empty).

        Returns:
            (signature key used, output alias -> array).

        Raises:
            StatusError: FAILED_PRECONDITION for an unknown signature, INVALID_ARGUMENT for
                bad inputs, or the model's own error.
        """
        key, signature_def = servable.signature(signature_name)
        self.check_rows(max((array.shape[0] for array in inputs.values() if array.ndim), default=1), "rows (first dimension of the inputs)")
        servable.validate_inputs(key, inputs)
        deadlines.check("before running the model")
        if self.batcher is None:
            outputs = servable.run(key, inputs, output_filter)
            deadlines.check("before encoding the response")
            return key, outputs
        outputs = self.batcher.run(servable, key, inputs)
        deadlines.check("before encoding the response")
        if output_filter:
            # Validate and select the same way an unbatched run would.
            wanted = selected_outputs(signature_def, output_filter)
            outputs = {alias: outputs[alias] for alias in wanted}
        return key, outputs

    # -- classify / regress -----------------------------------------------------------------

    def classify(
        self, servable: Servable, signature_name: str, request_input: input_pb2.Input
    ) -> Tuple[str, classification_pb2.ClassificationResult]:
        """Runs a classify signature on tf.Examples.

        Returns:
            (signature key used, ClassificationResult).

        Raises:
            StatusError: INVALID_ARGUMENT for an unknown or non-classify signature, empty input
                or outputs of the wrong shape or type.
        """
        key, signature_def = _inference_signature(servable, signature_name, CLASSIFY_METHOD)
        _check_classification_signature(signature_def)
        examples = json_tensor.serialized_examples(request_input)
        outputs = self._run_examples(servable, key, signature_def, examples)
        return key, _classification_result(outputs, len(examples))

    def regress(
        self, servable: Servable, signature_name: str, request_input: input_pb2.Input
    ) -> Tuple[str, regression_pb2.RegressionResult]:
        """Runs a regress signature on tf.Examples.

        Returns:
            (signature key used, RegressionResult).

        Raises:
            StatusError: INVALID_ARGUMENT for an unknown or non-regress signature, empty input
                or an output of the wrong shape or type.
        """
        key, signature_def = _inference_signature(servable, signature_name, REGRESS_METHOD)
        _check_regression_signature(signature_def)
        examples = json_tensor.serialized_examples(request_input)
        outputs = self._run_examples(servable, key, signature_def, examples)
        return key, _regression_result(outputs[REGRESS_OUTPUTS], len(examples))

    def multi_inference(
        self, servable: Servable, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        """Runs several classify/regress signatures of one model on the same examples.

        Raises:
            StatusError: INVALID_ARGUMENT for tasks naming different models, a repeated or
                unknown signature, or signatures with different inputs; UNIMPLEMENTED for a
                method other than classify or regress.
        """
        model_name = ""
        signatures = []
        input_names = set()
        for task in request.tasks:
            if not task.model_spec.name:
                raise invalid_argument("Found ModelSpec with an empty model name.")
            if model_name and task.model_spec.name != model_name:
                raise invalid_argument(
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            model_name = task.model_spec.name
            key = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if key in [existing for existing, _, _ in signatures]:
                raise invalid_argument(f"Duplicate evaluation of signature: {key}")
            if key not in servable.signature_defs:
                raise invalid_argument(f"Requested signature not found in model graph: {key}")
            signature_def = servable.signature_defs[key]
            if task.method_name == CLASSIFY_METHOD:
                _check_method(signature_def, CLASSIFY_METHOD, "classification")
                _check_classification_signature(signature_def)
            elif task.method_name == REGRESS_METHOD:
                _check_method(signature_def, REGRESS_METHOD, "regression")
                _check_regression_signature(signature_def)
            else:
                raise StatusError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"Unsupported signature method_name: {task.method_name}",
                )
            input_names.add(signature_def.inputs[CLASSIFY_INPUTS].name)
            signatures.append((key, signature_def, task))
        if len(input_names) > 1:
            raise invalid_argument("Input tensor must be the same for all Signatures.")
        examples = json_tensor.serialized_examples(request.input)
        response = inference_pb2.MultiInferenceResponse()
        for key, signature_def, task in signatures:
            outputs = self._run_examples(servable, key, signature_def, examples)
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(
                    _classification_result(outputs, len(examples))
                )
            else:
                result.regression_result.CopyFrom(
                    _regression_result(outputs[REGRESS_OUTPUTS], len(examples))
                )
            result.model_spec.CopyFrom(model_spec_for(servable, key))
        return response

    def _run_examples(
        self, servable: Servable, key: str, signature_def, examples: List[bytes]
    ) -> Dict[str, np.ndarray]:
        self.check_rows(len(examples), "tf.Examples")
        input_alias = next(iter(signature_def.inputs))
        batch = np.empty(len(examples), dtype=object)
        batch[:] = examples
        deadlines.check("before running the model")
        outputs = servable.run(key, {input_alias: batch})
        deadlines.check("before encoding the response")
        return outputs

    # -- metadata ---------------------------------------------------------------------------

    @staticmethod
    def metadata(
        servable: Servable, metadata_fields: Sequence[str]
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Builds a GetModelMetadataResponse holding the servable's SignatureDefMap.

        Raises:
            StatusError: INVALID_ARGUMENT when no field or a field other than signature_def
                is requested.
        """
        check_metadata_fields(metadata_fields)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.CopyFrom(model_spec_for(servable, None))
        signature_map = signature_def_map(servable)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    # -- warm-up ----------------------------------------------------------------------------

    def replay_warmup(self, servable: Servable, log: prediction_log_pb2.PredictionLog) -> None:
        """Replays one `tf_serving_warmup_requests` record against a freshly loaded servable.

        Raises:
            StatusError: When the record fails, which fails the version's load.
        """
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            inputs = {
                alias: array_from_tensor_proto(alias, proto)
                for alias, proto in request.inputs.items()
            }
            key, _ = servable.signature(request.model_spec.signature_name)
            servable.run(key, inputs, list(request.output_filter))
        elif kind == "classify_log":
            request = log.classify_log.request
            self.classify(servable, request.model_spec.signature_name, request.input)
        elif kind == "regress_log":
            request = log.regress_log.request
            self.regress(servable, request.model_spec.signature_name, request.input)
        elif kind == "multi_inference_log":
            self.multi_inference(servable, log.multi_inference_log.request)
        else:
            raise invalid_argument(f"Unsupported log_type for warmup: {kind}")


def check_metadata_fields(metadata_fields: Sequence[str]) -> None:
    """Checks GetModelMetadata's requested fields (only `signature_def` exists).

    Raises:
        StatusError: INVALID_ARGUMENT when none or an unsupported field is requested.
    """
    if not metadata_fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in metadata_fields:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")


def signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    """The servable's SignatureDefs as a SignatureDefMap (GetModelMetadata's payload)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    return signature_map


def _inference_signature(servable: Servable, signature_name: str, method: str):
    key = signature_name or DEFAULT_SIGNATURE
    if key not in servable.signature_defs:
        raise invalid_argument(f"No signature was found with the name: {key}")
    signature_def = servable.signature_defs[key]
    _check_method(signature_def, method, "classification" if method == CLASSIFY_METHOD else "regression")
    return key, signature_def


def _check_method(signature_def, method: str, what: str) -> None:
    if signature_def.method_name != method:
        raise invalid_argument(
            f"Expected {what} signature method_name to be {method}. "
            f"Was: {signature_def.method_name}"
        )


def _check_classification_signature(signature_def) -> None:
    if len(signature_def.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature_def.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature_def.outputs)}"
        )
    if CLASSIFY_INPUTS not in signature_def.inputs:
        raise StatusError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "No classification inputs found in SignatureDef: expected an input named 'inputs'",
        )
    if CLASSIFY_CLASSES not in signature_def.outputs and CLASSIFY_SCORES not in signature_def.outputs:
        raise StatusError(
            grpc.StatusCode.FAILED_PRECONDITION,
            'Expected classification signature outputs to contain at least one of "classes" '
            'or "scores".',
        )


def _check_regression_signature(signature_def) -> None:
    if len(signature_def.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature_def.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature_def.inputs:
        raise StatusError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "No regression inputs found in SignatureDef: expected an input named 'inputs'",
        )
    if REGRESS_OUTPUTS not in signature_def.outputs:
        raise StatusError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "No regression outputs found in SignatureDef: expected an output named 'outputs'",
        )


def _shape_text(array: np.ndarray) -> str:
    return "[" + ",".join(str(size) for size in array.shape) + "]"


def _classification_result(
    outputs: Mapping[str, np.ndarray], num_examples: int
) -> classification_pb2.ClassificationResult:
    classes = outputs.get(CLASSIFY_CLASSES)
    scores = outputs.get(CLASSIFY_SCORES)
    for name, array, dtype_ok in (
        ("classes", classes, lambda a: a.dtype == object),
        ("scores", scores, lambda a: a.dtype == np.float32),
    ):
        if array is None:
            continue
        if array.ndim != 2:
            raise invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape_text(array)}"
            )
        if not dtype_ok(array):
            expected = "DT_STRING" if name == "classes" else "DT_FLOAT"
            raise invalid_argument(f"Expected {name} Tensor of {expected}. Got: {array.dtype}")
        if array.shape[0] != num_examples:
            raise invalid_argument(
                f"Expected {name} output batch size of {num_examples}. Got: {array.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for row in range(num_examples):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                entry.score = float(scores[row, column])
    return result


def _regression_result(output: np.ndarray, num_examples: int) -> regression_pb2.RegressionResult:
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {_shape_text(output)}"
        )
    if output.shape[0] != num_examples:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {output.shape[0]}"
        )
    if output.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {output.dtype}")
    result = regression_pb2.RegressionResult()
    for value in output.ravel():
        result.regressions.add().value = float(value)
    return result


def predict_response(
    servable: Servable, signature_key: str, outputs: Mapping[str, np.ndarray]
) -> predict_pb2.PredictResponse:
    """Builds a PredictResponse echoing the model spec actually served."""
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(model_spec_for(servable, signature_key))
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(tensor_proto_from_array(array))
    return response
