"""Unit tests of serving.client: URLs, payloads, missing-feature filling, error mapping, CLI.

No server and no network: requests and the gRPC stubs are replaced where a call is made.
"""
import json
import math
from typing import Any, Dict, List

import grpc
import pytest
import requests
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules import features
from serving import client
from serving.client import cli
from tests.conftest import SCHEMA_PATH, SHARED_TF_SERVING, trip

# How a raw column's schema type appears as a serving-signature dtype (its tf.io feature spec).
_DTYPE_BY_SCHEMA_TYPE = {schema_pb2.FLOAT: "DT_FLOAT", schema_pb2.INT: "DT_INT64", schema_pb2.BYTES: "DT_STRING"}

HALF_PLUS_TWO_METADATA = {
    "model_spec": {"name": "half_plus_two", "signature_name": "", "version": "123"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [], "unknown_rank": True}, "name": "x:0"}},
                    "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [], "unknown_rank": True}, "name": "y:0"}},
                    "method_name": "tensorflow/serving/predict",
                    "defaults": {},
                },
                "regress_x_to_y": {"inputs": {"inputs": {"dtype": "DT_STRING"}}, "outputs": {}},
            }
        }
    },
}


@pytest.fixture(scope="module")
def taxi_dtypes() -> Dict[str, str]:
    """The serving signature's input dtypes, as the model built from the shipped schema reports them."""
    schema = text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())
    types = {feature.name: _DTYPE_BY_SCHEMA_TYPE[feature.type] for feature in schema.feature}
    return {key: types[key] for key in features.RAW_FEATURE_KEYS}


class _FakeResponse:
    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text

    def json(self) -> Any:
        return json.loads(self.text)


class _RecordingRequests:
    """Stands in for requests.request: records each call and answers from a list."""

    def __init__(self, answers: List[_FakeResponse]) -> None:
        self.answers = list(answers)
        self.calls: List[Dict[str, Any]] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> _FakeResponse:
        self.calls.append({"method": method, "url": url, **kwargs})
        return self.answers.pop(0)


# --- URLs and payloads -------------------------------------------------------------------


def test_model_url_names_version_or_label():
    assert client.model_url("localhost:8501", "big_tipper") == "http://localhost:8501/v1/models/big_tipper"
    assert client.model_url("h:1", "m", version=7) == "http://h:1/v1/models/m/versions/7"
    assert client.model_url("https://h:1/", "m", label="stable") == "https://h:1/v1/models/m/labels/stable"
    # A label is a URL path segment: characters such as "/" must not change the route.
    assert client.model_url("h:1", "m", label="a/b c") == "http://h:1/v1/models/m/labels/a%2Fb%20c"


def test_model_url_refuses_version_and_label_together():
    with pytest.raises(ValueError, match=r"version \(3\) or a label \('stable'\), not both"):
        client.model_url("h:1", "m", version=3, label="stable")


def test_predict_body_is_row_format_with_optional_signature():
    assert json.loads(client.build_predict_request([1.0, 2.0])) == {"instances": [1.0, 2.0]}
    assert json.loads(client.build_predict_request([{"x": 1}], signature="regress_x_to_y")) == {
        "signature_name": "regress_x_to_y",
        "instances": [{"x": 1}],
    }


def test_predict_body_writes_nan_as_the_literal_tf_serving_accepts():
    body = client.build_predict_request([{"fare": math.nan}])
    assert body == '{"instances": [{"fare": NaN}]}'


def test_predict_body_accepts_numpy_values():
    import numpy as np

    body = client.build_predict_request([np.float32(1.5), np.array([1, 2])])
    assert json.loads(body) == {"instances": [1.5, [1, 2]]}


@pytest.mark.parametrize("instances", [[], {"x": 1.0}, "1.0"])
def test_predict_body_refuses_anything_but_a_non_empty_list(instances):
    with pytest.raises(ValueError, match="non-empty list of examples"):
        client.build_predict_request(instances)


# --- Errors ----------------------------------------------------------------------------------


def test_rest_error_carries_the_server_message_and_status():
    error = client.error_from_rest_response(
        404, '{ "error": "Servable not found for request: Latest(nope)" }', "http://h:1/v1/models/nope:predict"
    )
    assert error.http_status == 404
    assert error.grpc_code is None
    assert error.message == "Servable not found for request: Latest(nope)"
    assert str(error) == "http://h:1/v1/models/nope:predict: HTTP 404: Servable not found for request: Latest(nope)"


