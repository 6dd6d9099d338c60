"""TensorFlow Serving's REST JSON <-> tensors, following `tensorflow_serving/util/json_tensor.cc`.

Requests: `{"signature_name"?, "instances": [...]}` (row format) or `{"inputs": ...}` (columnar)
for predict; `{"signature_name"?, "context"?, "examples": [...]}` for classify and regress.
Answers: `{"predictions": ...}`, `{"outputs": ...}`, `{"results": ...}`.

Numbers keep JSON's own distinction between integers and decimals (`2` is not `2.0`), as
rapidjson does in TensorFlow Serving; NaN and (-)Infinity are accepted and written back.
Floats are written in the shortest form that reads back to the same value, with a trailing
`.0` on whole numbers so a list never mixes integer and decimal tokens.

Every problem raises `StatusError` (INVALID_ARGUMENT unless stated) with TensorFlow Serving's
wording, so clients that match on messages see the same text from both servers.
"""
import base64
import binascii
import json
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from serving.devserver.errors import StatusError, invalid_argument

ROW_FORMAT = "row"
COLUMNAR_FORMAT = "columnar"

_SIGNATURE_KEY = "signature_name"
_INSTANCES_KEY = "instances"
_INPUTS_KEY = "inputs"
_CONTEXT_KEY = "context"
_EXAMPLES_KEY = "examples"
_BASE64_KEY = "b64"
BYTES_SUFFIX = "_bytes"

# TensorFlow's DataTypeString() names, used in TensorFlow Serving's type errors.
_DTYPE_TEXT = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_UINT16: "uint16",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_HALF: "half",
    types_pb2.DT_BFLOAT16: "bfloat16",
}

