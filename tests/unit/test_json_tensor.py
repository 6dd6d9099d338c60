"""TensorFlow Serving's REST JSON <-> tensor rules, without a server."""
import base64
import json
import math

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from serving.devserver import json_tensor
from serving.devserver.errors import StatusError

FLOAT = types_pb2.DT_FLOAT
INT64 = types_pb2.DT_INT64
STRING = types_pb2.DT_STRING


def _error(call) -> str:
    with pytest.raises(StatusError) as raised:
        call()
    return raised.value.message


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"   ", "JSON Parse error: The document is empty"),
        (b"{", "JSON Parse error: Expecting property name enclosed in double quotes at offset: 1"),
        (b"\xff", "JSON Parse error: Invalid encoding in string. at offset: 0"),
        (b"[1]", "JSON Value: [1] Is not object"),
        (b"[" * 100000 + b"]" * 100000, "JSON Parse error: document nested too deeply"),
    ],
)
def test_parse_errors_use_tensorflow_serving_wording(body, message):
    assert _error(lambda: json_tensor.parse_request_body(body)) == message


def test_nan_and_infinity_are_accepted():
    doc = json_tensor.parse_request_body(b'{"instances": [NaN, Infinity, -Infinity]}')
    inputs, _ = json_tensor.predict_inputs_from_json(doc, {"x": FLOAT}, "")
    assert math.isnan(inputs["x"][0]) and list(inputs["x"][1:]) == [math.inf, -math.inf]


def test_row_format_builds_one_batched_tensor_per_named_input():
    doc = {
        "instances": [
            {"miles": 1.5, "hour": 19, "payment": "Cash"},
            {"miles": 2, "hour": 7, "payment": {"b64": base64.b64encode(b"\x00\xff").decode()}},
        ]
    }
    inputs, request_format = json_tensor.predict_inputs_from_json(
        doc, {"miles": FLOAT, "hour": INT64, "payment": STRING}, ""
    )
    assert request_format == json_tensor.ROW_FORMAT
    assert inputs["miles"].dtype == np.float32 and inputs["miles"].tolist() == [1.5, 2.0]
    assert inputs["hour"].dtype == np.int64 and inputs["hour"].tolist() == [19, 7]
    assert inputs["payment"].tolist() == [b"Cash", b"\x00\xff"]


def test_columnar_format_keeps_nested_shapes():
    inputs, request_format = json_tensor.predict_inputs_from_json(
        {"inputs": [[1, 2], [3, 4], [5, 6]]}, {"x": FLOAT}, ""
    )
    assert request_format == json_tensor.COLUMNAR_FORMAT
    assert inputs["x"].shape == (3, 2)


@pytest.mark.parametrize(
    "value, dtype, message",
    [
        (True, FLOAT, "JSON Value: true Type: True is not of expected type: float"),
        ("1", INT64, 'JSON Value: "1" Type: String is not of expected type: int64'),
        (1.0, INT64, "JSON Value: 1.0 Type: Number is not of expected type: int64"),
        (2**63, INT64, "Type: Number is not of expected type: int64"),
        (3, STRING, "JSON Value: 3 Type: Number is not of expected type: string"),
        (None, FLOAT, "JSON Value: null Type: Null is not of expected type: float"),
        ({"x": 1}, FLOAT, 'JSON Value: {"x":1} Type: Object is not of expected type: float'),
        (16777217, FLOAT, "Cannot convert JSON value: 16777217 to float without loss of precision."),
        (1e39, FLOAT, "Cannot convert JSON value: 1e+39 to float without loss of precision."),
        ({"b64": "%%%"}, STRING, "Unable to base64 decode"),
        ({"b64": "QQ==", "x": 1}, STRING, "not formatted correctly for base64 data"),
        ([[1.0], 2.0], FLOAT, "JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM. "
                              "Expected at level: 2"),
        ([1.0, [2.0]], FLOAT, "Encountered list at unexpected level: 1 expected < 1"),
        (1.0, types_pb2.DT_COMPLEX64, "Conversion of JSON Value: 1.0 to type: DT_COMPLEX64"),
    ],
)
def test_values_of_the_wrong_type_are_refused(value, dtype, message):
    assert message in _error(lambda: json_tensor.json_to_array(value, dtype))


def test_double_keeps_integers_up_to_2_pow_53():
    assert json_tensor.json_to_array([2**53 - 1], types_pb2.DT_DOUBLE).tolist() == [2**53 - 1]


def test_ragged_instances_are_refused():
    message = _error(
        lambda: json_tensor.predict_inputs_from_json({"instances": [[1, 2], [[3, 4]]]}, {"x": FLOAT}, "")
    )
    assert message.startswith("Failed to process element: 1 of 'instances' list. Error: ")
    message = _error(
        lambda: json_tensor.predict_inputs_from_json(
            {"instances": [[[1, 2]], [[3], [4]]]}, {"x": FLOAT}, ""
        )
    )
    assert "Expecting shape [1,2] but got: [2,1]" in message


