"""The model server's fast paths give the same tensors and the same refusals as the general ones.

`serving.devserver.json_tensor` converts the usual row request (objects of scalars) column by column, and
`serving.devserver.inference.array_from_tensor_proto` decodes plain TensorProtos without
`tf.make_ndarray`; anything unusual goes the general way. These tests pin both sides.
"""
import base64
import math

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.devserver import json_tensor
from serving.devserver.errors import StatusError
from serving.devserver.inference import array_from_tensor_proto

FLOAT = types_pb2.DT_FLOAT
INT64 = types_pb2.DT_INT64
INT32 = types_pb2.DT_INT32
STRING = types_pb2.DT_STRING
BOOL = types_pb2.DT_BOOL
TAXI_LIKE = {"fare": FLOAT, "trip_start_hour": INT64, "payment_type": STRING}


def _rows(*instances):
    inputs, request_format = json_tensor.predict_inputs_from_json(
        {"instances": list(instances)}, TAXI_LIKE, ""
    )
    assert request_format == json_tensor.ROW_FORMAT
    return inputs


def _error(call) -> str:
    with pytest.raises(StatusError) as raised:
        call()
    return raised.value.message


def test_objects_of_scalars_become_one_typed_column_per_input():
    inputs = _rows(
        {"fare": 10.5, "trip_start_hour": 19, "payment_type": "Cash"},
        {"fare": 7, "trip_start_hour": -1, "payment_type": ""},
        {"fare": math.nan, "trip_start_hour": 0, "payment_type": "Crédit"},
    )
    assert inputs["fare"].dtype == np.float32 and inputs["fare"].shape == (3,)
    assert inputs["fare"][:2].tolist() == [10.5, 7.0] and math.isnan(inputs["fare"][2])
    assert inputs["trip_start_hour"].dtype == np.int64
    assert inputs["trip_start_hour"].tolist() == [19, -1, 0]
    assert inputs["payment_type"].dtype == object
    assert inputs["payment_type"].tolist() == [b"Cash", b"", "Crédit".encode("utf-8")]


def test_infinity_and_b64_still_arrive_through_the_general_path():
    inputs = _rows(
        {"fare": math.inf, "trip_start_hour": 1, "payment_type": {"b64": base64.b64encode(b"\xff").decode()}},
    )
    assert inputs["fare"].tolist() == [math.inf]
    assert inputs["payment_type"].tolist() == [b"\xff"]


@pytest.mark.parametrize(
    "instance, message",
    [
        (
            {"fare": 2**24, "trip_start_hour": 1, "payment_type": "Cash"},
            "Cannot convert JSON value: 16777216 to float without loss of precision.",
        ),
        (
            {"fare": 1e39, "trip_start_hour": 1, "payment_type": "Cash"},
            "Cannot convert JSON value: 1e+39 to float without loss of precision.",
        ),
        (
            {"fare": 1.0, "trip_start_hour": True, "payment_type": "Cash"},
            "JSON Value: true Type: True is not of expected type: int64",
        ),
        (
            {"fare": 1.0, "trip_start_hour": 1.5, "payment_type": "Cash"},
            "JSON Value: 1.5 Type: Number is not of expected type: int64",
        ),
        (
            {"fare": 1.0, "trip_start_hour": 1, "payment_type": 3},
            "JSON Value: 3 Type: Number is not of expected type: string",
        ),
        (
            {"fare": "1.0", "trip_start_hour": 1, "payment_type": "Cash"},
            'JSON Value: "1.0" Type: String is not of expected type: float',
        ),
    ],
)
def test_bad_values_are_refused_with_tensorflow_serving_s_message(instance, message):
    assert message in _error(lambda: _rows({"fare": 1.0, "trip_start_hour": 1, "payment_type": "Cash"}, instance))


def test_a_missing_or_unknown_key_is_refused_with_the_element_named():
    good = {"fare": 1.0, "trip_start_hour": 1, "payment_type": "Cash"}
    missing = {"fare": 1.0, "trip_start_hour": 1}
    assert "Failed to process element: 1 of 'instances' list." in _error(lambda: _rows(good, missing))
    unknown = {"fare": 1.0, "trip_start_hour": 1, "payment": "Cash"}
    assert "does not have named input: payment" in _error(lambda: _rows(good, unknown))


def test_integers_out_of_an_int32_input_s_range_are_refused():
    message = _error(
        lambda: json_tensor.predict_inputs_from_json(
            {"instances": [{"a": 1, "b": 2**40}]}, {"a": INT32, "b": INT32}, ""
        )
    )
    assert "is not of expected type: int32" in message


def test_one_row_prediction_is_written_like_before():
    outputs = {"p": np.array([0.25, 1.0, math.nan], dtype=np.float32)}
    assert json_tensor.predict_outputs_to_json(outputs, json_tensor.ROW_FORMAT) == (
        '{"predictions": [0.25, 1.0, NaN]}'
    )
    two = {"p": np.array([0.5], dtype=np.float32), "label_bytes": np.array([b"\x00"], dtype=object)}
    assert json_tensor.predict_outputs_to_json(two, json_tensor.ROW_FORMAT) == (
        '{"predictions": [{"label_bytes": {"b64": "AA=="}, "p": 0.5}]}'
    )


def _shape(*sizes: int) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in sizes]
    )


@pytest.mark.parametrize(
    "proto",
    [
        tf.make_tensor_proto(np.array([1.5, -2.0, math.nan], dtype=np.float32)),
        tf.make_tensor_proto(np.array([1.5], dtype=np.float32)),
        tf.make_tensor_proto(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float64)),
        tf.make_tensor_proto(np.array([1, -1, 2**40], dtype=np.int64)),
        tf.make_tensor_proto(np.array([7], dtype=np.int64)),
        tf.make_tensor_proto(np.array([3, 4], dtype=np.int32)),
        tf.make_tensor_proto(np.array([True, False])),
        tf.make_tensor_proto(np.array([b"Cash", b"", b"\xff"], dtype=object)),
        tf.make_tensor_proto(2.5),
        tf.make_tensor_proto(np.zeros([0], dtype=np.float32)),
        # Fewer values than elements: TensorFlow repeats the last one.
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=_shape(3), float_val=[1.0]),
        tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_shape=_shape(2), int64_val=[]),
        tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=_shape(2), string_val=[b"a"]),
        tf.make_tensor_proto(np.array([1, 2], dtype=np.uint8)),
    ],
    ids=lambda proto: f"{types_pb2.DataType.Name(proto.dtype)}{[dim.size for dim in proto.tensor_shape.dim]}",
)
def test_decoded_tensor_protos_equal_tensorflow_s_decoding(proto):
    decoded = array_from_tensor_proto("x", proto)
    expected = tf.make_ndarray(proto)
    assert decoded.dtype == expected.dtype
    assert decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.flags.writeable


def test_a_tensor_content_of_the_wrong_length_is_refused_naming_the_input():
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=_shape(3), tensor_content=b"\x00" * 5
    )
    assert _error(lambda: array_from_tensor_proto("fare", proto)).startswith(
        "Input fare: malformed TensorProto:"
    )
