"""The whole pipeline with LocalDagRunner on a small sample of the shipped trips: what ran,
what was blessed, what was pushed, and what was refused."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from modules import features, signatures
from pipeline import component_ids, configs
from tests.conftest import ANY_MODEL_THRESHOLDS, REPO_ROOT, SAMPLE_OPTIONS, SAMPLE_THRESHOLDS, run_small_pipeline, sample_data_root, trip, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ALL_COMPONENTS = [
    component_ids.EXAMPLE_GEN,
    component_ids.STATISTICS_GEN,
    component_ids.SCHEMA_GEN,
    component_ids.EXAMPLE_VALIDATOR,
    component_ids.DRIFT_CHECK,
    component_ids.EXTERNAL_TABLE_GEN,
    component_ids.EXTERNAL_FEATURE_CHECK,
    component_ids.DATA_GATE,
    component_ids.TRANSFORM,
    component_ids.TRAINER,
    component_ids.MODEL_RESOLVER,
    component_ids.EVALUATOR,
    component_ids.NEWEST_SPAN_EXAMPLE_GEN,
    component_ids.NEWEST_SPAN_EVALUATOR,
    component_ids.TRIVIAL_BASELINES,
    component_ids.MODEL_GATE,
    component_ids.PUSHER,
]


def _versions(output_dir):
    serving_dir = output_dir / "serving_model"
    return sorted(os.listdir(serving_dir)) if serving_dir.exists() else []


@pytest.fixture(scope="module")
def first_run(small_pipeline_run):
    return small_pipeline_run


@pytest.fixture
def own_copy(small_pipeline_run, tmp_path):
    """The shared run's output dir copied, so a test can add runs to it without changing what
    other tests (lineage, report) read from the shared one."""
    output_dir = tmp_path / "output"
    shutil.copytree(small_pipeline_run["output_dir"], output_dir)
    return {**small_pipeline_run, "output_dir": output_dir, "serving_model_dir": output_dir / "serving_model"}


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


def test_the_candidate_passed_the_serving_check_before_the_push(first_run):
    assert first_run["summary"].serves is True
    assert "answered" in first_run["summary"].serving_check_detail


def test_rerun_without_new_data_trains_nothing_and_pushes_nothing(own_copy):
    first_run = own_copy
    from tfx.orchestration import metadata

    # The copy's pipeline root is another folder, which ExampleGen's kept span examples name:
    # one run in the copy first, so the checked rerun finds its own run's outputs in the cache.
    run_small_pipeline(first_run["data_root"], first_run["output_dir"], [1, 2, 3])
    before = _versions(first_run["output_dir"])
    summary, connection = run_small_pipeline(first_run["data_root"], first_run["output_dir"], [1, 2, 3])
    assert _versions(first_run["output_dir"]) == before
    assert summary.pushed_path is None
    assert summary.already_serving_version == before[-1]
    with metadata.Metadata(connection) as handler:
        store = handler.store
        for component in (component_ids.EXAMPLE_GEN, component_ids.TRANSFORM, component_ids.TRAINER):
            context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component}")
            newest = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
            assert newest.last_known_state == newest.CACHED, component


def _newest_drift_report(connection):
    from tfx.orchestration import metadata

    from pipeline.components.artifacts import DriftReport, read_drift_report

    with metadata.Metadata(connection) as handler:
        newest = max(handler.store.get_artifacts_by_type(DriftReport.TYPE_NAME), key=lambda artifact: artifact.id)
    return read_drift_report(newest.uri)


def _newest_recorded_keys(connection, node: str, output: str, recorded_as: str = ""):
    """The kept span results (SPAN_STATISTICS_PROPERTY, or recorded_as) the node's newest output records."""
    from tfx.orchestration import metadata

    from pipeline.components.artifacts import SPAN_STATISTICS_PROPERTY
    from pipeline.ops import run_summary

    with metadata.Metadata(connection) as handler:
        artifact = run_summary.latest_node_outputs(handler.store, configs.PIPELINE_NAME, node, 0)[output][0]
    return json.loads(artifact.custom_properties[recorded_as or SPAN_STATISTICS_PROPERTY].string_value)


