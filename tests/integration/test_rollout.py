"""Canary and promotion against a running local server on the pipeline's real SavedModels:
labels move, the comparison scores both versions, every step is in ML Metadata, nothing is deleted."""
import json
import os
import shutil
import socket
import threading
import time

import pytest
import tensorflow as tf
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops.rollback import main as rollback_main
from pipeline.ops.rollback import pinned_config
from pipeline.ops.rollout import (
    ROLLOUT_EXECUTION_TYPE,
    RolloutError,
    agreement,
    distribution,
    format_comparison,
    judge,
    logged_trips,
    main,
    quality,
)
from serving import client
from serving.devserver.request_log import LOG_FILE_PREFIX, LOG_FILE_SUFFIX, RequestLogger, to_example
from tests.integration.serving_fixtures import (  # noqa: F401
    OFFSET_V1,
    OFFSET_V2,
    add_version,
    make_base_path,
    model_templates,
    start_server,
    wait_until,
)

LOGGED_TRIPS = 40


def _store(output_dir):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(output_dir / "metadata.db")
    return metadata_store.MetadataStore(connection)


def _record_push(output_dir, serving_dir, version):
    """Records `version` in ML Metadata as the Pusher records a push (a PushedModel artifact)."""
    store = _store(output_dir)
    [template] = store.get_artifacts_by_type("PushedModel")[-1:]
    pushed = metadata_store_pb2.Artifact()
    pushed.CopyFrom(template)
    pushed.ClearField("id")
    pushed.ClearField("create_time_since_epoch")
    pushed.ClearField("last_update_time_since_epoch")
    pushed.ClearField("external_id")
    pushed.ClearField("name")
    pushed.uri = str(serving_dir / str(version))
    pushed.custom_properties["pushed_version"].string_value = str(version)
    store.put_artifacts([pushed])


@pytest.fixture
def rollout_dir(small_pipeline_run, model_templates, tmp_path):  # noqa: F811
    """A copy of the pipeline's output with three pushed versions: the pipeline's, a copy of it
    pushed later (a canary as good as stable), and a model that answers without the taxi
    model's probabilities output (a canary that errs on every trip)."""
    output_dir = tmp_path / "output"
    output_dir.mkdir()
    shutil.copy(small_pipeline_run["output_dir"] / "metadata.db", output_dir / "metadata.db")
    serving_dir = output_dir / "serving_model"
    shutil.copytree(small_pipeline_run["serving_model_dir"], serving_dir)
    first = int(sorted(os.listdir(serving_dir))[0])
    shutil.copytree(serving_dir / str(first), serving_dir / str(first + 100))
    add_version(serving_dir, str(first + 200), model_templates[OFFSET_V1])
    for version in (first + 100, first + 200):
        _record_push(output_dir, serving_dir, version)
    return output_dir, serving_dir, (first, first + 100, first + 200)


def _labelled_version(rest_address, label):
    status = client.model_status_rest(rest_address, SERVING_MODEL_NAME, label=label)
    [entry] = status["model_version_status"]
    return int(entry["version"])


def _rollout_steps(output_dir):
    store = _store(output_dir)
    steps = []
    for execution in sorted(store.get_executions_by_type(ROLLOUT_EXECUTION_TYPE), key=lambda e: e.id):
        events = store.get_events_by_execution_ids([execution.id])
        inputs = store.get_artifacts_by_id([event.artifact_id for event in events])
        properties = {name: value.string_value for name, value in execution.properties.items()}
        properties["inputs"] = sorted(int(artifact.custom_properties["pushed_version"].string_value) for artifact in inputs)
        steps.append(properties)
    return steps


