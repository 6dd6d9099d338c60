"""The Evaluators' schema (`pipeline.components.evaluator.evaluated_schema`): the curated schema
cut down to the features the EvalConfig reads, so that TFMA decodes only those."""
import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules import features
from pipeline import configs
from pipeline.components.evaluator import evaluated_schema, slicing_features
from pipeline.eval_config import make_eval_config, make_newest_span_eval_config


@pytest.fixture(scope="module")
def curated() -> schema_pb2.Schema:
    with open(configs.CURATED_SCHEMA_PATH) as schema_file:
        return text_format.Parse(schema_file.read(), schema_pb2.Schema())


def _names(schema: schema_pb2.Schema) -> list:
    return sorted(feature.name for feature in schema.feature)


def test_the_window_evaluator_decodes_its_slicing_features_alone(curated):
    cut = evaluated_schema(curated, make_eval_config(configs.BlessingThresholds()))
    assert _names(cut) == sorted(features.SLICE_FEATURE_KEYS)
    assert len(curated.feature) > len(cut.feature)
    # Each kept feature is the curated one, type and domain included; the rest of the schema stays.
    by_name = {feature.name: feature for feature in curated.feature}
    for feature in cut.feature:
        assert feature == by_name[feature.name]
    assert list(cut.string_domain) == list(curated.string_domain)
    assert list(cut.default_environment) == list(curated.default_environment)


def test_the_newest_span_evaluator_slices_nothing_and_decodes_nothing(curated):
    assert _names(evaluated_schema(curated, make_newest_span_eval_config(configs.BlessingThresholds()))) == []


def test_raw_label_and_weight_keys_are_kept_where_the_schema_has_them(curated):
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="tips", example_weight_key="trip_miles", prediction_key="probability")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_values={"company": "Flash Cab"})],
        cross_slicing_specs=[
            tfma.CrossSlicingSpec(
                baseline_spec=tfma.SlicingSpec(feature_keys=["payment_type"]),
                slicing_specs=[tfma.SlicingSpec(feature_keys=["trip_start_month"])],
            )
        ],
    )
    assert slicing_features(config) == {"company", "payment_type", "trip_start_month"}
    # "probability" is the model's output, not a raw feature: nothing to keep for it.
    assert _names(evaluated_schema(curated, config)) == ["company", "payment_type", "tips", "trip_miles", "trip_start_month"]


def test_sql_slices_keep_the_whole_schema(curated):
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(slice_keys_sql="SELECT STRUCT(company) FROM example")])
    assert slicing_features(config) is None
    assert evaluated_schema(curated, config) == curated


def test_a_schema_with_sparse_features_is_kept_whole(curated):
    schema = schema_pb2.Schema()
    schema.CopyFrom(curated)
    sparse = schema.sparse_feature.add(name="pickup", value_feature=schema_pb2.SparseFeature.ValueFeature(name="fare"))
    sparse.index_feature.add(name="trip_seconds")
    assert evaluated_schema(schema, make_eval_config(configs.BlessingThresholds())) == schema


def test_slicing_by_a_feature_the_schema_lacks_is_refused(curated):
    config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(feature_keys=["payment_type", "driver_rating"])])
    with pytest.raises(ValueError, match=r"slices by \['driver_rating'\], which the schema does not hold"):
        evaluated_schema(curated, config)