def test_a_window_moved_forward_reads_no_span_it_has_seen_again_after_other_code_changed(own_copy):
    from pipeline.components.artifacts import SPAN_EXAMPLES_PROPERTY

    # The first run's drift check computed and kept the statistics of spans 1 to 3, per split;
    # StatisticsGen merged them. The window of spans 2 and 3 finds every one kept.
    store = own_copy["output_dir"] / "pipeline_root" / configs.SPAN_STATISTICS_FOLDER
    first = _newest_drift_report(own_copy["connection"])
    kept = {span: by_split for span, by_split in first["span_statistics"].items()}
    assert sorted(kept) == ["1", "2", "3"] and all(set(by_split) == {configs.TRAIN_SPLIT, configs.EVAL_SPLIT} for by_split in kept.values())
    assert not any(entry["reused"] for by_split in kept.values() for entry in by_split.values())
    # The external-table check keeps each span's join beside them, one per table.
    joined = _newest_recorded_keys(own_copy["connection"], component_ids.EXTERNAL_FEATURE_CHECK, "report")
    assert sorted(joined) == ["1", "2", "3"] and not any(entry["reused"] for by_table in joined.values() for entry in by_table.values())
    recorded = [entry["key"] for by_part in (*kept.values(), *joined.values()) for entry in by_part.values()]
    assert {f"{key}{configs.SPAN_STATISTICS_SUFFIX}" for key in recorded} == set(os.listdir(store))
    # ExampleGen wrote each span's examples once and kept them.
    examples = _newest_recorded_keys(own_copy["connection"], component_ids.EXAMPLE_GEN, "examples", SPAN_EXAMPLES_PROPERTY)
    assert sorted(examples) == ["1", "2", "3"] and not any(entry["reused"] for by_split in examples.values() for entry in by_split.values())
    span_examples = own_copy["output_dir"] / "pipeline_root" / configs.SPAN_EXAMPLES_FOLDER
    assert {entry["key"] for by_split in examples.values() for entry in by_split.values()} == set(os.listdir(span_examples))
    # Another version of the project's code, whose statistics and join code are the same (say a
    # new Trainer module): every step runs again, and what was kept is still reused.
    other_code = SAMPLE_OPTIONS.code_fingerprint[::-1]
    summary, connection = run_small_pipeline(own_copy["data_root"], own_copy["output_dir"], [2, 3], code_fingerprint=other_code)
    moved = _newest_drift_report(connection)
    assert (moved["checked_span"], moved["reference_spans"]) == (3, [2])
    reused = {span: {split: {**entry, "reused": True} for split, entry in kept[span].items()} for span in ("2", "3")}
    assert moved["span_statistics"] == reused
    assert _newest_recorded_keys(connection, component_ids.STATISTICS_GEN, "statistics") == reused
    assert _newest_recorded_keys(connection, component_ids.EXTERNAL_FEATURE_CHECK, "report") == {
        span: {table: {**entry, "reused": True} for table, entry in joined[span].items()} for span in ("2", "3")
    }
    assert _newest_recorded_keys(connection, component_ids.EXAMPLE_GEN, "examples", SPAN_EXAMPLES_PROPERTY) == {
        span: {split: {**entry, "reused": True} for split, entry in examples[span].items()} for span in ("2", "3")
    }
    # The same trips, the same verdicts: span 3's statistics are the ones computed the first time.
    assert moved["anomalies"] == first["anomalies"] and moved["rows"]["span"] == first["rows"]["span"]


def test_weak_model_is_not_blessed_and_adds_no_version(own_copy):
    first_run = own_copy
    before = _versions(first_run["output_dir"])
    summary, _ = run_small_pipeline(
        first_run["data_root"], first_run["output_dir"], [1, 2, 3], hyperparameters={"learning_rate": 0.0}
    )
    assert summary.blessed is False
    assert _versions(first_run["output_dir"]) == before
    assert summary.pushed_path is None
    failures = "\n".join(summary.failed_thresholds)
    assert "auc" in failures and "below the required" in failures
    assert "lower than the serving model's" in failures


def test_schema_breaking_span_is_refused_before_training(own_copy, tmp_path):
    first_run = own_copy
    data_root = sample_data_root(tmp_path / "data", spans=(1,))
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


def test_a_drifted_span_stops_the_run_before_training(tmp_path):
    from tests.integration.test_drift import _changed_copy, _scaled_fares

    def drifted(row):
        # Fares tripled and the payment mix flipped (cash <-> credit card).
        row = _scaled_fares(3.0)(row)
        row["payment_type"] = {"Cash": "Credit Card", "Credit Card": "Cash"}.get(row["payment_type"], row["payment_type"])
        return row

    data_root = sample_data_root(tmp_path / "data", spans=(1,))
    _changed_copy(data_root / "span-1" / "data.csv", data_root / "span-2", drifted)
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_local.py"), "--data-root", str(data_root),
         "--output-dir", str(output_dir), "--train-steps", "20"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "span 2 drifted from spans 1" in result.stderr
    assert "fare Jensen-Shannon" in result.stderr and "payment_type L-infinity" in result.stderr
    assert f"python -m pipeline.accept --data-root {data_root} --output-dir {output_dir} --span 2" in result.stderr
    assert "DRIFT over threshold" in result.stdout
    assert not (output_dir / "serving_model").exists()