@pytest.mark.slow
def test_canary_compare_promote_then_a_failing_canary_is_aborted(rollout_dir, small_pipeline_run, tmp_path, capsys):
    output_dir, serving_dir, (first, good, broken) = rollout_dir
    before = sorted(os.listdir(serving_dir))
    config_file = output_dir / "models.config"
    log_dir = tmp_path / "request_log"
    # Stable is what serves: here the first version, pinned by a rollback, and the local server
    # reads that config as `python -m serving.model_server --model_config_file=...` does.
    assert rollback_main(["--output-dir", str(output_dir), "--to", str(first)]) == 0
    assert main(["canary", str(first), "--output-dir", str(output_dir)]) == 2
    assert "is the stable version already" in capsys.readouterr().err
    served = text_format.Parse(config_file.read_text(), model_server_config_pb2.ModelServerConfig())
    server = start_server(model_config=served, file_system_poll_wait_seconds=0)
    try:
        rest, grpc_address = f"127.0.0.1:{server.rest_port}", server.grpc_target
        common = ["--output-dir", str(output_dir), "--grpc", grpc_address]
        assert main(["abort", *common]) == 2
        assert "no canary runs" in capsys.readouterr().err

        assert main(["canary", str(good), *common]) == 0
        assert f"stable {first}, canary {good}" in capsys.readouterr().out
        assert _labelled_version(rest, "stable") == first
        assert _labelled_version(rest, "canary") == good
        assert main(["canary", str(broken), *common]) == 2
        assert f"a canary runs already: version {good}" in capsys.readouterr().err

        # Live traffic on the stable label, logged as the server's --request_log_dir logs it.
        logger = RequestLogger(str(log_dir), sampling_rate=1.0, model_name=SERVING_MODEL_NAME)
        server.service.request_hooks.append(logger)
        trips = [{"trip_miles": 0.5 + index / 4, "fare": 5.0 + index, "payment_type": ("Cash", "Credit Card")[index % 2]} for index in range(LOGGED_TRIPS)]
        client.predict_trips_rest(rest, SERVING_MODEL_NAME, trips, label="stable")
        server.service.request_hooks.remove(logger)
        logger.close()

        assert main(["compare", *common, "--request-log", str(log_dir), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        logged = result["logged"]
        assert logged["stable"]["trips"] == logged["canary"]["trips"] == LOGGED_TRIPS
        assert logged["stable"]["errors"] == logged["canary"]["errors"] == 0
        # The canary is a copy of stable: the same answers on every trip.
        assert logged["agreement"]["same_decision_share"] == 1.0
        assert logged["agreement"]["max_abs_difference"] < 1e-6
        # The newest span's eval trips scored through the server give what the pipeline's
        # NewestSpanEvaluator measured for this model (TFMA's AUC is bucketed, hence the tolerance).
        newest = small_pipeline_run["summary"].gate["newest_span"]["candidate"]
        span = result["newest_span"]
        assert span["span"] == 3
        assert span["stable"]["trips"] == newest["example_count"]
        assert span["stable"]["auc"] == pytest.approx(newest["auc"], abs=0.01)
        assert span["stable"]["binary_accuracy"] == pytest.approx(newest["binary_accuracy"], abs=1e-6)
        assert span["canary"]["auc"] == pytest.approx(span["stable"]["auc"], abs=1e-9)
        assert result["findings"] == []

        assert main(["promote", *common]) == 0
        assert f"stable {good}, canary none" in capsys.readouterr().out
        assert wait_until(lambda: _labelled_version(rest, "stable") == good)
        with pytest.raises(client.ServingError, match="Unrecognized servable version label: canary"):
            client.model_status_rest(rest, SERVING_MODEL_NAME, label="canary")

        # A canary that answers without the probabilities output errs on every trip: compare
        # says so and exits 3, abort hands everything back to stable.
        assert main(["canary", str(broken), *common]) == 0
        capsys.readouterr()
        assert main(["compare", *common, "--request-log", str(log_dir)]) == 3
        printed = capsys.readouterr().out
        assert f"canary refused {LOGGED_TRIPS} logged trips, stable 0" in printed
        assert f"canary refused {newest['example_count']:.0f} eval trips, stable 0" in printed
        assert main(["abort", *common]) == 0
        assert f"stable {good}, canary none" in capsys.readouterr().out
        assert _labelled_version(rest, "stable") == good
        assert len(client.predict_trips_rest(rest, SERVING_MODEL_NAME, trips[:3], label="stable")) == 3
        available = [int(v["version"]) for v in client.model_status_rest(rest, SERVING_MODEL_NAME)["model_version_status"] if v["state"] == "AVAILABLE"]
        assert available == [good]
    finally:
        server.stop()
    assert sorted(os.listdir(serving_dir)) == before
    [entry] = text_format.Parse(config_file.read_text(), model_server_config_pb2.ModelServerConfig()).model_config_list.config
    assert list(entry.model_version_policy.specific.versions) == [good]
    assert dict(entry.version_labels) == {"stable": good}

    steps = _rollout_steps(output_dir)
    assert [step["step"] for step in steps] == ["canary", "compare", "promote", "canary", "compare", "abort"]
    assert steps[0]["stable_version"] == str(first) and steps[0]["canary_version"] == str(good)
    assert steps[0]["inputs"] == [first, good]
    assert json.loads(steps[1]["result"])["findings"] == []
    assert steps[2]["stable_version"] == str(good) and steps[2]["previous_stable_version"] == str(first)
    assert steps[4]["canary_version"] == str(broken) and json.loads(steps[4]["result"])["findings"]
    assert steps[5]["aborted_canary_version"] == str(broken) and steps[5]["inputs"] == [good, broken]
    assert all(step["config_file"] == str(config_file) for step in steps)


@pytest.mark.slow
def test_rollout_refuses_a_version_that_is_not_pushed_and_writes_nothing(rollout_dir, capsys):
    output_dir, serving_dir, _ = rollout_dir
    assert main(["canary", "42", "--output-dir", str(output_dir)]) == 2
    assert "canary version 42 is not a complete pushed version" in capsys.readouterr().err
    assert not (output_dir / "models.config").exists()
    assert _rollout_steps(output_dir) == []
    assert main(["promote", "--output-dir", str(output_dir)]) == 2
    assert "no canary runs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["canary", "--output-dir", str(output_dir)])
    assert usage.value.code == 64


def _serving_dir_with(tmp_path, versions):
    serving_dir = tmp_path / "serving_model"
    for version in versions:
        (serving_dir / str(version)).mkdir(parents=True)
        (serving_dir / str(version) / "saved_model.pb").write_bytes(b"")
    return serving_dir


def test_a_config_whose_canary_is_not_on_disk_is_named(tmp_path, capsys):
    serving_dir = _serving_dir_with(tmp_path, [100])
    config = pinned_config("/models/big_tipper", {"stable": 100, "canary": 200})
    (tmp_path / "models.config").write_text(text_format.MessageToString(config))
    assert main(["status", "--serving-dir", str(serving_dir)]) == 2
    assert f"{tmp_path / 'models.config'} labels version 200 'canary', which is not a complete version under {serving_dir}" in capsys.readouterr().err
    assert main(["promote", "--serving-dir", str(serving_dir)]) == 2


def test_status_reads_the_labels_and_a_missing_target_is_a_usage_error(tmp_path, capsys):
    serving_dir = _serving_dir_with(tmp_path, [100, 200])
    assert main(["status", "--serving-dir", str(serving_dir)]) == 0
    assert "stable 200, canary none" in capsys.readouterr().out
    (tmp_path / "models.config").write_text(text_format.MessageToString(pinned_config("/m", {"stable": 100, "canary": 200})))
    assert main(["status", "--serving-dir", str(serving_dir)]) == 0
    assert "stable 100, canary 200" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["status"])
    assert usage.value.code == 64
    assert "give --output-dir" in capsys.readouterr().err


def test_compare_that_cannot_decide_does_not_pass():
    # Both labels refused every logged trip: equal errors, but nothing was compared.
    refused = [None] * 4
    logged = {"stable": distribution(refused), "canary": distribution(refused), "agreement": agreement(refused, refused), "request_log": "log"}
    assert judge(logged, None) == ([], ["stable refused all 4 logged trips"])
    result = {"stable": 1, "canary": 2, "logged": logged, "newest_span": None, "findings": [], "undecided": judge(logged, None)[1]}
    assert "verdict: cannot decide: stable refused all 4 logged trips" in format_comparison(result)
    # A newest span of one class has no AUC for either version.
    one_class = {"stable": quality([0.2, 0.7, 0.9], [True] * 3), "canary": quality([0.3, 0.6, 0.8], [True] * 3)}
    assert judge(None, one_class) == ([], ["auc of stable cannot be computed on the newest span: its answered trips hold one class only"])
    both_classes = {"stable": quality([0.2, 0.7], [False, True]), "canary": quality([0.3, 0.6], [False, True])}
    assert judge(None, both_classes) == ([], [])


def _write_log(path, trips):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for trip in trips:
            writer.write(to_example(trip).SerializeToString())


def _log_file(log_dir, unix_time, sequence):
    return log_dir / f"{LOG_FILE_PREFIX}{unix_time}-proxy-{sequence:06d}{LOG_FILE_SUFFIX}"


def test_compare_reads_the_newest_logged_trips_and_no_older_file(tmp_path):
    log_dir = tmp_path / "request_log"
    log_dir.mkdir()
    # The oldest file does not read: it is opened only when the newer ones hold too few trips.
    _log_file(log_dir, 1700000000, 1).write_bytes(b"not a TFRecord file")
    _write_log(_log_file(log_dir, 1700000100, 2), [{"trip_miles": float(miles)} for miles in range(3)])
    _write_log(_log_file(log_dir, 1700000200, 3), [{"trip_miles": float(miles)} for miles in range(3, 5)])
    assert [trip["trip_miles"] for trip in logged_trips(str(log_dir), 4)] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(RolloutError, match=f"request log file {_log_file(log_dir, 1700000000, 1)} does not read"):
        logged_trips(str(log_dir), 6)


def test_a_config_file_that_cannot_be_written_stops_the_step_before_the_server_changes(tmp_path, capsys):
    serving_dir = _serving_dir_with(tmp_path, [100, 200])
    state_file = tmp_path / "models.config"
    canary = ["canary", "200", "--stable", "100", "--serving-dir", str(serving_dir), "--config-file", str(state_file)]
    missing = tmp_path / "no_such_folder" / "models.config"
    assert main([*canary, "--config-file", str(missing)]) == 2
    assert f"config file {str(missing)!r}: its folder {str(missing.parent)!r} does not exist" in capsys.readouterr().err
    assert not state_file.exists()
    # A write that fails after the check (here the temporary file's name is taken by a folder)
    # is exit 1, naming the file, what holds the new config and how to finish.
    copy = tmp_path / "copy.config"
    (tmp_path / "copy.config.tmp").mkdir()
    assert main([*canary, "--config-file", str(copy)]) == 1
    assert f"writing the config file {copy} failed: Is a directory; the new config is in {state_file}, nothing was recorded; copy {state_file} to {copy}" in capsys.readouterr().err
    assert main(["status", "--serving-dir", str(serving_dir)]) == 0
    assert "stable 100, canary 200" in capsys.readouterr().out


def _refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_a_server_that_stops_answering_during_compare_is_exit_1_not_a_worse_canary(rollout_dir, tmp_path, capsys):
    output_dir, serving_dir, (first, good, _) = rollout_dir
    config = pinned_config(str(serving_dir), {"stable": first, "canary": good})
    (output_dir / "models.config").write_text(text_format.MessageToString(config))
    log_dir = tmp_path / "request_log"
    log_dir.mkdir()
    _write_log(_log_file(log_dir, 1700000000, 1), [{"trip_miles": 1.0 + index, "fare": 6.0 + index, "payment_type": "Cash"} for index in range(5)])
    server = start_server(model_config=config, shutdown_grace_seconds=0.0)
    stopping = threading.Thread(target=server.stop)

    def outage(record):
        # The server goes down while it answers the canary's first request, as in a crash or
        # a restart: that request is cancelled and the next ones find no server.
        if record.api == "Predict" and record.request.model_spec.version_label == "canary" and stopping.ident is None:
            stopping.start()
            wait_until(lambda: _refuses_connections(server.grpc_port), timeout=10.0)
            time.sleep(0.5)  # the stop cancels the calls in flight at once (no grace)

    server.service.request_hooks.append(outage)
    try:
        assert main(["compare", "--serving-dir", str(serving_dir), "--grpc", server.grpc_target, "--request-log", str(log_dir)]) == 1
        assert f"error: the server at {server.grpc_target} refused or did not answer" in capsys.readouterr().err
    finally:
        if stopping.ident is not None:
            stopping.join()
        else:
            server.stop()
