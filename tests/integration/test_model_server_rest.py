"""The local model server's REST API, over real sockets, against TF Serving's wire contract."""
import base64
import concurrent.futures
import json
import math
import re
import time

import pytest

from tests.integration.serving_fixtures import model_templates  # noqa: F401 - pytest fixture
from tests.integration.serving_fixtures import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_METADATA,
    OFFSET_V1,
    make_base_path,
    rest_call,
    shared_model_path,
    slow_down,
    start_server,
)

pytestmark = pytest.mark.timeout(120)

MAX_REQUEST_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def half_plus_two_server():
    """half_plus_two served as `default`, with Prometheus on (TF Serving's conformance setup)."""
    server = start_server(
        model_base_path=str(shared_model_path(HALF_PLUS_TWO)),
        prometheus_path="/monitoring/prometheus/metrics",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trip_server(tmp_path_factory, model_templates):  # noqa: F811 - pytest fixture injection
    """The project's own test model (float, int64 and string inputs) served as `trips`."""
    base_path = make_base_path(
        tmp_path_factory.mktemp("trips"), model_templates, {"1": OFFSET_V1}
    )
    server = start_server(
        model_name="trips",
        model_base_path=str(base_path),
        max_request_bytes=MAX_REQUEST_BYTES,
    )
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# TensorFlow Serving's own conformance cases (half_plus_two as `default`)


def test_row_predict_matches_tensorflow_serving(half_plus_two_server):
    status, headers, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:predict",
        {"instances": [2.0, 3.0, 4.0]},
    )
    assert (status, body) == (200, {"predictions": [3.0, 3.5, 4.0]})
    assert headers["Content-Type"] == "application/json"


def test_columnar_predict_matches_tensorflow_serving(half_plus_two_server):
    status, _, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}
    )
    assert (status, body) == (200, {"outputs": [3.0, 3.5, 4.0]})


def test_classify_matches_tensorflow_serving(half_plus_two_server):
    status, _, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
    )
    assert (status, body) == (200, {"results": [[["", 3.0]]]})


def test_regress_matches_tensorflow_serving(half_plus_two_server):
    status, _, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
    )
    assert (status, body) == (200, {"results": [3.0]})


def test_regress_with_context_merges_features(half_plus_two_server):
    status, _, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:regress",
        {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}, {"x": 2.0}]},
    )
    assert (status, body) == (200, {"results": [4.0, 3.0]})


def test_model_status_matches_tensorflow_serving(half_plus_two_server):
    status, _, body = rest_call(half_plus_two_server.rest_url + "/v1/models/default")
    assert status == 200
    assert body == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    status, _, body = rest_call(half_plus_two_server.rest_url + "/v1/models/default/versions/123")
    assert status == 200 and body["model_version_status"][0]["version"] == "123"


def test_metadata_equals_tensorflow_serving_body(half_plus_two_server):
    expected = json.loads(shared_model_path(HALF_PLUS_TWO_METADATA).read_text())
    status, headers, body = rest_call(half_plus_two_server.rest_url + "/v1/models/default/metadata")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == expected


def test_half_plus_three_answers_four(tmp_path):
    server = start_server(model_base_path=str(shared_model_path(HALF_PLUS_THREE)))
    try:
        _, _, body = rest_call(server.rest_url + "/v1/models/default:predict", {"instances": [2.0]})
        assert body == {"predictions": [4.0]}
    finally:
        server.stop()


def test_routes_are_case_insensitive(half_plus_two_server):
    status, _, body = rest_call(
        half_plus_two_server.rest_url + "/V1/Models/default/VERSIONS/123:PREDICT",
        {"instances": [2.0]},
    )
    assert (status, body) == (200, {"predictions": [3.0]})


def test_nan_and_infinity_round_trip(half_plus_two_server):
    status, headers, body = rest_call(
        half_plus_two_server.rest_url + "/v1/models/default:predict",
        raw=b'{"instances": [NaN, Infinity, -Infinity]}',
    )
    assert status == 200
    predictions = body["predictions"]
    assert math.isnan(predictions[0]) and predictions[1:] == [math.inf, -math.inf]


