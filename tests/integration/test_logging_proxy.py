"""The logging proxy in front of a model server, over real sockets, and the client's sampling.

The project's model server stands in for TensorFlow Serving upstream (it speaks the same REST and
gRPC API). Requests go through `serving.logging_proxy`; its log is read back by the skew check
(`pipeline.ops.skew`), which is what production has nothing else to feed it with.
"""
import gc
import json
import os
import pathlib
import socket
import threading
import time
import warnings

import grpc
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from pipeline.configs import CURATED_SCHEMA_PATH, DriftConfig
from pipeline.ops import skew
from serving import client
from serving.client.request_log import OPEN_FILE_PREFIX, RequestLog, to_example
from serving.devserver.request_log import LOG_FILE_PREFIX, read_log
from serving.logging_proxy import LoggingProxy, ProxyOptions, parse_flags
from tests.conftest import REPO_ROOT
from tests.integration.serving_fixtures import OFFSET_V1, make_base_path, model_templates, rest_call, start_server  # noqa: F401

MODEL = "trips"


@pytest.fixture(scope="module")
def upstream(model_templates, tmp_path_factory):  # noqa: F811
    base_path = make_base_path(tmp_path_factory.mktemp("trips_model") / MODEL, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name=MODEL, model_base_path=str(base_path))
    yield server
    server.stop()


def _proxy(upstream, log_dir: pathlib.Path, **overrides) -> LoggingProxy:
    options = ProxyOptions(
        upstream_rest=f"127.0.0.1:{upstream.rest_port}",
        upstream_grpc=upstream.grpc_target,
        request_log_dir=str(log_dir),
        sampling_rate=1.0,
        **overrides,
    )
    return LoggingProxy(options).start()


@pytest.fixture(scope="module")
def training_statistics(tmp_path_factory) -> str:
    """Statistics of a shipped span, computed as the pipeline's StatisticsGen does (typed by the
    curated schema)."""
    folder = tmp_path_factory.mktemp("statistics")
    options = tfdv.StatsOptions(schema=tfdv.load_schema_text(CURATED_SCHEMA_PATH), infer_type_from_schema=True)
    statistics = tfdv.generate_statistics_from_csv(
        str(REPO_ROOT / "data" / "span-1" / "data.csv"), stats_options=options, output_path=str(folder / "stats.tfrecord")
    )
    (folder / "FeatureStats.pb").write_bytes(statistics.SerializeToString())
    return str(folder / "FeatureStats.pb")


def _kinds(log_dir: pathlib.Path, feature: str):
    return [example.features.feature[feature].WhichOneof("kind") for example in read_log(str(log_dir)) if feature in example.features.feature]


def _rows(log_dir: pathlib.Path):
    rows = []
    for example in read_log(str(log_dir)):
        row = {}
        for name, feature in example.features.feature.items():
            values = getattr(feature, feature.WhichOneof("kind")).value
            row[name] = values[0].decode() if isinstance(values[0], bytes) else values[0]
        rows.append(row)
    return rows


def test_int_and_float_tokens_through_the_proxy_are_logged_as_floats_and_skew_scores_them(upstream, training_statistics, tmp_path):
    log_dir = tmp_path / "log"
    proxy = _proxy(upstream, log_dir)
    try:
        proxy_rest = f"127.0.0.1:{proxy.rest_port}"
        # Far longer trips than the training data has, half of them written as whole numbers.
        miles = [40, 45.5, 52, 61.25, 70, 83.75] * 5
        instances = [{"trip_miles": value, "trip_start_hour": 9, "payment_type": "Cash"} for value in miles]
        through_proxy = client.predict_rest(proxy_rest, MODEL, instances)
        direct = client.predict_rest(f"127.0.0.1:{upstream.rest_port}", MODEL, instances)
        assert through_proxy == direct
        # The columnar form, and gRPC (whose tensors the proxy parses from the raw bytes it forwards).
        status, _, answer = rest_call(
            f"http://{proxy_rest}/v1/models/{MODEL}:predict",
            {"inputs": {"trip_miles": [90, 99.5], "trip_start_hour": [23, 0], "payment_type": ["Cash", ""]}},
        )
        assert status == 200 and len(answer["outputs"]["score"]) == 2
        outputs = client.predict_grpc(f"127.0.0.1:{proxy.grpc_port}", MODEL, instances[:4])
        assert outputs["score"].tolist() == pytest.approx(direct[:4] if not isinstance(direct[0], dict) else [row["score"] for row in direct[:4]])
    finally:
        proxy.stop()
    assert proxy.request_log.stats().failed_requests == 0
    rows = _rows(log_dir)
    assert len(rows) == 30 + 2 + 4
    # Typed by the signature (trip_miles is DT_FLOAT): `40` and `45.5` are both float_list values.
    assert set(_kinds(log_dir, "trip_miles")) == {"float_list"}
    assert set(_kinds(log_dir, "trip_start_hour")) == {"int64_list"}
    assert sorted(row["trip_miles"] for row in rows[:30]) == sorted(float(value) for value in miles)
    # The empty string is the missing marker of a string input: left out, as an empty CSV cell is.
    assert sum("payment_type" not in row for row in rows) == 1
    assert not [name for name in os.listdir(log_dir) if not name.startswith(LOG_FILE_PREFIX)]

    scores = {score["feature"]: score for score in skew.skew_scores(training_statistics, str(log_dir), DriftConfig())}
    assert scores["trip_miles"]["measure"] == "Jensen-Shannon" and scores["trip_miles"]["score"] > 0.5
    assert scores["trip_miles"]["skewed"], scores["trip_miles"]


