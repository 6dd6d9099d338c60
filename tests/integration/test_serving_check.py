"""The pre-push serving check: the candidate must load in the model server and answer."""
import os
import shutil

import pytest

from pipeline.components.artifacts import read_trips
from pipeline.components.serving_check import check_model_serves

pytestmark = pytest.mark.slow


def _pushed_version(run):
    serving_dir = run["serving_model_dir"]
    return serving_dir / sorted(os.listdir(serving_dir))[0]


def _eval_trips(run, limit=8):
    examples_root = run["output_dir"] / "pipeline_root" / "CsvExampleGen" / "examples"
    return read_trips(str(next(examples_root.iterdir())), "eval", limit)


def test_a_sound_model_loads_and_answers(small_pipeline_run):
    trips = _eval_trips(small_pipeline_run)
    assert len(trips) == 8 and "payment_type" in trips[0]
    passed, detail = check_model_serves(str(_pushed_version(small_pipeline_run)), trips)
    assert passed, detail
    assert "answered 8 trips over REST and gRPC" in detail


def test_a_model_that_cannot_load_is_refused(small_pipeline_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(_pushed_version(small_pipeline_run), broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    passed, detail = check_model_serves(str(broken), _eval_trips(small_pipeline_run))
    assert not passed
    assert "did not load" in detail


def test_a_model_without_the_taxi_signature_is_refused(small_pipeline_run, tmp_path):
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * 2.0}

    model = Other()
    tf.saved_model.save(model, str(tmp_path / "other"), signatures={"serving_default": model.serve})
    passed, detail = check_model_serves(str(tmp_path / "other"), _eval_trips(small_pipeline_run))
    assert not passed
    assert "served signature has no input" in detail


def test_the_pushed_version_carries_the_warmup_file_it_was_checked_with(small_pipeline_run, tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.client import warmup

    version = _pushed_version(small_pipeline_run)
    path = version / warmup.WARMUP_FILE
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path))]
    assert len(logs) == 30
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"", "serving_tf_example"}
    assert "warmed up with 30 requests of" in small_pipeline_run["summary"].serving_check_detail
    # The server replays the file before the version is AVAILABLE: a record it cannot answer
    # keeps the version from loading, as in TF Serving.
    broken = tmp_path / "broken"
    shutil.copytree(version, broken)
    bad = prediction_log_pb2.PredictionLog()
    bad.predict_log.request.model_spec.signature_name = "no_such_signature"
    warmup.write_warmup(str(broken), [bad])
    passed, detail = check_model_serves(str(broken), _eval_trips(small_pipeline_run))
    assert not passed and "Failed to warm up model with record 0" in detail