def test_prometheus_metrics_use_tensorflow_serving_names(half_plus_two_server):
    rest_call(half_plus_two_server.rest_url + "/v1/models/default:predict", {"instances": [1.0]})
    rest_call(half_plus_two_server.rest_url + "/v1/models/default:predict", {"instances": ["x"]})
    status, headers, text = rest_call(
        half_plus_two_server.rest_url + "/monitoring/prometheus/metrics"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="default",status="OK"}' in text
    assert ':tensorflow:serving:request_count{model_name="default",status="INVALID_ARGUMENT"}' in text
    assert (
        ':tensorflow:serving:request_latency_bucket{API="Predict",entrypoint="REST"' in text
    )
    assert ":tensorflow:serving:request_latency_count" in text
    # The version's SavedModel load, counted as TensorFlow's loader counts it.
    assert "# TYPE :tensorflow:cc:saved_model:load_attempt_count counter" in text
    assert re.search(r':tensorflow:cc:saved_model:load_attempt_count\{model_path="[^"]+",status="success"\} 1\.0', text)


def test_prometheus_page_is_absent_without_monitoring(trip_server):
    status, _, body = rest_call(trip_server.rest_url + "/monitoring/prometheus/metrics")
    assert status == 404 and "Not found" in body["error"]


# ---------------------------------------------------------------------------------------------
# The project's own model: several named inputs of mixed dtypes, strings, bytes


def test_row_predict_with_mixed_dtype_named_inputs(trip_server):
    status, _, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {
            "instances": [
                {"trip_miles": 1.5, "trip_start_hour": 19, "payment_type": "Credit Card"},
                {"trip_miles": 2.0, "trip_start_hour": 7, "payment_type": "Cash"},
            ]
        },
    )
    assert status == 200
    assert body == {
        "predictions": [
            {
                "score": 22.0,
                "hour": 19,
                "payment_upper": "CREDIT CARD",
                "payment_bytes": {"b64": base64.b64encode(b"Credit Card").decode()},
            },
            {
                "score": 111.0,
                "hour": 7,
                "payment_upper": "CASH",
                "payment_bytes": {"b64": base64.b64encode(b"Cash").decode()},
            },
        ]
    }


def test_columnar_predict_with_b64_string_input(trip_server):
    status, _, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {
            "inputs": {
                "trip_miles": [0.5],
                "trip_start_hour": [1],
                "payment_type": [{"b64": base64.b64encode(b"Cash").decode()}],
            }
        },
    )
    assert status == 200
    assert body["outputs"]["score"] == [102.0]
    assert body["outputs"]["payment_upper"] == ["CASH"]
    assert body["outputs"]["hour"] == [1]


def test_floats_are_written_in_shortest_form(trip_server):
    _, _, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {"signature_name": "plus_offset", "instances": [0.1, 1e20]},
    )
    assert body == {"predictions": [0.1, 1e20]}
    status, _, text = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {"signature_name": "plus_offset", "instances": [0.1]},
    )
    assert status == 200


def test_nested_instances_keep_their_shape(trip_server):
    status, _, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {"signature_name": "sum_pairs", "instances": [[1.0, 2.0], [3.0, 4.5]]},
    )
    assert (status, body) == (200, {"predictions": [3.0, 7.5]})


def test_label_and_version_urls_are_decoded(tmp_path, model_templates):  # noqa: F811
    from tensorflow_serving.config import model_server_config_pb2

    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name="my model", base_path=str(base_path))
    model.version_labels["new stable"] = 1
    server = start_server(model_config=config)
    try:
        status, _, body = rest_call(
            server.rest_url + "/v1/models/my%20model/labels/new%20stable:predict",
            {"signature_name": "plus_offset", "instances": [1.0]},
        )
        assert (status, body) == (200, {"predictions": [1.0]})
        status, _, body = rest_call(server.rest_url + "/v1/models/my%20model/labels/new%20stable")
        assert status == 200 and body["model_version_status"][0]["version"] == "1"
    finally:
        server.stop()


def test_many_concurrent_clients_all_get_their_own_answer(trip_server):
    url = trip_server.rest_url + "/v1/models/trips:predict"

    def one_call(index: int):
        return rest_call(url, {"signature_name": "plus_offset", "instances": [float(index)]})

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one_call, range(64)))
    assert [status for status, _, _ in results] == [200] * 64
    assert [body["predictions"] for _, _, body in results] == [[float(i)] for i in range(64)]


def test_slow_inference_answers_504_after_the_timeout(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "slow", model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="slow", model_base_path=str(base_path), rest_api_timeout_in_ms=200)
    try:
        slow_down(server.manager.get_servable("slow"), 1.0)
        status, headers, body = rest_call(
            server.rest_url + "/v1/models/slow:predict",
            {"signature_name": "plus_offset", "instances": [1.0]},
        )
        assert status == 504
        assert headers["Content-Type"] == "application/json"
        assert "Deadline exceeded" in body["error"]
    finally:
        server.stop()


