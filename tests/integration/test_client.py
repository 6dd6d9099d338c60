"""serving.client against a real model server over real sockets.

The server is the project's local model server (`serving.model_server`, the stand-in for
tensorflow_model_server that speaks the same REST and gRPC API), started in-process on free
ports. Two models:
- TensorFlow Serving's own test model half_plus_two (y = 0.5 x + 2) from
  ../shared/testdata/tf_serving, when that folder exists;
- a small SavedModel built here with the taxi model's serving signature (one input per raw
  feature, dtypes from the shipped schema, output `big_tipper_probability`), whose output
  reports which inputs arrived as missing markers.
"""
import json
import pathlib
import shutil
import subprocess
from typing import Dict, Iterator

import grpc
import pytest
import requests
import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules import features
from serving import client
from serving.client import cli
from tests.conftest import REPO_ROOT, SCHEMA_PATH, SHARED_TF_SERVING, trip

model_server = pytest.importorskip(
    "serving.model_server", reason="the local model server (serving/model_server.py) is not importable"
)

HALF_PLUS_TWO = SHARED_TF_SERVING / "saved_model_half_plus_two_cpu"
HALF_PLUS_TWO_2_VERSIONS = SHARED_TF_SERVING / "saved_model_half_plus_two_2_versions"
CONFIG = REPO_ROOT / "serving" / "deploy" / "config"
TAXI_MODEL = "big_tipper"
TIMEOUT_S = 30.0
# How a raw column's schema type appears as a serving-signature dtype (its tf.io feature spec).
_DTYPE_BY_SCHEMA_TYPE = {schema_pb2.FLOAT: "DT_FLOAT", schema_pb2.INT: "DT_INT64", schema_pb2.BYTES: "DT_STRING"}


def _start(argv) -> "model_server.ModelServer":
    """Starts the local server from tensorflow_model_server-style flags, on free ports."""
    options = model_server.build_options(
        model_server.parse_flags(["--port=0", "--rest_api_port=0", "--file_system_poll_wait_seconds=0", *argv])
    )
    return model_server.ModelServer(options).start()


def _rest(server) -> str:
    return f"127.0.0.1:{server.rest_port}"


def _grpc(server) -> str:
    return f"127.0.0.1:{server.grpc_port}"


@pytest.fixture(scope="module")
def half_plus_two() -> Iterator["model_server.ModelServer"]:
    if not HALF_PLUS_TWO.is_dir():
        pytest.skip(f"TensorFlow Serving test model not found at {HALF_PLUS_TWO}")
    server = _start(["--model_name=half_plus_two", f"--model_base_path={HALF_PLUS_TWO}"])
    yield server
    server.stop()


def _taxi_input_dtypes() -> Dict[str, str]:
    schema = text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())
    types = {feature.name: _DTYPE_BY_SCHEMA_TYPE[feature.type] for feature in schema.feature}
    return {key: types[key] for key in features.RAW_FEATURE_KEYS}