def test_upstream_errors_pass_through_unchanged_and_are_not_logged(upstream, tmp_path):
    log_dir = tmp_path / "log"
    proxy = _proxy(upstream, log_dir)
    try:
        for path, body in [
            (f"/v1/models/nope:predict", {"instances": [1.0]}),  # unknown model: 404
            (f"/v1/models/{MODEL}:predict", {"instances": [{"trip_miles": "far"}]}),  # bad value: 400
            (f"/v1/models/{MODEL}/versions/7", None),  # unknown version: 404
            (f"/v1/models/{MODEL}/metadata", None),  # fine: 200
            ("/elsewhere", None),  # outside /v1/: 404
        ]:
            direct = rest_call(f"http://127.0.0.1:{upstream.rest_port}{path}", body)
            proxied = rest_call(f"http://127.0.0.1:{proxy.rest_port}{path}", body)
            assert proxied[0] == direct[0] and proxied[2] == direct[2], path
            assert proxied[1]["Content-Type"] == direct[1]["Content-Type"]
        status, _, answer = rest_call(f"http://127.0.0.1:{proxy.rest_port}/v1/models/{MODEL}:predict", raw=b"{not json")
        assert status == 400 and "JSON Parse error" in answer["error"]
        with pytest.raises(client.ServingError) as refused:
            client.predict_grpc(f"127.0.0.1:{proxy.grpc_port}", "nope", [1.0], dtypes={"x": "DT_FLOAT"})
        assert refused.value.grpc_code == grpc.StatusCode.NOT_FOUND
        assert "Servable not found for request: Latest(nope)" in refused.value.message
        status = client.model_status_grpc(f"127.0.0.1:{proxy.grpc_port}", MODEL)
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        proxy.stop()
    assert proxy.request_log.stats().sampled_requests == 0
    assert not list(read_log(str(log_dir)))