def test_rest_error_without_json_body_keeps_the_text():
    error = client.error_from_rest_response(502, "<html>Bad Gateway</html>\n", "http://h:1/v1/models/m")
    assert (error.http_status, error.message) == (502, "<html>Bad Gateway</html>")
    assert client.error_from_rest_response(503, "", "u").message == "(empty answer)"


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_grpc_error_carries_the_server_code_and_details():
    error = client.error_from_rpc_error(
        _FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "s" not found.'), "h:1 Predict"
    )
    assert error.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.http_status is None
    assert str(error) == 'h:1 Predict: gRPC FAILED_PRECONDITION: Serving signature key "s" not found.'


def test_predict_rest_sends_json_with_a_timeout_and_returns_predictions(monkeypatch):
    fake = _RecordingRequests([_FakeResponse(200, '{"predictions": [3.0, NaN]}')])
    monkeypatch.setattr(requests, "request", fake)
    predictions = client.predict_rest("h:1", "m", [2.0, 3.0], label="canary", timeout_s=2.5)
    assert predictions[0] == 3.0 and math.isnan(predictions[1])
    (call,) = fake.calls
    assert (call["method"], call["url"]) == ("POST", "http://h:1/v1/models/m/labels/canary:predict")
    assert call["timeout"] == 2.5
    assert json.loads(call["data"]) == {"instances": [2.0, 3.0]}


def test_predict_rest_raises_the_server_error(monkeypatch):
    body = '{"error": "Unrecognized servable version label: canary"}'
    monkeypatch.setattr(requests, "request", _RecordingRequests([_FakeResponse(400, body)]))
    with pytest.raises(client.ServingError, match="HTTP 400: Unrecognized servable version label: canary") as caught:
        client.predict_rest("h:1", "m", [1.0], label="canary")
    assert caught.value.http_status == 400


def test_rest_timeout_and_refused_connection_become_serving_errors(monkeypatch):
    def time_out(*args: Any, **kwargs: Any) -> None:
        raise requests.ReadTimeout("read timed out")

    monkeypatch.setattr(requests, "request", time_out)
    with pytest.raises(client.ServingError, match=r"http://h:1/v1/models/m: no answer: no answer within 0.5 s") as caught:
        client.model_status_rest("h:1", "m", timeout_s=0.5)
    assert caught.value.http_status is None


def test_rest_refuses_a_missing_timeout():
    with pytest.raises(ValueError, match="timeout_s must be positive, got 0"):
        client.model_status_rest("h:1", "m", timeout_s=0)


# --- Metadata and taxi trips --------------------------------------------------------------


def test_signature_inputs_reads_the_dtypes():
    assert client.signature_inputs(HALF_PLUS_TWO_METADATA) == {"x": "DT_FLOAT"}
    assert client.signature_inputs(HALF_PLUS_TWO_METADATA, "regress_x_to_y") == {"inputs": "DT_STRING"}


def test_signature_inputs_names_the_missing_signature():
    with pytest.raises(ValueError, match=r"no signature 'nope'; it has \['regress_x_to_y', 'serving_default'\]"):
        client.signature_inputs(HALF_PLUS_TWO_METADATA, "nope")


def test_signature_inputs_reads_tf_serving_s_own_metadata_answer():
    path = SHARED_TF_SERVING / "half_plus_two_model_metadata.json"
    if not path.exists():
        pytest.skip(f"TF Serving test data not found at {path}")
    assert client.signature_inputs(json.loads(path.read_text())) == {"x": "DT_FLOAT"}


def test_partial_trip_is_filled_with_the_missing_markers(taxi_dtypes):
    instance = client.fill_missing_features({"trip_miles": 1.2, "payment_type": "Cash"}, taxi_dtypes)
    assert sorted(instance) == sorted(features.RAW_FEATURE_KEYS)
    assert instance["trip_miles"] == 1.2 and instance["payment_type"] == "Cash"
    assert math.isnan(instance["fare"])  # float feature
    assert instance["trip_start_hour"] == features.MISSING_INT == -1  # int feature
    assert instance["company"] == features.MISSING_STRING == ""  # string feature
    assert '"fare": NaN' in client.build_predict_request([instance])


