"""preprocessing_fn through tft_beam on a handful of trips, compared with values worked out by hand."""
import math
import tempfile

import numpy as np
import pytest
import tensorflow_data_validation as tfdv
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from modules import features
from modules.preprocessing import preprocessing_fn
from tests.conftest import SCHEMA_PATH, trip


def _as_instance(row):
    # Parsed optional columns are lists: empty where the CSV cell was empty.
    return {key: ([] if value is None else [value]) for key, value in row.items()}


@pytest.fixture(scope="module")
def transformed():
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    rows = [
        trip(),  # tip 25% of the fare: a big tipper
        trip(fare=20.0, tips=2.0, payment_type="Cash", company=None),  # 10%: not
        trip(fare=None, tips=3.0, trip_miles=None, dropoff_latitude=None),  # no fare: label 0
        trip(fare=8.0, tips=1.6, trip_start_hour=23),  # exactly 20%: not (strictly greater)
    ]
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed_data, _), _ = (
            [_as_instance(row) for row in rows],
            dataset_metadata.DatasetMetadata(schema),
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=False)
    return transformed_data


def test_label_is_tip_above_a_fifth_of_the_fare_and_zero_without_fare(transformed):
    assert [row[features.LABEL_KEY] for row in transformed] == [1, 0, 0, 0]


def test_missing_numeric_values_are_flagged_and_filled(transformed):
    assert [row[features.missing_name("fare")] for row in transformed] == [0.0, 0.0, 1.0, 0.0]
    assert [row[features.missing_name("trip_miles")] for row in transformed] == [0.0, 0.0, 1.0, 0.0]
    assert all(math.isfinite(row[features.transformed_name("fare")]) for row in transformed)


def test_scaled_features_have_zero_mean(transformed):
    values = np.array([row[features.transformed_name("trip_seconds")] for row in transformed])
    assert abs(values.mean()) < 1e-5


def test_missing_coordinate_gets_its_own_bucket(transformed):
    buckets = [row[features.transformed_name("dropoff_latitude")] for row in transformed]
    assert buckets[2] == features.NUM_COORDINATE_BUCKETS
    assert all(0 <= bucket < features.NUM_COORDINATE_BUCKETS for bucket in buckets[:2] + buckets[3:])


def test_hour_is_kept_as_its_category(transformed):
    assert [row[features.transformed_name("trip_start_hour")] for row in transformed] == [19, 19, 19, 23]


def test_vocabulary_gives_frequent_values_small_ids_and_missing_its_own(transformed):
    payment_ids = [row[features.transformed_name("payment_type")] for row in transformed]
    # "Credit Card" appears 3 times, "Cash" once: the most frequent value is id 0.
    assert payment_ids == [0, 1, 0, 0]
    company_ids = [row[features.transformed_name("company")] for row in transformed]
    assert company_ids[1] != company_ids[0]