def _save_taxi_like_model(export_dir: pathlib.Path) -> None:
    """Saves a model with the taxi serving signature whose output tells which inputs were missing:
    0.5 if `fare` is NaN, + 0.25 if `trip_start_hour` is -1, + 0.125 if `company` is ""."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    from modules.signatures import PROBABILITY_OUTPUT

    dtypes = _taxi_input_dtypes()
    signature = {key: tf.TensorSpec([None], tf.as_dtype(types_pb2.DataType.Value(dtype)), name=key) for key, dtype in dtypes.items()}

    class TaxiLike(tf.Module):
        @tf.function(input_signature=[signature])
        def serve(self, raw):
            fare_missing = tf.cast(tf.math.is_nan(raw["fare"]), tf.float32)
            hour_missing = tf.cast(tf.equal(raw["trip_start_hour"], features.MISSING_INT), tf.float32)
            company_missing = tf.cast(tf.equal(raw["company"], features.MISSING_STRING), tf.float32)
            probability = 0.5 * fare_missing + 0.25 * hour_missing + 0.125 * company_missing
            return {PROBABILITY_OUTPUT: probability}

    module = TaxiLike()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve.get_concrete_function()})


@pytest.fixture(scope="module")
def taxi_server(tmp_path_factory) -> Iterator["model_server.ModelServer"]:
    """The taxi-like model served the way docker-compose.yml serves big_tipper: the project's
    monitoring and batching configs, a model folder of numeric versions."""
    serving_model_dir = tmp_path_factory.mktemp("serving_model")
    _save_taxi_like_model(serving_model_dir / "1717000000")
    server = _start([
        f"--model_name={TAXI_MODEL}",
        f"--model_base_path={serving_model_dir}",
        f"--monitoring_config_file={CONFIG / 'monitoring.config'}",
        "--enable_batching",
        f"--batching_parameters_file={CONFIG / 'batching.config'}",
    ])
    yield server
    server.stop()


# --- half_plus_two: the official conformance cases, through the client -------------------------


def test_predict_over_rest_and_grpc(half_plus_two):
    assert client.predict_rest(_rest(half_plus_two), "half_plus_two", [2.0, 3.0, 4.0], timeout_s=TIMEOUT_S) == [3.0, 3.5, 4.0]
    outputs = client.predict_grpc(_grpc(half_plus_two), "half_plus_two", [2.0, 3.0, 4.0], version=123, timeout_s=TIMEOUT_S)
    assert outputs["y"].tolist() == [3.0, 3.5, 4.0]


def test_status_is_the_same_over_rest_and_grpc(half_plus_two):
    over_rest = client.model_status_rest(_rest(half_plus_two), "half_plus_two", timeout_s=TIMEOUT_S)
    assert over_rest == {
        "model_version_status": [{"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
    }
    assert client.model_status_grpc(_grpc(half_plus_two), "half_plus_two", timeout_s=TIMEOUT_S) == over_rest


def test_metadata_is_tf_serving_s_and_the_same_over_grpc(half_plus_two):
    over_rest = client.model_metadata_rest(_rest(half_plus_two), "half_plus_two", timeout_s=TIMEOUT_S)
    expected = json.loads((SHARED_TF_SERVING / "half_plus_two_model_metadata.json").read_text())
    expected["model_spec"]["name"] = "half_plus_two"
    assert over_rest == expected
    assert client.model_metadata_grpc(_grpc(half_plus_two), "half_plus_two", timeout_s=TIMEOUT_S) == over_rest
    assert client.signature_inputs(over_rest) == {"x": "DT_FLOAT"}


def test_rest_errors_carry_the_server_message_and_status(half_plus_two):
    with pytest.raises(client.ServingError) as unknown_model:
        client.predict_rest(_rest(half_plus_two), "nope", [1.0])
    assert unknown_model.value.http_status == 404
    assert unknown_model.value.message == "Servable not found for request: Latest(nope)"
    with pytest.raises(client.ServingError) as unknown_version:
        client.predict_rest(_rest(half_plus_two), "half_plus_two", [1.0], version=99)
    assert (unknown_version.value.http_status, unknown_version.value.message) == (
        404, "Servable not found for request: Specific(half_plus_two, 99)"
    )
    with pytest.raises(client.ServingError, match="HTTP 400: Unrecognized servable version label: canary"):
        client.predict_rest(_rest(half_plus_two), "half_plus_two", [1.0], label="canary")
    with pytest.raises(client.ServingError, match="HTTP 404: Could not find any versions of model nope"):
        client.model_status_rest(_rest(half_plus_two), "nope")


def test_grpc_errors_carry_the_server_code(half_plus_two):
    with pytest.raises(client.ServingError) as unknown_model:
        client.model_status_grpc(_grpc(half_plus_two), "nope")
    assert unknown_model.value.grpc_code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(client.ServingError) as unknown_signature:
        client.predict_grpc(_grpc(half_plus_two), "half_plus_two", [1.0], signature="nope", dtypes={"x": "DT_FLOAT"})
    assert unknown_signature.value.grpc_code == grpc.StatusCode.FAILED_PRECONDITION
    assert unknown_signature.value.message == 'Serving signature key "nope" not found.'


def test_a_server_that_is_not_there_is_a_serving_error_without_status():
    with pytest.raises(client.ServingError, match="could not reach the server") as caught:
        client.model_status_rest("127.0.0.1:1", "half_plus_two", timeout_s=2)
    assert caught.value.http_status is None
    with pytest.raises(client.ServingError) as over_grpc:
        client.model_status_grpc("127.0.0.1:1", "half_plus_two", timeout_s=2)
    assert over_grpc.value.grpc_code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def test_cli_raw_predict_and_status(half_plus_two, capsys):
    port = str(half_plus_two.rest_port)
    assert cli.main(["predict", "--rest-port", port, "--model", "half_plus_two", "--raw", "--json", "[2.0, 4.0]"]) == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": [3.0, 4.0]}
    grpc_port = str(half_plus_two.grpc_port)
    assert cli.main(["predict", "--grpc", "--grpc-port", grpc_port, "--model", "half_plus_two", "--raw", "--json", "[2.0]"]) == 0
    assert json.loads(capsys.readouterr().out) == {"y": [3.0]}
    assert cli.main(["status", "--rest-port", port, "--model", "nope"]) == 1
    assert "HTTP 404: Could not find any versions of model nope" in capsys.readouterr().err


def test_rollback_by_reloading_a_pinned_labelled_config():
    """The README's rollback: pin two versions with labels, then move `stable` back."""
    if not HALF_PLUS_TWO_2_VERSIONS.is_dir():
        pytest.skip(f"TensorFlow Serving test model not found at {HALF_PLUS_TWO_2_VERSIONS}")
    server = _start(["--model_name=half_plus_two", f"--model_base_path={HALF_PLUS_TWO_2_VERSIONS}"])
    try:
        pinned = """
        model_config_list { config {
          name: "half_plus_two" base_path: "%s" model_platform: "tensorflow"
          model_version_policy { specific { versions: 123 versions: 124 } }
          version_labels { key: "stable" value: %d }
          version_labels { key: "canary" value: 124 }
        } }"""
        client.reload_config_grpc(_grpc(server), pinned % (HALF_PLUS_TWO_2_VERSIONS, 124), timeout_s=TIMEOUT_S)
        assert client.model_status_rest(_rest(server), "half_plus_two", label="stable")["model_version_status"][0]["version"] == "124"
        client.reload_config_grpc(_grpc(server), pinned % (HALF_PLUS_TWO_2_VERSIONS, 123), timeout_s=TIMEOUT_S)
        assert client.model_status_rest(_rest(server), "half_plus_two", label="stable")["model_version_status"][0]["version"] == "123"
        assert client.predict_rest(_rest(server), "half_plus_two", [2.0], label="stable") == [3.0]
        with pytest.raises(client.ServingError) as bad_label:
            client.reload_config_grpc(_grpc(server), pinned.replace("value: 124", "value: 999") % (HALF_PLUS_TWO_2_VERSIONS, 123))
        assert "999" in bad_label.value.message
    finally:
        server.stop()