def test_an_unreachable_upstream_answers_503_in_tf_serving_s_error_shape_and_is_counted(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    options = ProxyOptions(upstream_rest=f"127.0.0.1:{closed_port}", request_log_dir=str(tmp_path / "log"), sampling_rate=1.0, timeout_s=5.0)
    with LoggingProxy(options) as proxy:
        status, headers, answer = rest_call(f"http://127.0.0.1:{proxy.rest_port}/v1/models/{MODEL}:predict", {"instances": [1.0]})
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert f"upstream 127.0.0.1:{closed_port} unreachable" in answer["error"]
        _, _, metrics = rest_call(f"http://127.0.0.1:{proxy.rest_port}/monitoring/logging_proxy/metrics")
    assert 'logging_proxy_upstream_failures_total{entrypoint="REST"} 1' in metrics


def test_a_log_that_cannot_be_written_never_fails_the_request(upstream, tmp_path):
    log_dir = tmp_path / "log"
    proxy = _proxy(upstream, log_dir)
    try:
        # The log folder is gone and a file has its name: every write fails.
        os.rmdir(log_dir)
        log_dir.write_text("not a folder")
        instances = [{"trip_miles": 2, "trip_start_hour": 9, "payment_type": "Cash"}]
        assert client.predict_rest(f"127.0.0.1:{proxy.rest_port}", MODEL, instances)
        assert client.predict_grpc(f"127.0.0.1:{proxy.grpc_port}", MODEL, instances)["score"].shape == (1,)
        # The writer thread types and writes after the answers went out: wait until it is done.
        deadline = time.monotonic() + 30
        while proxy.request_log.stats().failed_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        _, _, metrics = rest_call(f"http://127.0.0.1:{proxy.rest_port}/monitoring/logging_proxy/metrics")
    finally:
        proxy.stop()
    stats = proxy.request_log.stats()
    assert stats.sampled_requests == 2 and stats.failed_requests == 2 and stats.logged_rows == 0
    lines = metrics.splitlines()
    assert "logging_proxy_sampled_requests_total 2" in lines and "logging_proxy_failed_requests_total 2" in lines
    assert "logging_proxy_logged_rows_total 0" in lines


def test_the_sampling_rate_logs_a_share_of_requests(upstream, tmp_path):
    log = RequestLog(str(tmp_path / "log"), sampling_rate=0.25, seed=3)
    options = ProxyOptions(
        upstream_rest=f"127.0.0.1:{upstream.rest_port}", request_log_dir=str(tmp_path / "log"), sampling_rate=0.25
    )
    with LoggingProxy(options, request_log=log) as proxy:
        for hour in range(40):
            client.predict_rest(f"127.0.0.1:{proxy.rest_port}", MODEL, [{"trip_miles": 1.0, "trip_start_hour": hour % 24, "payment_type": "Cash"}])
    logged = log.stats().logged_rows
    assert 3 <= logged <= 20, logged  # 10 expected; a fixed seed keeps it reproducible
    assert len(list(read_log(str(tmp_path / "log")))) == logged


def test_client_sampling_writes_the_same_typed_format(upstream, training_statistics, tmp_path):
    log_dir = tmp_path / "client_log"
    dtypes = client.signature_inputs(client.model_metadata_grpc(upstream.grpc_target, MODEL))
    with RequestLog(str(log_dir), sampling_rate=1.0) as log:
        instances = [{"trip_miles": value, "trip_start_hour": 8, "payment_type": "Credit Card"} for value in [3, 3.5, 40, 41.5] * 10]
        client.predict_grpc(upstream.grpc_target, MODEL, instances, dtypes=dtypes, request_log=log)
        # Another signature is not logged: it does not take the raw features.
        client.predict_grpc(upstream.grpc_target, MODEL, [1.0], signature="plus_offset", request_log=log)
    assert log.stats().logged_rows == 40
    assert set(_kinds(log_dir, "trip_miles")) == {"float_list"}
    scores = {score["feature"]: score for score in skew.skew_scores(training_statistics, str(log_dir), DriftConfig())}
    assert "trip_miles" in scores


def test_log_files_rotate_and_stay_bounded(tmp_path):
    log = RequestLog(str(tmp_path), sampling_rate=1.0, max_file_bytes=2000, max_files=2, writer_name="test")
    for index in range(100):
        log.submit(lambda index=index: [{"trip_miles": float(index), "payment_type": "Cash" * 10}])
    log.close()
    stats = log.stats()
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and all(name.startswith(LOG_FILE_PREFIX) for name in names)
    assert stats.completed_files > 2 and stats.deleted_files == stats.completed_files - 2
    # The newest rows are the ones kept.
    kept = [example.features.feature["trip_miles"].float_list.value[0] for example in read_log(str(tmp_path))]
    assert kept[-1] == 99.0 and kept == sorted(kept)


def test_a_value_of_no_form_of_its_type_is_counted_not_raised(tmp_path):
    with RequestLog(str(tmp_path), sampling_rate=1.0) as log:
        assert log.log_rows([{"trip_start_hour": 7.5}], {"trip_start_hour": "DT_INT64"})
        assert log.log_rows([{"trip_start_hour": 7.0}], {"trip_start_hour": "DT_INT64"})
    stats = log.stats()
    assert (stats.failed_requests, stats.logged_rows) == (1, 1)
    (example,) = read_log(str(tmp_path))
    assert list(example.features.feature["trip_start_hour"].int64_list.value) == [7]


def _write_records(path: pathlib.Path, miles) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for value in miles:
            writer.write(to_example({"trip_miles": float(value)}).SerializeToString())


def test_files_a_killed_writer_left_open_are_completed_when_a_writer_starts(tmp_path):
    # A proxy killed past its grace period (another pod, long gone) left two whole records and
    # one cut short by the kill; its own earlier process left one; a live writer's file is fresh.
    killed = tmp_path / f"{OPEN_FILE_PREFIX}{LOG_FILE_PREFIX}1700000000-other_pod_1-000003.tfrecord"
    _write_records(killed, [1, 2, 3])
    killed.write_bytes(killed.read_bytes()[:-5])
    long_ago = time.time() - 3600
    os.utime(killed, (long_ago, long_ago))
    restarted = tmp_path / f"{OPEN_FILE_PREFIX}{LOG_FILE_PREFIX}1700000100-proxy-000001.tfrecord"
    _write_records(restarted, [4])
    live = tmp_path / f"{OPEN_FILE_PREFIX}{LOG_FILE_PREFIX}1700000200-live_pod_1-000001.tfrecord"
    _write_records(live, [5])

    log = RequestLog(str(tmp_path), sampling_rate=1.0, writer_name="proxy")
    log.submit(lambda: [{"trip_miles": 6.0}])
    log.close()
    assert log.stats().recovered_files == 2
    assert sorted(os.listdir(tmp_path))[0] == live.name, "a file another writer may still write was touched"
    miles = sorted(example.features.feature["trip_miles"].float_list.value[0] for example in read_log(str(tmp_path)))
    assert miles == [1.0, 2.0, 4.0, 6.0]


def test_close_with_a_full_queue_and_a_stuck_writer_returns_in_time(tmp_path):
    release = threading.Event()
    log = RequestLog(str(tmp_path), sampling_rate=1.0, queue_size=3, writer_name="stuck")

    def stuck():
        release.wait(30)  # e.g. a metadata lookup that hangs
        return [{"trip_miles": 1.0}]

    assert log.submit(stuck)
    while log._queue.qsize():  # the writer has taken the stuck job
        time.sleep(0.01)
    for _ in range(3):
        assert log.submit(lambda: [{"trip_miles": 2.0}])
    assert not log.submit(lambda: [{"trip_miles": 3.0}])  # full: dropped
    closing = threading.Thread(target=log.close, kwargs={"timeout_s": 0.5})
    started = time.monotonic()
    closing.start()
    closing.join(10)
    returned_in = time.monotonic() - started
    release.set()
    closing.join(30)
    assert returned_in < 5, f"close() blocked {returned_in:.1f} s on a full queue"
    log._thread.join(10)
    # The stuck sample was written; the queued ones, past close's time, were dropped and counted.
    stats = log.stats()
    assert (stats.logged_rows, stats.dropped_requests, stats.completed_files) == (1, 4, 1)
    assert os.listdir(tmp_path) == log.own_files()


def test_a_request_submitted_while_the_log_closes_is_written_or_counted_dropped(tmp_path):
    log = RequestLog(str(tmp_path), sampling_rate=1.0, writer_name="race")
    enqueue = log._queue.put_nowait
    closing = threading.Thread(target=log.close)

    def close_between_check_and_enqueue(job):
        # close() runs after submit() saw the log open and before its job is queued.
        log._queue.put_nowait = enqueue
        closing.start()
        closing.join(0.5)
        enqueue(job)

    log._queue.put_nowait = close_between_check_and_enqueue
    accepted = log.submit(lambda: [{"trip_miles": 1.0}])
    closing.join(30)
    stats = log.stats()
    assert accepted and (stats.sampled_requests, stats.logged_rows, stats.dropped_requests) == (1, 1, 0)
    assert len(list(read_log(str(tmp_path)))) == 1


def test_start_stop_and_a_failed_start_leave_no_open_event_loop_or_client_session(upstream, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            _proxy(upstream, tmp_path / "ok").stop()
            failed = LoggingProxy(ProxyOptions(
                upstream_rest=f"127.0.0.1:{upstream.rest_port}", request_log_dir=str(tmp_path / "failed"),
                sampling_rate=1.0, rest_port=taken.getsockname()[1],
            ))
            with pytest.raises(RuntimeError, match=f"cannot bind REST to 127.0.0.1:{taken.getsockname()[1]}"):
                failed.start()
            del failed
            gc.collect()
    leaks = [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
    assert not [leak for leak in leaks if "event loop" in leak or "client session" in leak.lower()], leaks
    assert not [thread.name for thread in threading.enumerate() if thread.name == "proxy-rest"]


def test_command_line_flags_and_their_errors(capsys):
    options = parse_flags(["--upstream_rest=serving:8501", "--upstream_grpc=serving:8500", "--request_log_dir=/srv/log", "--sampling_rate=0.05"])
    assert (options.port, options.rest_port, options.sampling_rate) == (8500, 8501, 0.05)
    with pytest.raises(SystemExit):
        parse_flags(["--upstream_rest=serving:8501", "--request_log_dir=/srv/log", "--sampling_rate=1.5"])
    assert "--sampling_rate must be in (0, 1], got 1.5" in capsys.readouterr().err
