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
