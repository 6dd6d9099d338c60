"""The local model server's gRPC API through the official tensorflow-serving-api stubs."""
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.integration.serving_fixtures import model_templates  # noqa: F401 - pytest fixture
from tests.integration.serving_fixtures import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    OFFSET_V1,
    OFFSET_V2,
    make_base_path,
    shared_model_path,
    slow_down,
    start_server,
)

pytestmark = pytest.mark.timeout(120)
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def half_plus_two_server():
    server = start_server(model_base_path=str(shared_model_path(HALF_PLUS_TWO)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trip_server(tmp_path_factory, model_templates):  # noqa: F811 - pytest fixture injection
    base_path = make_base_path(tmp_path_factory.mktemp("trips"), model_templates, {"3": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path))
    yield server
    server.stop()


def _prediction_stub(server) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(
            server.grpc_target,
            options=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
            ],
        )
    )


def _model_stub(server) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.grpc_target))


def _example_input(request, x: float) -> None:
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(x)


def _abort_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


# ---------------------------------------------------------------------------------------------
# TensorFlow Serving's own conformance cases


def test_predict_matches_tensorflow_serving(half_plus_two_server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
    response = _prediction_stub(half_plus_two_server).Predict(request, DEADLINE_S)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [3.0]
    assert response.model_spec.name == "default"
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_classify_matches_tensorflow_serving(half_plus_two_server):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    _example_input(request, 2.0)
    response = _prediction_stub(half_plus_two_server).Classify(request, DEADLINE_S)
    assert response.result.classifications[0].classes[0].score == 3.0
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == 123


def test_regress_matches_tensorflow_serving(half_plus_two_server):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    _example_input(request, 2.0)
    response = _prediction_stub(half_plus_two_server).Regress(request, DEADLINE_S)
    assert response.result.regressions[0].value == 3.0
    assert response.model_spec.signature_name == "regress_x_to_y"


def test_multi_inference_matches_tensorflow_serving(half_plus_two_server):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        task = request.tasks.add()
        task.model_spec.name = "default"
        task.model_spec.signature_name = signature
        task.method_name = method
    _example_input(request, 2.0)
    response = _prediction_stub(half_plus_two_server).MultiInference(request, DEADLINE_S)
    assert len(response.results) == 2
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert response.results[0].model_spec.signature_name == "regress_x_to_y"


def test_model_status_matches_tensorflow_serving(half_plus_two_server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    response = _model_stub(half_plus_two_server).GetModelStatus(request, DEADLINE_S)
    assert len(response.model_version_status) == 1
    status = response.model_version_status[0]
    assert status.version == 123
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def test_model_metadata_holds_the_signature_defs(half_plus_two_server):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    response = _prediction_stub(half_plus_two_server).GetModelMetadata(request, DEADLINE_S)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert response.model_spec.version.value == 123
    assert signature_map.signature_def["serving_default"].inputs["x"].name == "x:0"
    assert "classify_x_to_y" in signature_map.signature_def


def test_half_plus_three_answers_four():
    server = start_server(model_base_path=str(shared_model_path(HALF_PLUS_THREE)))
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "default"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
        response = _prediction_stub(server).Predict(request, DEADLINE_S)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [4.0]
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# The project's own model


def _trip_request(**overrides) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "trips"
    values = {
        "trip_miles": tf.make_tensor_proto([1.5, 2.0], dtype=tf.float32),
        "trip_start_hour": tf.make_tensor_proto([19, 7], dtype=tf.int64),
        "payment_type": tf.make_tensor_proto([b"Credit Card", b"Cash"]),
    }
    values.update(overrides)
    for alias, proto in values.items():
        if proto is not None:
            request.inputs[alias].CopyFrom(proto)
    return request


def test_predict_with_mixed_dtype_named_inputs(trip_server):
    response = _prediction_stub(trip_server).Predict(_trip_request(), DEADLINE_S)
    assert tf.make_ndarray(response.outputs["score"]).tolist() == [22.0, 111.0]
    assert tf.make_ndarray(response.outputs["hour"]).tolist() == [19, 7]
    assert tf.make_ndarray(response.outputs["payment_bytes"]).tolist() == [b"Credit Card", b"Cash"]
    # Outputs travel in the typed value fields, as TensorFlow Serving writes them.
    assert list(response.outputs["score"].float_val) == [22.0, 111.0]
    assert response.model_spec.version.value == 3


def test_predict_output_filter_returns_only_requested_outputs(trip_server):
    request = _trip_request()
    request.output_filter.append("hour")
    response = _prediction_stub(trip_server).Predict(request, DEADLINE_S)
    assert list(response.outputs) == ["hour"]


def test_messages_above_grpc_default_4_mib_are_accepted(trip_server):
    values = np.arange(2_000_000, dtype=np.float32)  # 8 MB of floats each way.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "trips"
    request.model_spec.signature_name = "plus_offset"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(values))
    response = _prediction_stub(trip_server).Predict(request, 60.0)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), values + OFFSET_V1)