def test_none_means_missing_and_a_csv_row_can_be_sent_whole(taxi_dtypes):
    row = trip(company=None, trip_seconds=None)  # carries tips and the pickup census tract too
    instance = client.fill_missing_features(row, taxi_dtypes)
    assert "tips" not in instance and "pickup_census_tract" not in instance
    assert instance["trip_start_timestamp"] == row["trip_start_timestamp"]  # the holiday join's key
    assert instance["company"] == "" and instance["trip_seconds"] == -1
    assert instance["fare"] == 10.0 and instance["dropoff_census_tract"] == 17031839100


def test_values_are_given_the_input_s_type(taxi_dtypes):
    instance = client.fill_missing_features({"fare": 10, "trip_start_hour": 19.0}, taxi_dtypes)
    assert instance["fare"] == 10.0 and isinstance(instance["fare"], float)
    assert instance["trip_start_hour"] == 19 and isinstance(instance["trip_start_hour"], int)


def test_a_misspelt_feature_is_refused_by_name(taxi_dtypes):
    with pytest.raises(ValueError, match=r"unknown taxi features \['trip_mile'\]"):
        client.fill_missing_features({"trip_mile": 1.2}, taxi_dtypes)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("fare", "ten", r"feature 'fare' is a number \(DT_FLOAT\), got 'ten'"),
        ("trip_start_hour", 19.5, r"feature 'trip_start_hour' is an integer \(DT_INT64\), got 19.5"),
        ("payment_type", 3, r"feature 'payment_type' is a string \(DT_STRING\), got 3"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_feature(taxi_dtypes, key, value, message):
    with pytest.raises(ValueError, match=message):
        client.fill_missing_features({key: value}, taxi_dtypes)


def test_a_served_model_without_a_feature_is_reported(taxi_dtypes):
    served = {key: dtype for key, dtype in taxi_dtypes.items() if key != "company"}
    with pytest.raises(ValueError, match=r"no input for features \['company'\].*modules.features disagree"):
        client.fill_missing_features({}, served)


def test_trips_errors_name_the_trip_position(taxi_dtypes):
    with pytest.raises(ValueError, match=r"trip 1: unknown taxi features \['colour'\]"):
        client.trips_to_instances([{"fare": 1.0}, {"colour": "red"}], taxi_dtypes)
    with pytest.raises(ValueError, match="non-empty list of objects"):
        client.trips_to_instances({"fare": 1.0}, taxi_dtypes)


def test_predict_trips_rest_reads_dtypes_from_metadata_then_predicts(monkeypatch, taxi_dtypes):
    metadata = {
        "model_spec": {},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {key: {"dtype": dtype} for key, dtype in taxi_dtypes.items()}}}}},
    }
    fake = _RecordingRequests([
        _FakeResponse(200, json.dumps(metadata)),
        _FakeResponse(200, '{"predictions": [0.25]}'),
    ])
    monkeypatch.setattr(requests, "request", fake)
    assert client.predict_trips_rest("h:1", "big_tipper", [{"payment_type": "Cash"}], version=5) == [0.25]
    assert [call["url"] for call in fake.calls] == [
        "http://h:1/v1/models/big_tipper/versions/5/metadata",
        "http://h:1/v1/models/big_tipper/versions/5:predict",
    ]
    (sent,) = json.loads(fake.calls[1]["data"])["instances"]
    assert sent["payment_type"] == "Cash" and math.isnan(sent["trip_miles"])


# --- gRPC requests -------------------------------------------------------------------------


def test_grpc_predict_request_has_one_typed_tensor_per_input(taxi_dtypes):
    import tensorflow as tf

    instances = client.trips_to_instances([{"fare": 12.5, "payment_type": "Cash"}, {"trip_start_hour": 7}], taxi_dtypes)
    request = client.build_predict_grpc_request("big_tipper", instances, taxi_dtypes, label="stable")
    assert request.model_spec.name == "big_tipper" and request.model_spec.version_label == "stable"
    assert sorted(request.inputs) == sorted(features.RAW_FEATURE_KEYS)
    fare = request.inputs["fare"]
    assert fare.dtype == tf.float32.as_datatype_enum
    assert [dim.size for dim in fare.tensor_shape.dim] == [2]
    assert tf.make_ndarray(fare)[0] == 12.5 and math.isnan(tf.make_ndarray(fare)[1])
    assert tf.make_ndarray(request.inputs["trip_start_hour"]).tolist() == [-1, 7]
    assert tf.make_ndarray(request.inputs["payment_type"]).tolist() == [b"Cash", b""]