def test_a_model_that_only_knows_the_card_rule_is_refused(own_copy):
    # The sample's model (150 steps on 960 trips) ranks card-paid trips at random: all it knows is
    # the card rule. The sample floors bless it; the baselines and the card-paid slice do not.
    import dataclasses

    first_run = own_copy
    assert first_run["summary"].gate["card_slice"]["candidate"]["auc"] < 0.6
    before = _versions(first_run["output_dir"])
    thresholds = dataclasses.replace(SAMPLE_THRESHOLDS, min_auc_over_single_feature=0.01, card_min_auc=0.6)
    summary, _ = run_small_pipeline(first_run["data_root"], first_run["output_dir"], [1, 2, 3], thresholds=thresholds)
    assert summary.blessed is False
    assert _versions(first_run["output_dir"]) == before
    failures = "\n".join(summary.failed_thresholds)
    assert "does not beat the best single-feature rule (payment_type_xf, AUC" in failures
    assert "[payment_type=Credit Card]: auc" in failures and "is below the required 0.6000" in failures
    assert "below the required 0.85" not in failures  # the fixed floor alone would have blessed it
    assert summary.gate["trivial_baselines"]["best_single_feature"] == "payment_type_xf"


def test_a_candidate_worse_on_the_newest_span_is_refused(own_copy):
    # Floors and the whole split's no-regression are opened wide: only the newest span's
    # comparison with the serving model stands between this model and the Pusher.
    import dataclasses

    first_run = own_copy
    before = _versions(first_run["output_dir"])
    thresholds = dataclasses.replace(
        SAMPLE_THRESHOLDS, min_auc=0.0, min_binary_accuracy=0.0, max_auc_drop=1.0, max_binary_accuracy_drop=1.0
    )
    summary, _ = run_small_pipeline(
        first_run["data_root"], first_run["output_dir"], [1, 2, 3], thresholds=thresholds, hyperparameters={"learning_rate": 0.0}
    )
    assert summary.blessed is False
    assert _versions(first_run["output_dir"]) == before
    newest = summary.gate["newest_span"]
    assert newest["candidate"]["auc"] < newest["baseline"]["auc"] - thresholds.newest_span_max_auc_drop
    assert any(line.startswith("newest span: auc is ") and "lower than the serving model's" in line for line in summary.failed_thresholds)
    assert all(line.startswith("newest span: ") for line in summary.failed_thresholds), summary.failed_thresholds


def test_a_one_span_window_judges_the_newest_span_on_its_one_evaluation(own_copy):
    # The same refusal as above, on a window of span 3 alone: no second ExampleGen or Evaluator
    # runs, and the gate judges the newest-span limits on the Evaluator's metrics.
    import dataclasses

    from tfx.orchestration import metadata

    from pipeline.ops import metadata as metadata_setting
    from pipeline.ops import rollout

    first_run = own_copy
    with metadata.Metadata(first_run["connection"]) as handler:
        last_before = max(execution.id for execution in handler.store.get_executions())
    thresholds = dataclasses.replace(
        SAMPLE_THRESHOLDS, min_auc=0.0, min_binary_accuracy=0.0, max_auc_drop=1.0, max_binary_accuracy_drop=1.0
    )
    summary, connection = run_small_pipeline(
        first_run["data_root"], first_run["output_dir"], [3], thresholds=thresholds, hyperparameters={"learning_rate": 0.0}
    )
    assert summary.spans == "3"
    assert summary.blessed is False
    newest = summary.gate["newest_span"]
    assert newest["same_trips_as_window"] is True
    assert newest["candidate"]["auc"] == summary.gate["window"]["candidate"]["auc"]
    assert newest["candidate"]["auc"] < newest["baseline"]["auc"] - thresholds.newest_span_max_auc_drop
    assert summary.failed_thresholds and all(line.startswith("newest span: ") for line in summary.failed_thresholds), summary.failed_thresholds
    with metadata.Metadata(connection) as handler:
        type_names = {execution_type.id: execution_type.name for execution_type in handler.store.get_execution_types()}
        ran = [type_names[execution.type_id] for execution in handler.store.get_executions() if execution.id > last_before]
    assert len([name for name in ran if name.endswith(".Evaluator")]) == 1, ran
    assert len([name for name in ran if name.endswith("ExampleGen")]) == 1, ran
    # Rollout's newest-span trips are this run's: the ExampleGen's span 3.
    trips = rollout.newest_span_eval_trips(str(first_run["output_dir"]), metadata_setting.MetadataSetting())
    assert trips["span"] == 3 and f"/{component_ids.EXAMPLE_GEN}/" in trips["uri"]