@pytest.mark.parametrize(
    "make_request, code, message",
    [
        (
            lambda: predict_pb2.PredictRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Missing ModelSpec",
        ),
        (
            lambda: _renamed(_trip_request(), "missing"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(missing)",
        ),
        (
            lambda: _versioned(_trip_request(), 42),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(trips, 42)",
        ),
        (
            lambda: _labelled(_trip_request(), "canary"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: canary",
        ),
        (
            lambda: _signed(_trip_request(), "nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
        (
            lambda: _trip_request(payment_type=None),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input size does not match signature: 2!=3 len({trip_miles,trip_start_hour}) != "
            "len({payment_type,trip_miles,trip_start_hour}). Sent extra: {}. "
            "Missing but required: {payment_type}.",
        ),
        (
            lambda: _trip_request(tips=tf.make_tensor_proto([1.0])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Sent extra: {tips}.",
        ),
        (
            lambda: _trip_request(trip_miles=tf.make_tensor_proto([1.0, 2.0], dtype=tf.float64)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expects arg[trip_miles] to be float but double is provided",
        ),
        (
            lambda: _with_filter(_trip_request(), "nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "output tensor alias not found in signature: nope",
        ),
    ],
)
def test_bad_predict_requests_get_tensorflow_serving_codes(trip_server, make_request, code, message):
    stub = _prediction_stub(trip_server)
    error = _abort_of(lambda: stub.Predict(make_request(), DEADLINE_S))
    assert error.code() == code
    assert message in error.details()
    # The server keeps serving.
    assert stub.Predict(_trip_request(), DEADLINE_S).outputs["score"].float_val


def _renamed(request, name):
    request.model_spec.name = name
    return request


def _versioned(request, version):
    request.model_spec.version.value = version
    return request


def _labelled(request, label):
    request.model_spec.version_label = label
    return request


def _signed(request, signature):
    request.model_spec.signature_name = signature
    return request


def _with_filter(request, alias):
    request.output_filter.append(alias)
    return request


def test_classify_unknown_signature_is_invalid_argument(half_plus_two_server):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "nope"
    _example_input(request, 2.0)
    error = _abort_of(lambda: _prediction_stub(half_plus_two_server).Classify(request, DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "No signature was found with the name: nope"


def test_regress_without_examples_is_invalid_argument(half_plus_two_server):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    error = _abort_of(lambda: _prediction_stub(half_plus_two_server).Regress(request, DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Input is empty."


def test_multi_inference_rejects_different_models(half_plus_two_server):
    request = inference_pb2.MultiInferenceRequest()
    for name in ("default", "other"):
        task = request.tasks.add()
        task.model_spec.name = name
        task.model_spec.signature_name = "regress_x_to_y"
        task.method_name = "tensorflow/serving/regress"
    _example_input(request, 2.0)
    error = _abort_of(
        lambda: _prediction_stub(half_plus_two_server).MultiInference(request, DEADLINE_S)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must access the same model name" in error.details()


@pytest.mark.parametrize(
    "fields, message",
    [
        ([], "GetModelMetadataRequest must specify at least one metadata_field"),
        (["graph"], "Metadata field graph is not supported"),
    ],
)
def test_metadata_without_signature_def_field_is_invalid_argument(trip_server, fields, message):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "trips"
    request.metadata_field.extend(fields)
    error = _abort_of(lambda: _prediction_stub(trip_server).GetModelMetadata(request, DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


def test_model_status_of_unknown_model_is_not_found(trip_server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "missing"
    error = _abort_of(lambda: _model_stub(trip_server).GetModelStatus(request, DEADLINE_S))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find any versions of model missing"


def test_reload_config_swaps_models_and_labels(tmp_path, model_templates):  # noqa: F811
    from tensorflow_serving.config import model_server_config_pb2

    first = make_base_path(tmp_path / "first", model_templates, {"1": OFFSET_V1})
    second = make_base_path(tmp_path / "second", model_templates, {"1": OFFSET_V1, "2": OFFSET_V2})
    server = start_server(model_name="first", model_base_path=str(first))
    try:
        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add(name="second", base_path=str(second))
        model.model_platform = "tensorflow"
        model.model_version_policy.all.SetInParent()
        model.version_labels["stable"] = 1
        model.version_labels["canary"] = 2
        reload_request = model_management_pb2.ReloadConfigRequest(config=config)
        response = _model_stub(server).HandleReloadConfigRequest(reload_request, DEADLINE_S)
        assert response.status.error_code == 0

        stub = _prediction_stub(server)
        for label, expected in (("stable", 5.0 + OFFSET_V1), ("canary", 5.0 + OFFSET_V2)):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "second"
            request.model_spec.version_label = label
            request.model_spec.signature_name = "plus_offset"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([5.0], dtype=tf.float32))
            assert tf.make_ndarray(stub.Predict(request, DEADLINE_S).outputs["y"]).tolist() == [expected]
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "first"
        error = _abort_of(lambda: _model_stub(server).GetModelStatus(status_request, DEADLINE_S))
        assert error.code() == grpc.StatusCode.NOT_FOUND

        bad = model_server_config_pb2.ModelServerConfig()
        bad_model = bad.model_config_list.config.add(name="second", base_path=str(second))
        bad_model.version_labels["stable"] = 7
        error = _abort_of(
            lambda: _model_stub(server).HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=bad), DEADLINE_S
            )
        )
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "version 7 of model second, which is not currently available" in error.details()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Hostile requests: refused as the client's mistake, within bounded memory


def _plus_offset_request(fill) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "trips"
    request.model_spec.signature_name = "plus_offset"
    fill(request.inputs["x"])
    return request


def _declared(size, values, dtype=types_pb2.DT_FLOAT):
    def fill(tensor):
        tensor.dtype = dtype
        tensor.tensor_shape.dim.add(size=size)
        tensor.float_val.extend(values)

    return fill


def test_a_few_bytes_cannot_declare_millions_of_rows(trip_server):
    # TensorFlow's fill-with-the-last-value rule would expand this 20-byte tensor to 20M rows.
    error = _abort_of(lambda: _prediction_stub(trip_server).Predict(_plus_offset_request(_declared(20_000_000, [1.0])), DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "holds 20000000 elements but it carries 1 values" in error.details()
    # The rule still works for small tensors, as in TensorFlow.
    response = _prediction_stub(trip_server).Predict(_plus_offset_request(_declared(4, [2.0])), DEADLINE_S)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), np.full(4, 2.0 + OFFSET_V1, np.float32))


def test_a_resource_typed_tensor_is_the_clients_mistake(trip_server):
    error = _abort_of(lambda: _prediction_stub(trip_server).Predict(_plus_offset_request(_declared(1, [], types_pb2.DT_RESOURCE)), DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be of type DT_RESOURCE" in error.details()


def test_a_message_over_max_request_bytes_is_refused_before_decoding(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path), max_request_bytes=64 * 1024)
    try:
        values = np.arange(100_000, dtype=np.float32)  # 400 KB
        big = _plus_offset_request(lambda tensor: tensor.CopyFrom(tf.make_tensor_proto(values)))
        error = _abort_of(lambda: _prediction_stub(server).Predict(big, DEADLINE_S))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small = _plus_offset_request(_declared(1, [1.0]))
        assert tf.make_ndarray(_prediction_stub(server).Predict(small, DEADLINE_S).outputs["y"]).tolist() == [1.0 + OFFSET_V1]
    finally:
        server.stop()


def test_more_rows_than_max_request_rows_are_refused(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path), max_request_rows=10)
    try:
        big = _plus_offset_request(lambda tensor: tensor.CopyFrom(tf.make_tensor_proto(np.arange(11, dtype=np.float32))))
        error = _abort_of(lambda: _prediction_stub(server).Predict(big, DEADLINE_S))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "The request has 11 rows (first dimension of the inputs); this server accepts at most 10" in error.details()
    finally:
        server.stop()


def test_a_call_past_its_deadline_stops_before_its_response_is_built(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path), prometheus_path="/monitoring/prometheus/metrics")
    try:
        slow_down(server.manager.get_servable("trips"), 1.0)
        error = _abort_of(lambda: _prediction_stub(server).Predict(_plus_offset_request(_declared(1, [1.0])), 0.2))
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        page = ""
        while time.monotonic() < deadline and "devserver_abandoned_work_total{" not in page:
            time.sleep(0.2)
            page = urllib.request.urlopen(server.rest_url + "/monitoring/prometheus/metrics", timeout=10).read().decode()
        assert 'devserver_abandoned_work_total{stage="before encoding the response"} 1.0' in page
    finally:
        server.stop()