def test_mixing_objects_and_values_in_instances_is_refused():
    message = _error(
        lambda: json_tensor.predict_inputs_from_json(
            {"instances": [{"x": 1.0}, 2.0]}, {"x": FLOAT}, ""
        )
    )
    assert message == "Expecting object but got list at item 1 of input list"
    message = _error(
        lambda: json_tensor.predict_inputs_from_json({"instances": [1.0, {"x": 2.0}]}, {"x": FLOAT}, "")
    )
    assert message == "Expecting value/list but got object at item 1 of input list"


def test_signature_without_inputs_is_reported():
    assert _error(
        lambda: json_tensor.predict_inputs_from_json({"instances": [1]}, {}, "")
    ) == "Failed to get input map for signature: DEFAULT"


def test_examples_map_json_types_to_feature_lists():
    request_input = json_tensor.input_from_json(
        {
            "context": {"city": "Chicago"},
            "examples": [
                {"miles": 1.5, "hour": 19, "cash": True, "raw": {"b64": "AAE="}, "tags": ["a", "b"]}
            ],
        }
    )
    example = request_input.example_list_with_context.examples[0]
    features = example.features.feature
    assert list(features["miles"].float_list.value) == [1.5]
    assert list(features["hour"].int64_list.value) == [19]
    assert list(features["cash"].int64_list.value) == [1]
    assert list(features["raw"].bytes_list.value) == [b"\x00\x01"]
    assert list(features["tags"].bytes_list.value) == [b"a", b"b"]
    serialized = json_tensor.serialized_examples(request_input)
    from tensorflow.core.example import example_pb2

    merged = example_pb2.Example.FromString(serialized[0])
    assert list(merged.features.feature["city"].bytes_list.value) == [b"Chicago"]
    assert list(merged.features.feature["hour"].int64_list.value) == [19]


@pytest.mark.parametrize(
    "examples, message",
    [
        ([{"x": [1, 2.5]}], "Unexpected element type in feature: x expecting type: int64"),
        ([{"x": [[1]]}], "Feature: x has element with unexpected JSON type: Array"),
        ([{"x": {"y": 1}}], "Feature: x has element with unexpected JSON type: Object"),
        ([{"x": 2**63}], "Feature: x has uint64 element. Only int64 is supported."),
        (["x"], "Example must be JSON object but got JSON String"),
    ],
)
def test_bad_examples_are_refused(examples, message):
    assert _error(lambda: json_tensor.input_from_json({"examples": examples})) == message


@pytest.mark.parametrize(
    "value, single, text",
    [
        (0.1, True, "0.1"),
        (3.0, True, "3.0"),
        (1e20, True, "1e+20"),
        (np.float32(3.1415927), True, "3.1415927"),
        (0.1, False, "0.1"),
        (123456789.0, False, "123456789.0"),
        (float("nan"), True, "NaN"),
        (float("inf"), False, "Infinity"),
        (float("-inf"), True, "-Infinity"),
    ],
)
def test_floats_are_written_shortest_with_a_decimal_point(value, single, text):
    assert json_tensor.format_decimal(value, single_precision=single) == text


def test_row_output_with_several_tensors_is_a_list_of_objects():
    text = json_tensor.predict_outputs_to_json(
        {
            "score": np.array([0.5, 1.0], dtype=np.float32),
            "label_bytes": np.array([b"\x00", b"b"], dtype=object),
            "label": np.array([b"a", "é".encode()], dtype=object),
        },
        json_tensor.ROW_FORMAT,
    )
    assert json.loads(text) == {
        "predictions": [
            {"score": 0.5, "label_bytes": {"b64": "AA=="}, "label": "a"},
            {"score": 1.0, "label_bytes": {"b64": "Yg=="}, "label": "é"},
        ]
    }


def test_columnar_output_writes_scalars_and_nan():
    text = json_tensor.predict_outputs_to_json(
        {"y": np.array(np.nan, dtype=np.float32), "n": np.array([[1, 2]], dtype=np.int64)},
        json_tensor.COLUMNAR_FORMAT,
    )
    assert text == '{"outputs": {"n": [[1, 2]], "y": NaN}}'


def test_row_output_needs_a_common_batch_dimension():
    message = _error(
        lambda: json_tensor.predict_outputs_to_json(
            {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}, json_tensor.ROW_FORMAT
        )
    )
    assert message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    message = _error(
        lambda: json_tensor.predict_outputs_to_json({"a": np.float32(1.0) * np.ones(())},
                                                    json_tensor.ROW_FORMAT)
    )
    assert message == "Tensor name: a has no shape information "


def test_undecodable_string_output_falls_back_to_b64():
    text = json_tensor.predict_outputs_to_json(
        {"out": np.array([b"\xff"], dtype=object)}, json_tensor.COLUMNAR_FORMAT
    )
    assert json.loads(text) == {"outputs": [{"b64": "/w=="}]}


def test_classify_and_regress_results():
    assert json_tensor.classification_to_json([[("a", 0.25), ("b", 0.75)]]) == (
        '{"results": [[["a", 0.25], ["b", 0.75]]]}'
    )
    assert json_tensor.regression_to_json([3.0, 0.5]) == '{"results": [3.0, 0.5]}'