def test_work_nobody_waits_for_is_stopped_after_the_504(tmp_path, model_templates):  # noqa: F811
    """One REST thread and a model call of 1 s against a 200 ms limit: the first request's
    response is never encoded, and the second, queued behind it, never runs the model."""
    base_path = make_base_path(tmp_path / "slow", model_templates, {"1": OFFSET_V1})
    server = start_server(
        model_name="slow", model_base_path=str(base_path), rest_api_timeout_in_ms=200, rest_api_num_threads=1,
        prometheus_path="/monitoring/prometheus/metrics",
    )
    try:
        servable = server.manager.get_servable("slow")
        original_run = servable.run
        model_calls = slow_down(servable, 1.0)
        url = server.rest_url + "/v1/models/slow:predict"
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda value: rest_call(url, {"signature_name": "plus_offset", "instances": [value]}), [1.0, 2.0]))
        assert [status for status, _, _ in answers] == [504, 504]
        time.sleep(1.5)  # the running model call ends; nothing runs after it
        assert len(model_calls) == 1
        _, _, page = rest_call(server.rest_url + "/monitoring/prometheus/metrics")
        assert 'devserver_abandoned_work_total{stage="before encoding the response"} 1.0' in page
        # The server is free again: a quick request is answered.
        servable.run = original_run
        status, _, body = rest_call(url, {"signature_name": "plus_offset", "instances": [3.0]})
        assert status == 200 and body["predictions"] == [3.0 + OFFSET_V1]
    finally:
        server.stop()


def test_more_rows_than_max_request_rows_are_refused_before_the_model_runs(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "rows", model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="rows", model_base_path=str(base_path), max_request_rows=10)
    try:
        url = server.rest_url + "/v1/models/rows:predict"
        status, _, body = rest_call(url, {"signature_name": "plus_offset", "instances": [float(i) for i in range(11)]})
        assert status == 400
        assert body["error"] == (
            "The request has 11 rows (first dimension of the inputs); this server accepts at most 10 per request "
            "(--max_request_rows): split it into smaller requests"
        )
        status, _, body = rest_call(url, {"signature_name": "plus_offset", "instances": [float(i) for i in range(10)]})
        assert status == 200 and len(body["predictions"]) == 10
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Bad input: the documented error, the documented status, and the server keeps running


