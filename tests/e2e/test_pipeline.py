"""The whole pipeline with LocalDagRunner on a small sample of the shipped trips: what ran,
what was blessed, what was pushed, and what was refused."""
import csv
import dataclasses
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tfx import v1 as tfx

from modules import features, signatures
from pipeline import configs, pipeline as pipeline_def, run_summary
from pipeline.pipeline import create_pipeline
from tests.conftest import DATA_ROOT, REPO_ROOT, trip, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROWS_PER_SPAN = 400
# Thresholds for a small sample: still far above a model that learnt nothing (AUC 0.5).
SAMPLE_THRESHOLDS = configs.BlessingThresholds(min_auc=0.85, min_binary_accuracy=0.8)
ALL_COMPONENTS = [
    pipeline_def.EXAMPLE_GEN,
    pipeline_def.STATISTICS_GEN,
    pipeline_def.SCHEMA_GEN,
    pipeline_def.EXAMPLE_VALIDATOR,
    pipeline_def.DATA_GATE,
    pipeline_def.TRANSFORM,
    pipeline_def.TRAINER,
    pipeline_def.MODEL_RESOLVER,
    pipeline_def.EVALUATOR,
    pipeline_def.PUSHER,
]


def _sample_data_root(root, spans=(1, 2, 3)):
    for span in spans:
        source = DATA_ROOT / f"span-{span}" / "data.csv"
        target = root / f"span-{span}" / "data.csv"
        target.parent.mkdir(parents=True)
        with open(source) as source_file, open(target, "w") as target_file:
            for index, line in enumerate(source_file):
                if index > ROWS_PER_SPAN:
                    break
                target_file.write(line)
    return root


def _run(data_root, output_dir, span_numbers, **option_overrides):
    options = dataclasses.replace(
        configs.PipelineOptions(train_steps=150, eval_steps=5, thresholds=SAMPLE_THRESHOLDS), **option_overrides
    )
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(
            pipeline_name=configs.PIPELINE_NAME,
            pipeline_root=str(output_dir / "pipeline_root"),
            data_root=str(data_root),
            spans=span_numbers,
            serving_model_dir=str(output_dir / "serving_model"),
            metadata_connection_config=connection,
            options=options,
        )
    )
    return run_summary.collect(connection, configs.PIPELINE_NAME), connection


def _versions(output_dir):
    serving_dir = output_dir / "serving_model"
    return sorted(os.listdir(serving_dir)) if serving_dir.exists() else []


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    data_root = _sample_data_root(tmp_path_factory.mktemp("data"))
    output_dir = tmp_path_factory.mktemp("output")
    summary, connection = _run(data_root, output_dir, [1, 2, 3])
    return {"data_root": data_root, "output_dir": output_dir, "summary": summary, "connection": connection}


def test_every_component_ran(first_run):
    from tfx.orchestration import metadata

    with metadata.Metadata(first_run["connection"]) as handler:
        node_names = {context.name for context in handler.store.get_contexts_by_type("node")}
    assert {f"{configs.PIPELINE_NAME}.{component}" for component in ALL_COMPONENTS} <= node_names
    assert first_run["summary"].spans == "1,2,3"
    assert first_run["summary"].anomalies == []


def test_good_model_is_blessed_and_pushed_as_a_numbered_version(first_run):
    summary = first_run["summary"]
    assert summary.blessed, summary.failed_thresholds
    assert summary.metrics["auc"][0] >= SAMPLE_THRESHOLDS.min_auc
    versions = _versions(first_run["output_dir"])
    assert len(versions) == 1 and versions[0].isdigit()
    assert summary.pushed_path.endswith(versions[0])
    assert (first_run["output_dir"] / "serving_model" / versions[0] / "saved_model.pb").exists()


def test_pushed_model_answers_raw_features(first_run):
    version_dir = first_run["output_dir"] / "serving_model" / _versions(first_run["output_dir"])[0]
    serving_default = tf.saved_model.load(str(version_dir)).signatures[signatures.SERVING_DEFAULT]
    spec = serving_default.structured_input_signature[1]
    card, cash = trip(), trip(payment_type="Cash")
    request = {
        key: tf.constant([card[key], cash[key]], dtype=spec[key].dtype) for key in features.RAW_FEATURE_KEYS
    }
    probabilities = serving_default(**request)[signatures.PROBABILITY_OUTPUT].numpy()
    # Cash tips are not recorded in the data: a cash trip is never a big tipper.
    assert probabilities[0] > 0.5 > probabilities[1]


def test_weak_model_is_not_blessed_and_adds_no_version(first_run):
    before = _versions(first_run["output_dir"])
    summary, _ = _run(
        first_run["data_root"], first_run["output_dir"], [1, 2, 3], hyperparameters={"learning_rate": 0.0}
    )
    assert summary.blessed is False
    assert _versions(first_run["output_dir"]) == before
    assert summary.pushed_path is None
    failures = "\n".join(summary.failed_thresholds)
    assert "auc" in failures and "below the required" in failures
    assert "lower than the serving model's" in failures


def test_schema_breaking_span_is_refused_before_training(first_run, tmp_path):
    data_root = _sample_data_root(tmp_path / "data", spans=(1,))
    write_csv(data_root / "span-2" / "data.csv", [trip(payment_type="Bitcoin"), trip(trip_start_hour=31)] * 20)
    serving_dir = first_run["output_dir"] / "serving_model"
    before = {path: os.path.getmtime(os.path.join(serving_dir, path)) for path in os.listdir(serving_dir)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_local.py"), "--data-root", str(data_root),
         "--output-dir", str(first_run["output_dir"]), "--train-steps", "20"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DATA REFUSED" in result.stderr
    assert "'payment_type'" in result.stdout and "Bitcoin" in result.stdout
    assert "'trip_start_hour'" in result.stdout
    after = {path: os.path.getmtime(os.path.join(serving_dir, path)) for path in os.listdir(serving_dir)}
    assert after == before