def test_grpc_predict_request_for_a_single_input_signature():
    import tensorflow as tf

    request = client.build_predict_grpc_request("m", [2.0, 3.0], {"x": "DT_FLOAT"}, version=123, signature="sig")
    assert request.model_spec.version.value == 123 and request.model_spec.signature_name == "sig"
    assert tf.make_ndarray(request.inputs["x"]).tolist() == [2.0, 3.0]


def test_grpc_predict_request_names_the_input_at_fault():
    with pytest.raises(ValueError, match=r"input 'z' is not in the signature, which takes \['x'\]"):
        client.build_predict_grpc_request("m", [{"z": 1.0}], {"x": "DT_FLOAT"})
    with pytest.raises(ValueError, match=r"several inputs \['a', 'b'\]: give each instance as an object"):
        client.build_predict_grpc_request("m", [1.0], {"a": "DT_FLOAT", "b": "DT_FLOAT"})
    with pytest.raises(ValueError, match=r"instance 1 has inputs \['b'\], instance 0 has \['a'\]"):
        client.build_predict_grpc_request("m", [{"a": 1.0}, {"b": 1.0}], {"a": "DT_FLOAT", "b": "DT_FLOAT"})
    with pytest.raises(ValueError, match=r"input 'x' \(DT_FLOAT\)"):
        client.build_predict_grpc_request("m", [[1.0], [1.0, 2.0]], {"x": "DT_FLOAT"})


def test_grpc_calls_always_carry_a_deadline_and_map_errors(monkeypatch):
    from tensorflow_serving.apis import model_service_pb2_grpc

    seen: Dict[str, Any] = {}

    class FakeModelService:
        def __init__(self, channel: grpc.Channel) -> None:
            pass

        def GetModelStatus(self, request: Any, timeout: float) -> None:  # noqa: N802 (gRPC's name)
            seen["request"], seen["timeout"] = request, timeout
            raise _FakeRpcError(grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")

    monkeypatch.setattr(model_service_pb2_grpc, "ModelServiceStub", FakeModelService)
    with pytest.raises(client.ServingError, match="gRPC NOT_FOUND: Could not find any versions of model nope") as caught:
        client.model_status_grpc("localhost:1", "nope", version=4, timeout_s=1.5)
    assert caught.value.grpc_code == grpc.StatusCode.NOT_FOUND
    assert seen["timeout"] == 1.5
    assert seen["request"].model_spec.name == "nope" and seen["request"].model_spec.version.value == 4


def test_reload_config_refuses_an_invalid_config_before_calling():
    with pytest.raises(ValueError, match="not a valid ModelServerConfig"):
        client.reload_config_grpc("localhost:1", "model_config_list { config { nme: 'x' } }")


# --- Command line ------------------------------------------------------------------------------


def test_help_gives_worked_examples(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "python -m serving.client predict --host localhost --rest-port 8501 --model big_tipper" in out
    assert "--grpc" in out and "status --model big_tipper" in out


def test_cli_prints_the_status_as_json(monkeypatch, capsys):
    body = '{"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}'
    fake = _RecordingRequests([_FakeResponse(200, body)])
    monkeypatch.setattr(requests, "request", fake)
    assert cli.main(["status", "--host", "h", "--rest-port", "9", "--model", "m", "--label", "stable"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(body)
    assert fake.calls[0]["url"] == "http://h:9/v1/models/m/labels/stable"


def test_cli_reports_server_errors_and_bad_json(monkeypatch, capsys):
    fake = _RecordingRequests([_FakeResponse(404, '{"error": "Could not find any versions of model m"}')])
    monkeypatch.setattr(requests, "request", fake)
    assert cli.main(["status", "--model", "m"]) == 1
    assert "HTTP 404: Could not find any versions of model m" in capsys.readouterr().err
    assert cli.main(["predict", "--model", "m", "--json", "{trip"]) == 2
    assert "--json is not valid JSON" in capsys.readouterr().err
