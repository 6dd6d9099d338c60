"""The pipeline's wiring: data checks gate training, and the Pusher needs both blessings."""
import json

import pytest

from pipeline import component_ids, configs, dag
from pipeline.components import serving_baseline
from pipeline.components.artifacts import EXTERNAL_TABLES_KEY
from pipeline.dag import create_pipeline
from pipeline.validation.table_sources import resolve_sources

OPTIONS = configs.PipelineOptions(external_tables=resolve_sources())


@pytest.fixture(scope="module")
def nodes():
    built = create_pipeline("p", "/tmp/root", "/tmp/data", [2, 3], "/tmp/serving", None, OPTIONS)
    return {node.id: node for node in built.components}


def _upstream(node):
    return {upstream.id for upstream in node.upstream_nodes}


def test_training_waits_for_the_gate_that_reads_every_data_check(nodes):
    assert component_ids.DATA_GATE in _upstream(nodes[component_ids.TRANSFORM])
    checks = {component_ids.EXAMPLE_VALIDATOR, component_ids.DRIFT_CHECK, component_ids.EXTERNAL_FEATURE_CHECK}
    assert checks <= _upstream(nodes[component_ids.DATA_GATE])


def test_transform_reads_the_external_tables_with_their_fingerprints(nodes):
    transform = nodes[component_ids.TRANSFORM]
    assert component_ids.EXTERNAL_TABLE_GEN in _upstream(transform)
    assert transform.inputs[EXTERNAL_TABLES_KEY].producer_component_id == component_ids.EXTERNAL_TABLE_GEN
    sources = nodes[component_ids.EXTERNAL_TABLE_GEN].exec_properties["sources"]
    (holidays,) = resolve_sources()
    assert holidays.sha256 in sources and holidays.uri in sources


def test_every_joined_table_must_be_given():
    with pytest.raises(ValueError, match=r"missing \['us_il_holidays'\]"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [1], "/tmp/serving", None)


def test_pusher_needs_the_gate_and_the_serving_check(nodes):
    pusher = nodes[component_ids.PUSHER]
    assert {"model_blessing", "infra_blessing"} <= set(pusher.inputs)
    assert pusher.inputs["model_blessing"].producer_component_id == component_ids.MODEL_GATE
    assert {component_ids.MODEL_GATE, component_ids.SERVING_CHECK} <= _upstream(pusher)
    # The gate reads both Evaluators' verdicts and the trivial baselines of the eval trips.
    gate = nodes[component_ids.MODEL_GATE]
    assert {component_ids.EVALUATOR, component_ids.NEWEST_SPAN_EVALUATOR, component_ids.TRIVIAL_BASELINES} <= _upstream(gate)
    assert gate.inputs["baselines"].producer_component_id == component_ids.TRIVIAL_BASELINES
    assert configs.BlessingThresholds(**json.loads(gate.exec_properties["thresholds"])) == OPTIONS.thresholds


def test_the_baselines_are_counted_beside_the_trainer(nodes):
    # They read the examples and the Transform graph, never the model, so nothing makes them
    # wait for the Trainer.
    baselines = nodes[component_ids.TRIVIAL_BASELINES]
    assert baselines.inputs["examples"].producer_component_id == component_ids.EXAMPLE_GEN
    assert baselines.inputs["transform_graph"].producer_component_id == component_ids.TRANSFORM
    assert component_ids.TRAINER not in _upstream(baselines)


def test_both_evaluators_compare_with_the_serving_model(nodes):
    resolver = nodes[component_ids.MODEL_RESOLVER]
    assert resolver.exec_properties["resolver_class"] is serving_baseline.ServingModelStrategy
    assert resolver.exec_properties["source_uri"] == {"serving_model_dir": "/tmp/serving", "model_name": configs.SERVING_MODEL_NAME}
    for evaluator in (component_ids.EVALUATOR, component_ids.NEWEST_SPAN_EVALUATOR):
        assert nodes[evaluator].inputs["baseline_model"].producer_component_id == component_ids.MODEL_RESOLVER


def test_both_evaluators_read_the_curated_schema(nodes):
    # Their executor cuts it down to the features the EvalConfig reads, so TFMA decodes only those.
    for evaluator in (component_ids.EVALUATOR, component_ids.NEWEST_SPAN_EVALUATOR):
        assert nodes[evaluator].inputs["schema"].producer_component_id == component_ids.SCHEMA_GEN


def test_the_newest_span_is_read_alone_for_its_evaluation(nodes):
    newest = nodes[component_ids.NEWEST_SPAN_EXAMPLE_GEN]
    window = nodes[component_ids.EXAMPLE_GEN]
    assert nodes[component_ids.NEWEST_SPAN_EVALUATOR].inputs["examples"].producer_component_id == newest.id
    assert newest.exec_properties["output_config"] == window.exec_properties["output_config"]
    assert '"first_span": 3.0' in newest.exec_properties["custom_config"]
    assert '"last_span": 3.0' in newest.exec_properties["custom_config"]


