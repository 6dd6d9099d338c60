"""The pipeline's wiring: data checks gate training, and the Pusher needs both blessings."""
import pytest

from pipeline import configs, pipeline as pipeline_def
from pipeline.external_tables import EXTERNAL_TABLES_KEY, resolve_sources
from pipeline.pipeline import create_pipeline

OPTIONS = configs.PipelineOptions(external_tables=resolve_sources())


@pytest.fixture(scope="module")
def nodes():
    built = create_pipeline("p", "/tmp/root", "/tmp/data", [2, 3], "/tmp/serving", None, OPTIONS)
    return {node.id: node for node in built.components}


def _upstream(node):
    return {upstream.id for upstream in node.upstream_nodes}


def test_training_waits_for_the_gate_that_reads_every_data_check(nodes):
    assert pipeline_def.DATA_GATE in _upstream(nodes[pipeline_def.TRANSFORM])
    checks = {pipeline_def.EXAMPLE_VALIDATOR, pipeline_def.DRIFT_CHECK, pipeline_def.EXTERNAL_FEATURE_CHECK}
    assert checks <= _upstream(nodes[pipeline_def.DATA_GATE])


def test_transform_reads_the_external_tables_with_their_fingerprints(nodes):
    transform = nodes[pipeline_def.TRANSFORM]
    assert pipeline_def.EXTERNAL_TABLE_GEN in _upstream(transform)
    assert transform.inputs[EXTERNAL_TABLES_KEY].producer_component_id == pipeline_def.EXTERNAL_TABLE_GEN
    sources = nodes[pipeline_def.EXTERNAL_TABLE_GEN].exec_properties["sources"]
    (holidays,) = resolve_sources()
    assert holidays.sha256 in sources and holidays.uri in sources


def test_every_joined_table_must_be_given():
    with pytest.raises(ValueError, match=r"missing \['us_il_holidays'\]"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [1], "/tmp/serving", None)


def test_pusher_needs_the_evaluator_and_the_serving_check(nodes):
    pusher = nodes[pipeline_def.PUSHER]
    assert {"model_blessing", "infra_blessing"} <= set(pusher.inputs)
    assert {pipeline_def.EVALUATOR, pipeline_def.SERVING_CHECK} <= _upstream(pusher)


def test_evaluator_compares_with_the_latest_blessed_model(nodes):
    assert pipeline_def.MODEL_RESOLVER in _upstream(nodes[pipeline_def.EVALUATOR])


def test_the_window_reaches_example_gen_and_must_be_consecutive():
    with pytest.raises(ValueError, match="consecutive"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [1, 3], "/tmp/serving", None, OPTIONS)
    with pytest.raises(ValueError, match="non-empty"):
        create_pipeline("p", "/tmp/root", "/tmp/data", [], "/tmp/serving", None, OPTIONS)


def test_drift_thresholds_and_policy_reach_the_drift_check(nodes):
    parameter = nodes[pipeline_def.DRIFT_CHECK].exec_properties["drift_config"]
    assert '"on_drift": "stop"' in parameter and '"trip_miles": 0.6' in parameter
    assert configs.DriftConfig().threshold_for("fare", categorical=False) == 0.3