# Integer dtypes JSON can carry, with the numpy type and the inclusive range a value must fit.
_INT_DTYPES = {
    types_pb2.DT_INT8: (np.int8, -(2**7), 2**7 - 1),
    types_pb2.DT_INT16: (np.int16, -(2**15), 2**15 - 1),
    types_pb2.DT_INT32: (np.int32, -(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (np.int64, -(2**63), 2**63 - 1),
    types_pb2.DT_UINT8: (np.uint8, 0, 2**8 - 1),
    types_pb2.DT_UINT32: (np.uint32, 0, 2**32 - 1),
    types_pb2.DT_UINT64: (np.uint64, 0, 2**64 - 1),
}

# Decimal dtypes: numpy type, largest integer held exactly, largest finite magnitude.
_DECIMAL_DTYPES = {
    types_pb2.DT_FLOAT: (np.float32, 2**24 - 1, float(np.finfo(np.float32).max), "float"),
    types_pb2.DT_DOUBLE: (np.float64, 2**53 - 1, float(np.finfo(np.float64).max), "double"),
}


def dtype_text(dtype: int) -> str:
    """Returns TensorFlow's short name for a DataType enum value (`float`, `int64`, ...)."""
    return _DTYPE_TEXT.get(dtype) or types_pb2.DataType.Name(dtype)


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_request_body(body: bytes) -> Dict[str, Any]:
    """Parses a REST request body into a JSON object.

    Args:
        body: The raw HTTP body.

    Returns:
        The decoded top-level JSON object.

    Raises:
        StatusError: INVALID_ARGUMENT `JSON Parse error: ...` for an empty or malformed body,
            or `JSON Value: ... Is not object` when the top level is not an object.
    """
    if not body or not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {error.start}"
        ) from error
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from error
    except RecursionError as error:
        # A pathologically nested document must not take the server down.
        raise invalid_argument("JSON Parse error: document nested too deeply") from error
    if "\\u" in text and _has_lone_surrogate(doc):
        # Python decodes `"\ud800"` to a string no encoding can write; RapidJSON refuses it.
        raise invalid_argument("JSON Parse error: The surrogate pair in string is invalid.")
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {value_to_text(doc)} Is not object")
    return doc


def _has_lone_surrogate(doc: Any) -> bool:
    """True when a string (key or value) anywhere in the document holds a lone UTF-16 surrogate."""
    pending = [doc]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def signature_name_of(doc: Mapping[str, Any]) -> str:
    """Returns the request's optional `signature_name` ("" when absent).

    Raises:
        StatusError: INVALID_ARGUMENT when `signature_name` is not a string.
    """
    name = doc.get(_SIGNATURE_KEY, "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {value_to_text(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def value_to_text(value: Any, limit: int = 256) -> str:
    """Renders a JSON value for an error message, truncated so a huge payload stays readable."""
    text = json.dumps(value, allow_nan=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_base64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_BASE64_KEY), str)


def _decode_base64_object(value: Any) -> bytes:
    if not _is_base64_object(value):
        raise invalid_argument(
            f"JSON Value: {value_to_text(value)} not formatted correctly for base64 data"
        )
    try:
        return base64.b64decode(value[_BASE64_KEY], validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_argument("Unable to base64 decode") from error


def _type_error(value: Any, dtype: int) -> StatusError:
    return invalid_argument(
        f"JSON Value: {value_to_text(value)} Type: {_json_type(value)} "
        f"is not of expected type: {dtype_text(dtype)}"
    )


def _convert_leaf(value: Any, dtype: int) -> Any:
    """Checks one JSON scalar against `dtype` and returns the Python value to store."""
    if dtype in _DECIMAL_DTYPES:
        _, max_exact_int, max_magnitude, target = _DECIMAL_DTYPES[dtype]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        if isinstance(value, int):
            if abs(value) > max_exact_int:
                raise _lossy_error(value, target)
            return float(value)
        if math.isfinite(value) and abs(value) > max_magnitude:
            raise _lossy_error(value, target)
        return value
    if dtype in _INT_DTYPES:
        _, low, high = _INT_DTYPES[dtype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if isinstance(value, dict):
            return _decode_base64_object(value)
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    raise StatusError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"Conversion of JSON Value: {value_to_text(value)} to type: {dtype_text(dtype)}",
    )


def _lossy_error(value: Any, target: str) -> StatusError:
    return invalid_argument(
        f"Cannot convert JSON value: {value_to_text(value)} to {target} without loss of precision."
    )


# TensorFlow's (and numpy's) largest number of dimensions.
MAX_TENSOR_RANK = 32


def _dense_shape(value: Any) -> List[int]:
    """Shape implied by the first element at each nesting level (scalars have no dims)."""
    shape: List[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: Sequence[int], dtype: int, out: List[Any]) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {value_to_text(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict) and dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        out.append(_convert_leaf(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """Converts a (nested) JSON value into a dense numpy array of TensorFlow type `dtype`.

    Args:
        value: A JSON scalar, `{"b64": ...}` object or nested list of them.
        dtype: A `types_pb2.DataType` value taken from the signature's TensorInfo.

    Returns:
        An array with the JSON value's shape; strings become an object array of bytes.

    Raises:
        StatusError: INVALID_ARGUMENT for ragged lists or values of the wrong type,
            UNIMPLEMENTED for dtypes JSON cannot carry.
    """
    shape = _dense_shape(value)
    flat: List[Any] = []
    _fill(value, 0, shape, dtype, flat)
    return _to_numpy(flat, shape, dtype)


def _to_numpy(flat: List[Any], shape: Sequence[int], dtype: int) -> np.ndarray:
    if len(shape) > MAX_TENSOR_RANK:
        raise invalid_argument(f"JSON Value makes a tensor of {len(shape)} dimensions; a tensor has at most {MAX_TENSOR_RANK}")
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    elif dtype in _DECIMAL_DTYPES:
        array = np.array(flat, dtype=_DECIMAL_DTYPES[dtype][0])
    elif dtype in _INT_DTYPES:
        array = np.array(flat, dtype=_INT_DTYPES[dtype][0])
    else:
        array = np.array(flat, dtype=np.bool_)
    return array.reshape(shape)


def predict_inputs_from_json(
    doc: Mapping[str, Any], input_dtypes: Mapping[str, int], signature_name: str
) -> Tuple[Dict[str, np.ndarray], str]:
    """Builds predict input arrays from a parsed request, as TensorFlow Serving does.

    Args:
        doc: The parsed request object.
        input_dtypes: Signature input alias -> `types_pb2.DataType`.
        signature_name: The requested signature (for the error message when it has no inputs).

    Returns:
        (alias -> array, ROW_FORMAT or COLUMNAR_FORMAT).

    Raises:
        StatusError: INVALID_ARGUMENT with TensorFlow Serving's message for every malformed
            request: both or neither of `instances`/`inputs`, empty or non-list instances,
            unknown or missing input names, ragged shapes and wrong value types.
    """
    if not input_dtypes:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    has_instances = _INSTANCES_KEY in doc
    has_inputs = _INPUTS_KEY in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {value_to_text(doc)} Not formatted correctly expecting only one of "
            f"'{_INPUTS_KEY}' or '{_INSTANCES_KEY}' keys to exist "
        )
    if has_instances:
        instances = doc[_INSTANCES_KEY]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {value_to_text(doc)} Excepting '{_INSTANCES_KEY}' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {value_to_text(doc)} No values in '{_INSTANCES_KEY}' array"
            )
        return _inputs_from_instances(instances, input_dtypes), ROW_FORMAT
    if has_inputs:
        return _inputs_from_columns(doc[_INPUTS_KEY], input_dtypes), COLUMNAR_FORMAT
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_base64_object(value)


class _InstanceColumn:
    """Accumulates one named input across instances, checking every item has one shape."""

    def __init__(self, dtype: int) -> None:
        self.dtype = dtype
        self.shape: Optional[List[int]] = None
        self.size = 0
        self.values: List[Any] = []

    def add(self, item: Any) -> None:
        if isinstance(item, list):
            shape = _dense_shape(item)
            flat: List[Any] = []
            _fill(item, 0, shape, self.dtype, flat)
        else:
            # A scalar per instance (every taxi column): skip the nested-list machinery,
            # which costs more than the conversion itself on a 64-row request.
            if isinstance(item, dict) and self.dtype != types_pb2.DT_STRING:
                raise _type_error(item, self.dtype)
            shape = _SCALAR_SHAPE
            flat = [_convert_leaf(item, self.dtype)]
        if self.shape is None:
            self.shape = shape
            self.size = math.prod(shape)
        elif self.size != len(flat):
            raise invalid_argument(f"Expecting tensor size: {self.size} but got: {len(flat)}")
        elif self.shape != shape:
            raise invalid_argument(
                f"Expecting shape [{','.join(map(str, self.shape))}] "
                f"but got: [{','.join(map(str, shape))}]"
            )
        self.values.extend(flat)

    def to_array(self, count: int) -> np.ndarray:
        return _to_numpy(self.values, [count] + list(self.shape or []), self.dtype)


_SCALAR_SHAPE: List[int] = []


def _scalar_column(values: List[Any], dtype: int) -> Optional[np.ndarray]:
    """Converts one input's per-instance scalars, or returns None when any value needs the
    general path (a wrong type, a lossy number, an infinity, a b64 object, a dtype without a
    fast rule), which then decides and words the answer."""
    if dtype in _DECIMAL_DTYPES:
        numpy_type, max_exact_int, _, _ = _DECIMAL_DTYPES[dtype]
        for value in values:
            kind = type(value)
            if kind is not float and not (kind is int and -max_exact_int <= value <= max_exact_int):
                return None
        with np.errstate(over="ignore"):  # An overflow is refused just below, not warned.
            array = np.array(values, dtype=numpy_type)
        # An infinity is either sent (allowed) or an overflow (refused): the general path knows.
        return None if np.isinf(array).any() else array
    if dtype in _INT_DTYPES:
        numpy_type, low, high = _INT_DTYPES[dtype]
        if any(type(value) is not int for value in values) or min(values) < low or max(values) > high:
            return None
        return np.array(values, dtype=numpy_type)
    if dtype == types_pb2.DT_STRING:
        if any(type(value) is not str for value in values):
            return None
        array = np.empty(len(values), dtype=object)
        array[:] = [value.encode("utf-8") for value in values]
        return array
    if dtype == types_pb2.DT_BOOL:
        if any(type(value) is not bool for value in values):
            return None
        return np.array(values, dtype=np.bool_)
    return None


def _scalar_instances(
    instances: List[Any], input_dtypes: Mapping[str, int]
) -> Optional[Dict[str, np.ndarray]]:
    """The fast path of the usual row request (the taxi model's): every instance an object
    with exactly the signature's inputs, each one scalar. Converts column by column instead of
    value by value; returns None for anything else, which `_inputs_from_instances` handles."""
    count = len(input_dtypes)
    for element in instances:
        if type(element) is not dict or len(element) != count:
            return None
    arrays = {}
    for name, dtype in input_dtypes.items():
        try:
            values = [element[name] for element in instances]
        except KeyError:
            return None
        array = _scalar_column(values, dtype)
        if array is None:
            return None
        arrays[name] = array
    return arrays


def _inputs_from_instances(
    instances: List[Any], input_dtypes: Mapping[str, int]
) -> Dict[str, np.ndarray]:
    if len(input_dtypes) > 1:
        arrays = _scalar_instances(instances, input_dtypes)
        if arrays is not None:
            return arrays
    if not _is_named_object(instances[0]) and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    named = _is_named_object(instances[0])
    input_names = sorted(input_dtypes)
    columns: Dict[str, _InstanceColumn] = {}
    for index, element in enumerate(instances):
        if named:
            if not _is_named_object(element):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, item in element.items():
                try:
                    column = columns.get(name)
                    if column is None:
                        if name not in input_dtypes:
                            raise invalid_argument(
                                f"JSON object: does not have named input: {name}"
                            )
                        column = columns[name] = _InstanceColumn(input_dtypes[name])
                    column.add(item)
                except StatusError as error:
                    raise StatusError(
                        error.code,
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {_status_text(error)}",
                    ) from error
            # Every key was just checked to be an input, so equal counts mean equal key sets.
            if len(element) != len(input_names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_text(element)} must only have keys: {','.join(input_names)}"
                )
        else:
            if _is_named_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            name = input_names[0]
            try:
                column = columns.get(name)
                if column is None:
                    column = columns[name] = _InstanceColumn(input_dtypes[name])
                column.add(element)
            except StatusError as error:
                raise StatusError(
                    error.code,
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {_status_text(error)}",
                ) from error
    return {name: column.to_array(len(instances)) for name, column in columns.items()}


def _status_text(error: StatusError) -> str:
    # TensorFlow Serving nests the inner Status::ToString(), which reads "CODE: message".
    return f"{error.code.name}: {error.message}"


def _inputs_from_columns(value: Any, input_dtypes: Mapping[str, int]) -> Dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        (name, dtype), = input_dtypes.items()
        return {name: json_to_array(value, dtype)}
    arrays = {}
    for name in sorted(input_dtypes):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], input_dtypes[name])
    return arrays