def test_a_one_span_window_is_not_scored_twice(nodes):
    # Its eval split is the newest span's eval trips: the gate judges the newest-span limits on
    # the Evaluator's metrics, and neither the second ExampleGen nor the second Evaluator runs.
    assert nodes[component_ids.MODEL_GATE].exec_properties["newest_span_is_window"] == 0
    built = create_pipeline("p", "/tmp/root", "/tmp/data", [3], "/tmp/serving", None, OPTIONS)
    one_span = {node.id: node for node in built.components}
    assert component_ids.NEWEST_SPAN_EXAMPLE_GEN not in one_span and component_ids.NEWEST_SPAN_EVALUATOR not in one_span
    gate = one_span[component_ids.MODEL_GATE]
    assert gate.exec_properties["newest_span_is_window"] == 1
    assert gate.inputs["evaluation"].producer_component_id == component_ids.EVALUATOR
    assert "newest_span_evaluation" not in gate.inputs


def test_the_window_reaches_example_gen_and_must_be_consecutive():
    with pytest.raises(ValueError, match="consecutive"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [1, 3], "/tmp/serving", None, OPTIONS)
    with pytest.raises(ValueError, match="non-empty"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [], "/tmp/serving", None, OPTIONS)


def test_drift_thresholds_and_policy_reach_the_drift_check(nodes):
    parameter = configs.DriftConfig.from_json(nodes[component_ids.DRIFT_CHECK].exec_properties["drift_config"])
    assert parameter == configs.DriftConfig()
    assert parameter.on_drift == configs.DRIFT_STOP
    assert parameter.threshold_for("fare", categorical=False) == configs.DriftConfig.numeric_max_jensen_shannon


def test_span_time_columns_are_declared_once_and_not_judged_by_default():
    from modules import features

    assert set(configs.DriftConfig().ignored) == set(features.SPAN_TIME_KEYS)
    assert {"trip_start_month", "trip_start_day", "trip_start_hour", "trip_start_timestamp", "day_of_week"} <= set(
        features.SPAN_TIME_KEYS
    )
    assert "fare" not in features.SPAN_TIME_KEYS


def test_every_project_executor_has_the_code_fingerprint_in_its_cache_key():
    import json

    options = configs.PipelineOptions(external_tables=resolve_sources(), code_fingerprint="c0de", module_fingerprint="m0d")
    built = {n.id: n for n in create_pipeline("p", "/tmp/root", "/tmp/data", [2, 3], "/tmp/serving", None, options).components}
    for node_id in (
        component_ids.SCHEMA_GEN,
        component_ids.DRIFT_CHECK,
        component_ids.EXTERNAL_FEATURE_CHECK,
        component_ids.EXTERNAL_TABLE_GEN,
        component_ids.DATA_GATE,
        component_ids.SERVING_CHECK,
    ):
        assert built[node_id].exec_properties["code_fingerprint"] == "c0de", node_id
    for node_id in (component_ids.TRANSFORM, component_ids.PUSHER):
        assert json.loads(built[node_id].exec_properties["custom_config"])[dag.CODE_FINGERPRINT_KEY] == "c0de", node_id
    assert '"c0de"' in built[component_ids.EXAMPLE_GEN].exec_properties["custom_config"].__str__()
    assert json.loads(built[component_ids.TRAINER].exec_properties["custom_config"])["module_fingerprint"] == "m0d"


def test_acceptances_reach_the_gate():
    from pipeline.validation.acceptance import SpanAcceptance, acceptances_from_json

    accepted = SpanAcceptance(3, {"/d/span-3/data.csv": "ab"}, ({"check": "drift", "scope": 3, "feature": "fare", "kind": "Jensen-Shannon", "text": "t"},), "reviewed", "me", "2026-12-01T00:00:00Z", 7)
    options = configs.PipelineOptions(external_tables=resolve_sources(), acceptances=(accepted,))
    built = {n.id: n for n in create_pipeline("p", "/tmp/root", "/tmp/data", [2, 3], "/tmp/serving", None, options).components}
    assert acceptances_from_json(built[component_ids.DATA_GATE].exec_properties["accepted_spans"]) == [accepted]


def test_the_beam_heavy_steps_run_in_beam_with_the_pipeline_s_beam_arguments():
    from tfx.dsl.compiler import compiler
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    beam_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    built = create_pipeline("p", "/tmp/root", "/tmp/data", [2, 3], "/tmp/serving", None, OPTIONS, beam_args)
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    compiler.Compiler().compile(built).deployment_config.Unpack(deployment)
    for node_id in (component_ids.EXAMPLE_GEN, component_ids.DRIFT_CHECK, component_ids.EXTERNAL_FEATURE_CHECK, component_ids.TRIVIAL_BASELINES):
        spec = executable_spec_pb2.BeamExecutableSpec()
        assert deployment.executor_specs[node_id].Unpack(spec), f"{node_id} does not run in Beam"
        assert list(spec.beam_pipeline_args) == beam_args, node_id