# --- The taxi model: partial trips, missing markers, the project's configs ---------------------


def test_partial_trips_arrive_with_the_missing_markers_over_rest(taxi_server):
    trips = [
        {},  # everything missing: 0.5 + 0.25 + 0.125
        {"fare": 12.0, "trip_start_hour": 19, "company": "Flash Cab"},  # nothing missing that counts
        {"fare": None, "trip_start_hour": 7, "company": "Flash Cab"},  # fare given as None
        trip(company=None),  # a whole CSV row (label and timestamp are dropped)
    ]
    probabilities = client.predict_trips_rest(_rest(taxi_server), TAXI_MODEL, trips, timeout_s=TIMEOUT_S)
    assert probabilities == [0.875, 0.0, 0.5, 0.125]


def test_partial_trips_arrive_with_the_missing_markers_over_grpc(taxi_server):
    trips = [{}, {"fare": 12.0, "trip_start_hour": 19, "company": "Flash Cab"}, {"trip_start_hour": 7}]
    probabilities = client.predict_trips_grpc(_grpc(taxi_server), TAXI_MODEL, trips, timeout_s=TIMEOUT_S)
    assert probabilities == [0.875, 0.0, 0.625]


def test_taxi_dtypes_come_from_the_served_signature(taxi_server):
    dtypes = client.signature_inputs(client.model_metadata_grpc(_grpc(taxi_server), TAXI_MODEL, timeout_s=TIMEOUT_S))
    assert dtypes == _taxi_input_dtypes()
    # Given once, the dtypes spare the metadata call on each prediction.
    assert client.predict_trips_rest(_rest(taxi_server), TAXI_MODEL, [{"company": "x"}], dtypes=dtypes) == [0.75]


def test_cli_predicts_a_partial_trip(taxi_server, capsys):
    argv = ["predict", "--host", "127.0.0.1", "--rest-port", str(taxi_server.rest_port), "--model", TAXI_MODEL,
            "--json", '{"trip_miles": 1.2, "payment_type": "Cash"}']
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": [0.875]}
    assert cli.main(argv[:-1] + ['{"trip_mile": 1.2}']) == 2
    assert "unknown taxi features ['trip_mile']" in capsys.readouterr().err


def test_prometheus_page_is_where_prometheus_yml_scrapes(taxi_server):
    client.model_status_rest(_rest(taxi_server), TAXI_MODEL)
    (scrape,) = yaml.safe_load((CONFIG / "prometheus.yml").read_text())["scrape_configs"]
    page = requests.get(f"http://{_rest(taxi_server)}{scrape['metrics_path']}", timeout=TIMEOUT_S)
    assert page.status_code == 200
    assert ":tensorflow:serving:request_count" in page.text


def _compose_healthcheck(rest_port: int, model: str = TAXI_MODEL) -> subprocess.CompletedProcess:
    """Runs docker-compose.yml's healthcheck command against `rest_port` instead of 8501."""
    compose = yaml.safe_load((REPO_ROOT / "serving" / "deploy" / "docker-compose.yml").read_text())
    command = compose["services"]["serving"]["healthcheck"]["test"][1:]
    script = command[-1].replace("/8501", f"/{rest_port}").replace(f"/v1/models/{TAXI_MODEL} ", f"/v1/models/{model} ")
    return subprocess.run([*command[:-1], script], capture_output=True, text=True, timeout=20)


def test_compose_healthcheck_passes_once_the_model_is_available(taxi_server):
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("the healthcheck needs bash and timeout, as the tensorflow/serving image has")
    assert _compose_healthcheck(taxi_server.rest_port).returncode == 0
    assert _compose_healthcheck(taxi_server.rest_port, model="nope").returncode != 0