# ---------------------------------------------------------------------------------------------
# Classify / regress requests


def input_from_json(doc: Mapping[str, Any]) -> input_pb2.Input:
    """Builds the tf.Example `Input` of a classify or regress request.

    JSON decimals become `float_list`, integers and booleans `int64_list`, strings and
    `{"b64": ...}` objects `bytes_list`; a list value fills one feature with several values.

    Args:
        doc: The parsed request object with `examples` and optional `context`.

    Returns:
        An `Input` holding an `example_list`, or `example_list_with_context` with a context.

    Raises:
        StatusError: INVALID_ARGUMENT with TensorFlow Serving's message when `examples` is
            missing, empty or not a list, or a feature mixes kinds or holds null/nested lists.
    """
    request_input = input_pb2.Input()
    has_context = _CONTEXT_KEY in doc
    if has_context:
        request_input.example_list_with_context.context.CopyFrom(
            _example_from_json(doc[_CONTEXT_KEY])
        )
    if _EXAMPLES_KEY not in doc:
        # TensorFlow Serving says "classify" for regress requests too; kept for parity.
        raise invalid_argument(
            f"JSON Value: {value_to_text(doc)} When method is classify, key '{_EXAMPLES_KEY}' "
            "is expected and was not found"
        )
    examples = doc[_EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise invalid_argument(
            f"JSON Value: {value_to_text(doc)} Expecting '{_EXAMPLES_KEY}' value to be an list/array"
        )
    if not examples:
        raise invalid_argument(
            f"JSON Value: {value_to_text(doc)} '{_EXAMPLES_KEY}' value is an empty array"
        )
    target = (
        request_input.example_list_with_context.examples
        if has_context
        else request_input.example_list.examples
    )
    for example_json in examples:
        target.add().CopyFrom(_example_from_json(example_json))
    return request_input


def _example_from_json(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)
    return example


def _kind_error(name: str, feature: feature_pb2.Feature) -> StatusError:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind"), "UNKNOWN"
    )
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def require(expected: str) -> None:
        if kind not in (None, expected):
            raise _kind_error(name, feature)

    if value is None or isinstance(value, list) or (
        isinstance(value, dict) and not _is_base64_object(value)
    ):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        require("bytes_list")
        feature.bytes_list.value.append(_decode_base64_object(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        require("float_list")
        if math.isfinite(value) and abs(value) > _DECIMAL_DTYPES[types_pb2.DT_FLOAT][2]:
            raise _lossy_error(value, "float")
        feature.float_list.value.append(value)
    else:
        require("int64_list")
        if value >= 2**63:
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        if value < -(2**63):
            raise _lossy_error(value, "int64")
        feature.int64_list.value.append(value)


def serialized_examples(request_input: input_pb2.Input) -> List[bytes]:
    """Serializes an `Input` into one tf.Example string per example.

    With a context, each string is the context's serialization followed by the example's, which
    protobuf parses as the merge of both, exactly as TensorFlow Serving feeds them.

    Raises:
        StatusError: INVALID_ARGUMENT `Input is empty.` when there are no examples.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [example.SerializeToString() for example in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        examples = [
            context + example.SerializeToString()
            for example in request_input.example_list_with_context.examples
        ]
    else:
        examples = []
    if not examples:
        raise invalid_argument("Input is empty.")
    return examples


# ---------------------------------------------------------------------------------------------
# Writing


def format_decimal(value: float, single_precision: bool) -> str:
    """Writes a float the way TensorFlow Serving does: shortest round-trip text, `.0` on whole
    numbers, and NaN / Infinity / -Infinity for non-finite values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = str(np.float32(value)) if single_precision else repr(float(value))
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _scalar_writer(dtype: np.dtype, as_bytes: bool):
    """Returns a function that writes one element of an array of `dtype` as JSON text."""
    if dtype == np.float32 or dtype == np.float16:
        return lambda value: format_decimal(float(value), single_precision=True)
    if dtype.kind == "f":
        return lambda value: format_decimal(float(value), single_precision=False)
    if dtype == np.bool_:
        return lambda value: "true" if value else "false"
    if dtype.kind in "iu":
        return lambda value: str(int(value))
    if as_bytes:
        return lambda value: '{"b64": "%s"}' % base64.b64encode(_as_bytes(value)).decode("ascii")
    return _write_text


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _write_text(value: Any) -> str:
    raw = _as_bytes(value)
    try:
        return json.dumps(raw.decode("utf-8"), ensure_ascii=False)
    except UnicodeDecodeError:
        # JSON cannot hold arbitrary bytes; TensorFlow Serving would emit invalid JSON here.
        # Answer them base64-encoded instead, as the `_bytes` alias convention would.
        return '{"b64": "%s"}' % base64.b64encode(raw).decode("ascii")


def _write_array(array: np.ndarray, as_bytes: bool) -> str:
    """Writes an array as nested JSON lists (a 0-d array as a bare value)."""
    write = _scalar_writer(array.dtype, as_bytes)
    if array.ndim == 0:
        return write(array.item() if array.dtype != object else array[()])
    flat = [write(value) for value in array.ravel()]
    return _nest(iter(flat), list(array.shape))


def _write_rows(array: np.ndarray, as_bytes: bool) -> List[str]:
    """Writes each row (first-dimension slice) of an array as JSON text."""
    if array.ndim == 1:
        # One scalar per row, the usual prediction: no 0-d array per row.
        write = _scalar_writer(array.dtype, as_bytes)
        return [write(value) for value in (array if array.dtype == object else array.tolist())]
    # `[index, ...]` keeps each row an array, even a 0-d one of an object (string) array.
    return [_write_array(array[index, ...], as_bytes) for index in range(array.shape[0])]


def _nest(items: Iterator[str], shape: List[int]) -> str:
    if len(shape) == 1:
        return "[" + ", ".join(next(items) for _ in range(shape[0])) + "]"
    return "[" + ", ".join(_nest(items, shape[1:]) for _ in range(shape[0])) + "]"


def is_bytes_alias(name: str, array: np.ndarray) -> bool:
    """True when an output is a string tensor whose alias ends in `_bytes` (answered as b64)."""
    return array.dtype == object and name.endswith(BYTES_SUFFIX)


def predict_outputs_to_json(outputs: Mapping[str, np.ndarray], request_format: str) -> str:
    """Writes predict outputs as `{"predictions": ...}` (row) or `{"outputs": ...}` (columnar).

    Args:
        outputs: Output alias -> array.
        request_format: ROW_FORMAT or COLUMNAR_FORMAT, the format of the request.

    Returns:
        The JSON text of the answer.

    Raises:
        StatusError: INVALID_ARGUMENT when row format is asked for outputs without a common
            batch dimension (TensorFlow Serving's messages).
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == COLUMNAR_FORMAT:
        if len(names) == 1:
            body = _write_array(outputs[names[0]], is_bytes_alias(names[0], outputs[names[0]]))
        else:
            body = "{" + ", ".join(
                f"{json.dumps(name)}: {_write_array(outputs[name], is_bytes_alias(name, outputs[name]))}"
                for name in names
            ) + "}"
        return '{"outputs": ' + body + "}"

    batch_size = 0
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if array.shape[0] < 1:
            raise invalid_argument(f"Tensor name: {name} has invalid batch size: {array.shape[0]}")
        if batch_size and array.shape[0] != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch_size}"
            )
        batch_size = array.shape[0]
    rows_by_name = {
        name: _write_rows(outputs[name], is_bytes_alias(name, outputs[name])) for name in names
    }
    if len(names) == 1:
        rows = rows_by_name[names[0]]
    else:
        rows = [
            "{" + ", ".join(f"{json.dumps(name)}: {rows_by_name[name][index]}" for name in names) + "}"
            for index in range(batch_size)
        ]
    return '{"predictions": [' + ", ".join(rows) + "]}"


def classification_to_json(classifications: Sequence[Sequence[Tuple[str, float]]]) -> str:
    """Writes classify results as `{"results": [[["label", score], ...], ...]}`.

    Args:
        classifications: Per example, the (label, score) pairs in class order.
    """
    if not classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classes in classifications:
        rows.append(
            "["
            + ", ".join(
                f"[{json.dumps(label, ensure_ascii=False)}, {format_decimal(score, True)}]"
                for label, score in classes
            )
            + "]"
        )
    return '{"results": [' + ", ".join(rows) + "]}"


def regression_to_json(values: Sequence[float]) -> str:
    """Writes regress results as `{"results": [value, ...]}`."""
    if not len(values):
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return '{"results": [' + ", ".join(format_decimal(value, True) for value in values) + "]}"


def error_to_json(message: str) -> str:
    """Writes an error body `{"error": message}`."""
    return json.dumps({"error": message}, ensure_ascii=False)
