"""Invariants of the feature definitions and the pipeline configuration a user would trip over."""
import importlib

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from modules import features
from pipeline import configs
from tests.conftest import SCHEMA_PATH, read_csv_header


def test_every_model_feature_is_a_column_of_the_shipped_data():
    assert set(features.RAW_FEATURE_KEYS) <= set(read_csv_header())


def test_every_column_is_used_by_the_model_or_named_as_unused():
    accounted = set(features.RAW_FEATURE_KEYS) | set(features.UNUSED_RAW_KEYS) | {features.TIPS_KEY}
    assert accounted == set(read_csv_header())


def test_the_label_source_never_reaches_the_model_inputs():
    assert features.TIPS_KEY not in features.RAW_FEATURE_KEYS


def test_big_tip_is_more_than_a_fifth_of_the_fare_in_whole_cents():
    # Python ints: more than 20%, exactly 20% (5.01 on 25.05), less.
    assert features.is_big_tip(502, 2505) and not features.is_big_tip(501, 2505) and not features.is_big_tip(500, 2505)
    # NumPy and pandas give the same answers elementwise; a missing fare (NaN) is never a big tip.
    tips, fares = np.array([502.0, 501.0, 300.0]), np.array([2505.0, 2505.0, np.nan])
    assert features.is_big_tip(tips, fares).tolist() == [True, False, False]
    assert features.is_big_tip(pd.Series(tips), pd.Series(fares)).tolist() == [True, False, False]


def test_transformed_names_do_not_collide():
    names = (
        [features.transformed_name(key) for key in features.RAW_FEATURE_KEYS + features.DERIVED_FEATURE_KEYS]
        + [features.bucket_name(key) for key in features.QUANTILE_BUCKET_FEATURE_KEYS]
        + [features.missing_name(key) for key in features.NUMERIC_FEATURE_KEYS]
        + [features.LABEL_KEY]
    )
    assert len(names) == len(set(names))


def test_schema_describes_every_column_and_keeps_tips_out_of_serving():
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    assert {feature.name for feature in schema.feature} == set(read_csv_header())
    tips = tfdv.get_feature(schema, features.TIPS_KEY)
    assert list(tips.not_in_environment) == ["SERVING"]


def test_slices_are_model_features():
    assert set(features.SLICE_FEATURE_KEYS) <= set(features.RAW_FEATURE_KEYS)


@pytest.mark.parametrize("dotted_path", [configs.PREPROCESSING_FN, configs.RUN_FN, configs.TUNER_FN])
def test_every_dotted_module_path_in_the_configuration_imports(dotted_path):
    module_name, _, attribute = dotted_path.rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_blessing_floors_sit_above_the_trivial_answers():
    thresholds = configs.BlessingThresholds()
    # Always answering "not a big tipper" scores accuracy 0.775 on the shipped data.
    assert thresholds.min_binary_accuracy > 0.775
    assert thresholds.min_auc > 0.9


def test_a_raw_trip_is_labelled_by_the_transform_s_rule():
    # 20% exactly is not a big tip (whole cents); a missing tip is 0; a missing fare is no big tipper.
    assert not features.trip_is_big_tipper({"fare": 25.05, "tips": 5.01})
    assert features.trip_is_big_tipper({"fare": 25.05, "tips": 5.02})
    assert not features.trip_is_big_tipper({"fare": 10.0, "tips": None})
    assert not features.trip_is_big_tipper({"fare": None, "tips": 3.0})
    assert not features.trip_is_big_tipper({"fare": float("nan"), "tips": 3.0})
    assert features.trip_is_big_tipper({"fare": 10.0}) is False
