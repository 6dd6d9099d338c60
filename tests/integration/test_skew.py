"""Training-serving skew: requests logged by the model server against the training statistics."""
import os

import pytest

from pipeline.components.artifacts import read_trips
from pipeline.configs import SERVING_MODEL_NAME, DriftConfig
from pipeline.ops import skew
from serving import client
from serving.devserver.request_log import RequestLogger, read_log
from serving.devserver.server import ModelServer, ServerOptions

pytestmark = pytest.mark.slow


def _serve_and_log(run, log_dir, trips):
    options = ServerOptions(
        model_name=SERVING_MODEL_NAME, model_base_path=str(run["serving_model_dir"]), port=0, rest_api_port=0
    )
    server = ModelServer(options)
    request_logger = RequestLogger(str(log_dir), sampling_rate=1.0, seed=0)
    server.service.request_hooks.append(request_logger)
    server.start()
    try:
        rest_address = f"127.0.0.1:{server.rest_port}"
        dtypes = client.signature_inputs(client.model_metadata_rest(rest_address, SERVING_MODEL_NAME))
        half = len(trips) // 2
        client.predict_trips_rest(rest_address, SERVING_MODEL_NAME, trips[:half], dtypes=dtypes)
        client.predict_trips_grpc(server.grpc_target, SERVING_MODEL_NAME, trips[half:], dtypes=dtypes)
    finally:
        server.stop()
    request_logger.close()
    return request_logger


@pytest.fixture(scope="module")
def eval_trips(small_pipeline_run):
    examples_root = small_pipeline_run["output_dir"] / "pipeline_root" / "CsvExampleGen" / "examples"
    trips = read_trips(str(next(examples_root.iterdir())), "eval", 300)
    return [{key: value for key, value in trip.items() if key not in ("tips", "trip_start_timestamp", "pickup_census_tract")} for trip in trips]


def test_requests_over_rest_and_grpc_are_logged_without_missing_markers(small_pipeline_run, eval_trips, tmp_path):
    request_logger = _serve_and_log(small_pipeline_run, tmp_path / "log", eval_trips[:10])
    logged = list(read_log(str(tmp_path / "log")))
    assert request_logger.logged_rows == 10 == len(logged)
    trips_without_company = [trip for trip in eval_trips[:10] if trip.get("company") is None]
    assert sum("company" not in example.features.feature for example in logged) == len(trips_without_company)


def test_a_feature_whose_serving_values_differ_is_flagged(small_pipeline_run, eval_trips, tmp_path):
    shifted = [dict(trip, fare=trip["fare"] * 4 if trip.get("fare") is not None else None) for trip in eval_trips]
    _serve_and_log(small_pipeline_run, tmp_path / "log", shifted)
    statistics = skew.training_statistics_path(str(small_pipeline_run["output_dir"]))
    scores = skew.skew_scores(statistics, str(tmp_path / "log"), DriftConfig())
    skewed = {score["feature"] for score in scores if score["skewed"]}
    assert "fare" in skewed
    assert "payment_type" not in skewed


def test_logged_traffic_becomes_an_unlabelled_span(small_pipeline_run, eval_trips, tmp_path):
    _serve_and_log(small_pipeline_run, tmp_path / "log", eval_trips[:6])
    data_root = tmp_path / "data"
    assert skew.main(["--request-log", str(tmp_path / "log"), "--output-dir", str(small_pipeline_run["output_dir"]),
                      "--to-span", str(data_root), "--span", "7"]) in (0, 3)
    lines = (data_root / "span-7" / "data.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].split(",")[-1] == "tips"
    assert not os.path.exists(data_root / "span-7" / "_SUCCESS")
    with pytest.raises(skew.SkewError, match="exists already"):
        skew.write_span(str(tmp_path / "log"), str(data_root), 7, ["fare"])


def test_an_empty_request_log_is_refused(tmp_path):
    (tmp_path / "log").mkdir()
    with pytest.raises(skew.SkewError, match="holds no requests-"):
        skew.skew_scores("unused", str(tmp_path / "log"), DriftConfig())


def test_ints_and_floats_in_one_float_column_are_scored_not_a_crash(small_pipeline_run, tmp_path):
    # A JSON client writes a whole fare as 7 and another as 7.25: the log holds an int64 and a
    # float for one feature, which TFDV alone cannot merge.
    import tensorflow as tf

    from serving.devserver.request_log import LOG_FILE_PREFIX, to_example

    log_dir = tmp_path / "log"
    log_dir.mkdir()
    with tf.io.TFRecordWriter(str(log_dir / f"{LOG_FILE_PREFIX}0.tfrecord")) as writer:
        for fare in [7, 7.25, 12, 30.5] * 30:
            writer.write(to_example({"fare": fare, "trip_miles": 1.5, "payment_type": "Cash"}).SerializeToString())
    statistics = skew.training_statistics_path(str(small_pipeline_run["output_dir"]))
    scores = {score["feature"]: score for score in skew.skew_scores(statistics, str(log_dir), DriftConfig())}
    assert "fare" in scores and scores["fare"]["score"] >= 0
