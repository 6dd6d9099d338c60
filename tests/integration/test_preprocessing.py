"""preprocessing_fn through tft_beam on a handful of trips, compared with values worked out by hand."""
import functools
import math
import tempfile

import numpy as np
import pytest
import tensorflow_data_validation as tfdv
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from modules import features
from modules.preprocessing import preprocessing_fn
from pipeline.validation.table_sources import preprocessing_config
from tests.conftest import SCHEMA_PATH, trip, write_holiday_table

# 2014-05-16 19:45 (the shipped timestamps are Chicago wall-clock time written as UTC).
FRIDAY = 1400269500
DAY = 86400


def _as_instance(row):
    # Parsed optional columns are lists: empty where the CSV cell was empty.
    return {key: ([] if value is None else [value]) for key, value in row.items()}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """(the four trips transformed, two later trips transformed with the same analysis)."""
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    # A tiny holiday table: an ordinary Friday, the day before a holiday, the holiday.
    table = write_holiday_table(
        tmp_path_factory.mktemp("external") / "holidays.csv",
        ["2014-05-16,4,0,0,", "2014-05-25,6,0,1,", "2014-05-26,0,1,0,Memorial Day"],
    )
    rows = [
        trip(),  # tip 25% of the fare: a big tipper; an ordinary Friday
        trip(fare=20.0, tips=2.0, payment_type="Cash", company=None, trip_start_timestamp=FRIDAY + 9 * DAY),  # 10%: not; the day before
        trip(fare=None, tips=3.0, trip_miles=None, dropoff_latitude=None, trip_start_timestamp=FRIDAY + 10 * DAY),  # no fare: label 0; the holiday
        # Exactly 20%, where float32 dollars would say more (5.01 > 0.2 * 25.05): not; a date not in the table.
        trip(fare=25.05, tips=5.01, trip_start_hour=23, trip_start_timestamp=FRIDAY + 4 * DAY),
    ]
    # Trips the analysis never saw: a company not in the vocabulary, and one with no company.
    later = [trip(company="A Company Founded Later"), trip(company=None)]
    custom_config = preprocessing_config({features.HOLIDAY_TABLE: str(table)})
    metadata = dataset_metadata.DatasetMetadata(schema)
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        transform_fn = ([_as_instance(row) for row in rows], metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config=custom_config)
        )
        transformed_data, _ = (([_as_instance(row) for row in rows], metadata), transform_fn) | tft_beam.TransformDataset(
            output_record_batches=False
        )
        later_data, _ = (([_as_instance(row) for row in later], metadata), transform_fn) | tft_beam.TransformDataset(
            output_record_batches=False
        )
    return transformed_data, later_data


@pytest.fixture(scope="module")
def transformed(analysed):
    return analysed[0]


def test_holiday_features_are_joined_by_the_trip_s_date(transformed):
    def column(key):
        return [row[features.transformed_name(key)] for row in transformed]

    sizes = features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE]
    # Friday, the day before the holiday (Sunday), the holiday (Monday), a date not in the
    # table: its own bucket, one past the valid values, as a missing value gets.
    assert column("day_of_week") == [4, 6, 0, sizes["day_of_week"]]
    assert column("is_holiday") == [0, 0, 1, sizes["is_holiday"]]
    assert column("is_day_before_holiday") == [0, 1, 0, sizes["is_day_before_holiday"]]


def test_preprocessing_without_the_tables_names_what_is_missing():
    with pytest.raises(ValueError, match=r"joins external tables \['us_il_holidays'\] but custom_config\['external_tables'\] names no file"):
        preprocessing_fn({}, custom_config={})


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


def test_vocabulary_gives_frequent_values_small_ids_and_missing_its_own(analysed):
    transformed = analysed[0] + analysed[1]
    payment_ids = [row[features.transformed_name("payment_type")] for row in transformed[:4]]
    # "Credit Card" appears 3 times, "Cash" once: the most frequent value gets the first
    # vocabulary id, 1 (0 is "missing").
    assert payment_ids == [1, 2, 1, 1]
    company_ids = [row[features.transformed_name("company")] for row in transformed]
    # Trip 2 has no company: the missing id, also for a later trip without one; a company the
    # analysis never saw lands in an out-of-vocabulary bucket, not with the missing ones.
    assert company_ids[1] == company_ids[5] == features.VOCABULARY_MISSING_ID
    assert company_ids[0] == 1
    assert company_ids[4] > 1 and company_ids[4] != company_ids[1]