@pytest.mark.parametrize(
    "path, payload, expected_status, expected_error",
    [
        ("/v1/models/trips:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("/v1/models/trips:predict", b'{"instances": [1.0', 400, "JSON Parse error: "),
        ("/v1/models/trips:predict", b"[1, 2]", 400, "Is not object"),
        (
            "/v1/models/trips:predict",
            b'{"instances": [], "inputs": []}',
            400,
            "expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        ("/v1/models/trips:predict", b'{"signature_name": "plus_offset"}', 400,
         "Missing 'inputs' or 'instances' key"),
        ("/v1/models/trips:predict", b'{"signature_name": 3, "instances": [1.0]}', 400,
         "'signature_name' key must be a string value."),
        ("/v1/models/trips:predict", b'{"signature_name": "plus_offset", "instances": []}', 400,
         "No values in 'instances' array"),
        (
            "/v1/models/trips:predict",
            b'{"signature_name": "plus_offset", "instances": ["a"]}',
            400,
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        (
            "/v1/models/trips:predict",
            b'{"instances": [{"trip_miles": 1.0, "trip_start_hour": 1.5, "payment_type": "x"}]}',
            400,
            "key: trip_start_hour of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 1.5 "
            "Type: Number is not of expected type: int64",
        ),
        (
            "/v1/models/trips:predict",
            b'{"instances": [{"trip_miles": 1.0, "trip_start_hour": 1}]}',
            400,
            "must only have keys: payment_type,trip_miles,trip_start_hour",
        ),
        (
            "/v1/models/trips:predict",
            b'{"instances": [{"trip_miles": 1.0, "trip_start_hour": 1, "payment_type": "x", '
            b'"tips": 1.0}]}',
            400,
            "JSON object: does not have named input: tips",
        ),
        (
            "/v1/models/trips:predict",
            b'{"instances": [1.0]}',
            400,
            "instances is a plain list, but expecting list of objects as multiple input tensors",
        ),
        (
            "/v1/models/trips:predict",
            b'{"inputs": {"trip_miles": [1.0], "trip_start_hour": [1]}}',
            400,
            "Missing named input: payment_type in 'inputs' object.",
        ),
        (
            "/v1/models/trips:predict",
            b'{"signature_name": "sum_pairs", "instances": [[1.0, 2.0], [3.0]]}',
            400,
            "Expecting tensor size: 2 but got: 1",
        ),
        (
            "/v1/models/trips:predict",
            b'{"signature_name": "sum_pairs", "inputs": [[1.0, 2.0], [3.0]]}',
            400,
            "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
        ),
        (
            "/v1/models/trips:predict",
            b'{"signature_name": "plus_offset", "instances": [16777217]}',
            400,
            "Cannot convert JSON value: 16777217 to float without loss of precision.",
        ),
        (
            "/v1/models/trips:predict",
            b'{"inputs": {"trip_miles": [1.0], "trip_start_hour": [1], '
            b'"payment_type": [{"b64": "***"}]}}',
            400,
            "Unable to base64 decode",
        ),
        ("/v1/models/trips:predict", b'{"signature_name": "nope", "instances": [1.0]}', 400,
         'Serving signature name: "nope" not found in signature def'),
        ("/v1/models/missing:predict", b'{"instances": [1.0]}', 404,
         "Servable not found for request: Latest(missing)"),
        ("/v1/models/trips/versions/99:predict", b'{"instances": [1.0]}', 404,
         "Servable not found for request: Specific(trips, 99)"),
        ("/v1/models/trips/labels/canary:predict", b'{"instances": [1.0]}', 400,
         "Unrecognized servable version label: canary"),
        ("/v1/models/trips/versions/99999999999999999999:predict", b'{"instances": [1.0]}', 400,
         "Failed to convert version: 99999999999999999999 to numeric."),
        ("/v1/models/..%2F..%2Fetc:predict", b'{"instances": [1.0]}', 404,
         "Servable not found for request: Latest(../../etc)"),
        ("/v1/models/trips:classify", b'{"examples": [{"x": 1.0}]}', 400,
         "Expected classification signature method_name to be tensorflow/serving/classify. "
         "Was: tensorflow/serving/predict"),
        ("/v1/models/trips:regress", b'{"signature_name": "nope", "examples": [{"x": 1.0}]}',
         400, "No signature was found with the name: nope"),
        ("/v1/models/trips:regress", b'{"signature_name": "plus_offset"}', 400,
         "When method is classify, key 'examples' is expected and was not found"),
        ("/v1/models/trips:regress", b'{"examples": []}', 400, "'examples' value is an empty array"),
        ("/v1/models/trips:regress", b'{"examples": [{"x": [1.0, "a"]}]}', 400,
         "Unexpected element type in feature: x expecting type: float"),
        ("/v1/models/trips:regress", b'{"examples": [{"x": null}]}', 400,
         "Feature: x has element with unexpected JSON type: Null"),
        ("/v1/models/trips:regress", b'{"examples": [3]}', 400,
         "Example must be JSON object but got JSON Number"),
    ],
)
def test_bad_predict_requests_get_tensorflow_serving_errors(
    trip_server, path, payload, expected_status, expected_error
):
    status, headers, body = rest_call(trip_server.rest_url + path, raw=payload, method="POST")
    assert status == expected_status, body
    assert headers["Content-Type"] == "application/json"
    assert expected_error in body["error"]
    # The server keeps serving after every bad request.
    status, _, _ = rest_call(trip_server.rest_url + "/v1/models/trips")
    assert status == 200


@pytest.mark.parametrize(
    "method, path, expected_status, expected_error",
    [
        ("GET", "/v1/models", 400, "Missing model name in request."),
        ("GET", "/v1/models/", 400, "Malformed request: GET /v1/models/"),
        ("GET", "/v1/models/missing", 404, "Could not find any versions of model missing"),
        ("GET", "/v1/models/trips/versions/7", 404, "Could not find version 7 of model trips"),
        ("GET", "/v1/models/trips/labels/stable", 400, "Unrecognized servable version label: stable"),
        ("GET", "/v1/models/missing/metadata", 404, "Servable not found for request: Latest(missing)"),
        ("GET", "/v1/models/trips:predict", 400, "Malformed request: GET /v1/models/trips:predict"),
        ("PUT", "/v1/models/trips", 400, "Malformed request: PUT /v1/models/trips"),
        ("DELETE", "/v1/models/trips", 400, "Malformed request: DELETE /v1/models/trips"),
        ("GET", "/v2/models/trips", 404, "Not found: GET /v2/models/trips"),
        ("GET", "/", 404, "Not found: GET /"),
    ],
)
def test_bad_routes_get_documented_errors(trip_server, method, path, expected_status, expected_error):
    status, headers, body = rest_call(trip_server.rest_url + path, method=method)
    assert status == expected_status, body
    assert headers["Content-Type"] == "application/json"
    assert expected_error in body["error"]


def test_oversize_body_is_refused_with_413_and_server_keeps_running(trip_server):
    payload = json.dumps(
        {"signature_name": "plus_offset", "instances": [1.0] * (MAX_REQUEST_BYTES // 4)}
    ).encode()
    assert len(payload) > MAX_REQUEST_BYTES
    status, headers, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict", raw=payload, method="POST"
    )
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert f"larger than the server's limit of {MAX_REQUEST_BYTES} bytes" in body["error"]
    status, _, body = rest_call(
        trip_server.rest_url + "/v1/models/trips:predict",
        {"signature_name": "plus_offset", "instances": [1.0]},
    )
    assert (status, body) == (200, {"predictions": [1.0]})


def test_model_status_and_metadata_of_own_model(trip_server):
    status, _, body = rest_call(trip_server.rest_url + "/v1/models/trips/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "trips", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    inputs = signatures["serving_default"]["inputs"]
    assert {alias: spec["dtype"] for alias, spec in inputs.items()} == {
        "trip_miles": "DT_FLOAT",
        "trip_start_hour": "DT_INT64",
        "payment_type": "DT_STRING",
    }


# ---------------------------------------------------------------------------------------------
# Hostile requests: the client's mistakes are 4xx with the reason


@pytest.mark.parametrize(
    "raw, headers, expected_error",
    [
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "Request body cannot be read: Can not decode content-encoding: gzip"),
        (b'{"signature_name": "plus_offset", "instances": ["\\ud800"]}', {}, "The surrogate pair in string is invalid"),
        (('{"signature_name": "plus_offset", "instances": %s}' % ("[" * 40 + "1.0" + "]" * 40)).encode(), {}, "a tensor has at most 32"),
    ],
    ids=["bad-gzip", "lone-surrogate", "nested-40-deep"],
)
def test_client_mistakes_are_400_with_the_reason(trip_server, raw, headers, expected_error):
    import urllib.request

    request = urllib.request.Request(trip_server.rest_url + "/v1/models/trips:predict", data=raw, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 400
    assert expected_error in json.loads(raised.value.read())["error"]


def test_a_body_that_never_finishes_is_answered_408_within_the_timeout(tmp_path, model_templates):  # noqa: F811
    import socket

    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path), rest_api_timeout_in_ms=1000)
    try:
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as connection:
            started = time.monotonic()
            connection.sendall(b"POST /v1/models/trips:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inst")
            answer = connection.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 408"), answer
            assert "Request body not received within 1000 ms" in answer
            assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_connections_with_stalled_headers_are_closed_after_the_timeout(tmp_path, model_templates):  # noqa: F811
    import socket

    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path), rest_api_timeout_in_ms=1000)
    try:
        connections = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) for _ in range(20)]
        started = time.monotonic()
        for connection in connections:
            connection.sendall(b"POST /v1/models/trips:predict HTTP/1.1\r\nHost: x\r\n")  # headers never end
        for connection in connections:
            assert connection.recv(4096) == b""  # closed by the server
            connection.close()
        assert time.monotonic() - started < 8
        # The server still answers.
        status, _, _ = rest_call(server.rest_url + "/v1/models/trips")
        assert status == 200
    finally:
        server.stop()


def test_a_version_folder_beyond_int64_is_ignored_as_tf_serving_does(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="trips", model_base_path=str(base_path))
    try:
        # Not a version: the server keeps serving version 1 and reports only it.
        (base_path / "99999999999999999999").mkdir()
        time.sleep(1.0)
        status, _, body = rest_call(server.rest_url + "/v1/models/trips")
        assert status == 200
        assert [entry["version"] for entry in body["model_version_status"]] == ["1"]
        status, _, body = rest_call(server.rest_url + "/v1/models/trips:predict", {"signature_name": "plus_offset", "instances": [1.0]})
        assert (status, body) == (200, {"predictions": [1.0 + OFFSET_V1]})
    finally:
        server.stop()