def test_after_a_rollback_the_pinned_version_is_the_baseline(own_copy):
    from tfx.orchestration import metadata

    from modules.warm_start import read_record
    from pipeline.components.serving_baseline import model_of_push
    from pipeline.ops import lineage
    from pipeline.ops.rollback import rollback
    from serving.versions import model_config_path, serving_version

    first_run = own_copy
    output_dir, serving_dir = first_run["output_dir"], first_run["serving_model_dir"]
    [old] = _versions(output_dir)
    # Any candidate passes: this test is about which model it is compared with.
    anything = ANY_MODEL_THRESHOLDS
    second, _ = run_small_pipeline(first_run["data_root"], output_dir, [1, 2, 3], thresholds=anything, train_steps=160)
    assert second.pushed_version and second.pushed_version != old
    rollback(str(serving_dir), int(old), model_config_path(str(serving_dir)), output_dir=str(output_dir))

    # With warm start on, the Trainer starts from what serves: the pinned version too.
    third, connection = run_small_pipeline(
        first_run["data_root"], output_dir, [1, 2, 3], thresholds=anything, train_steps=170, warm_start=True, warm_start_steps=30
    )
    with metadata.Metadata(connection) as handler:
        store = handler.store
        graph = lineage.MetadataGraph(store, configs.PIPELINE_NAME)
        pinned_model = model_of_push(store, lineage.find_pushed_model(graph, old, str(serving_dir)).id)
        newest_model = model_of_push(store, lineage.find_pushed_model(graph, second.pushed_version, str(serving_dir)).id)
        trainer_context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_ids.TRAINER}")
        trainer = max(store.get_executions_by_context(trainer_context.id), key=lambda e: e.id)
        [base_model] = graph.inputs(trainer.id)["base_model"]
        assert base_model.id == pinned_model
        record = read_record(graph.outputs(trainer.id)["model"][0].uri)
        assert record.warm_started and record.train_steps == 30, record
        for evaluator in (component_ids.EVALUATOR, component_ids.NEWEST_SPAN_EVALUATOR):
            context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{evaluator}")
            execution = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
            [baseline] = graph.inputs(execution.id)["baseline_model"]
            assert baseline.id == pinned_model != newest_model, evaluator
    # The new push waits for `rollback --latest`: the pinned version still serves.
    assert third.pushed_version not in (None, old)
    assert serving_version(str(serving_dir), configs.SERVING_MODEL_NAME) == int(old)


def test_the_tuner_searches_the_shared_space_and_the_trainer_trains_with_the_best(own_copy):
    import json

    from tfx.orchestration import metadata

    from modules.hparams import SEARCH_SPACE
    from pipeline.ops import lineage

    first_run = own_copy
    _, connection = run_small_pipeline(first_run["data_root"], first_run["output_dir"], [1, 2, 3], tune=True, tune_trials=2, train_steps=40)
    with metadata.Metadata(connection) as handler:
        graph = lineage.MetadataGraph(handler.store, configs.PIPELINE_NAME)
        context = handler.store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_ids.TRAINER}")
        trainer = max(handler.store.get_executions_by_context(context.id), key=lambda e: e.id)
        [best] = graph.inputs(trainer.id)["hyperparameters"]
        assert graph.node_of(graph.producer(best.id)) == component_ids.TUNER
        tuner_outputs = graph.outputs(graph.producer(best.id))
    values = json.loads(open(os.path.join(best.uri, "best_hyperparameters.txt")).read())["values"]
    assert set(values) == set(SEARCH_SPACE)
    assert all(values[name] in choices for name, choices in SEARCH_SPACE.items())
    [results] = tuner_outputs["tuner_results"]
    trials = json.loads(open(os.path.join(results.uri, "tuner_results.json")).read())
    # Each score is a real eval-split AUC; 40 steps at the search space's smallest learning rate
    # may learn nothing (CI saw 0.499), so chance level is a valid score here.
    assert len(trials) == 2 and all(0.0 <= trial["score"] <= 1.0 for trial in trials)
    # Two trials, two different points of the search space.
    tried = [tuple(trial[name] for name in sorted(SEARCH_SPACE)) for trial in trials]
    assert len(set(tried)) == 2, tried
    assert max(trial["score"] for trial in trials) == trials[0]["score"]
    # The Trainer built the tower the search chose.
    import tf_keras as keras

    model_uri = graph.outputs(trainer.id)["model"][0].uri
    model = keras.models.load_model(os.path.join(model_uri, "Format-Serving"), compile=False)
    units = tuple(model.get_layer(f"hidden_{index}").units for index in range(2))
    assert units == tuple(int(unit) for unit in values["hidden_units"].split(","))
