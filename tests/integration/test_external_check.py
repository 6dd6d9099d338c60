"""ExternalFeatureCheck's logic on tiny spans, in its Beam pipeline: per-span matching, schema
anomalies and drift of the joined columns."""
import pathlib

import pyarrow as pa
import pytest
import tensorflow_data_validation as tfdv

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import drifted, refusals, table_file
from pipeline.components.external_check import check_tables, join_keys, joined_schema
from tests.conftest import trip, write_csv, write_holiday_table

FRIDAY = 1400269500  # 2014-05-16 19:45
DAY = 86400


# The joined columns are calendar columns, which change with the span's time and are not
# judged by default; these tests judge them to check the comparison itself.
JUDGING_CALENDAR = configs.DriftConfig(ignored=())


def _curated_schema():
    return tfdv.load_schema_text(configs.CURATED_SCHEMA_PATH)


def _check_files(tmp_path, table_lines, files, drift=JUDGING_CALENDAR):
    """Runs the check's Beam pipeline on span files with a holiday table of `table_lines`;
    returns the holiday table's result, with what was written read back."""
    tables_uri = tmp_path / "tables"
    write_holiday_table(pathlib.Path(table_file(str(tables_uri), features.HOLIDAY_TABLE)), table_lines)
    table = external.read_table(table_file(str(tables_uri), features.HOLIDAY_TABLE), external.HOLIDAYS)
    checked = check_tables(
        {features.HOLIDAY_TABLE: table}, str(tables_uri), files, _curated_schema(), drift, str(tmp_path / "beam")
    )
    return checked[features.HOLIDAY_TABLE]


def _check(tmp_path, span_1, span_2, drift=JUDGING_CALENDAR):
    files = {
        1: [str(write_csv(tmp_path / "span-1" / "data.csv", span_1))],
        2: [str(write_csv(tmp_path / "span-2" / "data.csv", span_2))],
    }
    return _check_files(
        tmp_path, ["2014-05-16,4,0,0,", "2014-05-25,6,0,1,", "2014-05-26,0,1,0,Memorial Day"], files, drift
    )


def test_the_joined_calendar_columns_are_not_judged_by_default(tmp_path):
    checked = _check(tmp_path, [trip()] * 10, [trip(trip_start_timestamp=FRIDAY + 10 * DAY)] * 10, configs.DriftConfig())
    assert checked["scores"] == [] and checked["anomalies"] == []


def test_matched_spans_have_no_anomaly_and_every_joined_column_is_scored(tmp_path):
    same = [trip(), trip(trip_start_timestamp=FRIDAY + 9 * DAY)] * 10
    checked = _check(tmp_path, same, same)
    assert checked["spans"] == {1: {"trips": 20, "unmatched": 0}, 2: {"trips": 20, "unmatched": 0}}
    assert checked["anomalies"] == []
    assert checked["compared_spans"] == [1, 2]
    assert {score["feature"] for score in checked["scores"]} == set(features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE])
    assert all(score["measure"] == "L-infinity" and not score["drifted"] for score in checked["scores"])


def test_trips_outside_the_table_are_counted_and_break_the_joined_schema(tmp_path):
    outside = [trip(trip_start_timestamp=FRIDAY + 4 * DAY)] * 3 + [trip()] * 7
    checked = _check(tmp_path, [trip()] * 10, outside)
    assert checked["spans"][2] == {"trips": 10, "unmatched": 3}
    report = {"tables": {features.HOLIDAY_TABLE: checked}}
    lines = refusals(report)
    assert lines[0] == (
        "span 2: 3 of 10 trips have no row in external table 'us_il_holidays' "
        "(it covers 2014-05-16 .. 2014-05-26; joined on trip_start_timestamp)"
    )
    # TFDV's own check against the schema made from the table's spec names the columns too.
    assert any("span 2: feature 'is_holiday'" in line for line in lines[1:])


def test_a_span_of_holidays_drifts_from_a_span_of_ordinary_days(tmp_path):
    checked = _check(tmp_path, [trip()] * 10, [trip(trip_start_timestamp=FRIDAY + 10 * DAY)] * 10)
    scores = {score["feature"]: score for score in checked["scores"]}
    assert scores["is_holiday"]["score"] == 1.0 and scores["is_holiday"]["drifted"]
    (line, *_) = [text for text in drifted({"tables": {features.HOLIDAY_TABLE: checked}}) if "is_holiday" in text]
    assert line.startswith("us_il_holidays.is_holiday L-infinity 1.000 > 0.15 (span 2 against span 1)")


def test_the_joined_schema_holds_each_column_s_range():
    schema = joined_schema(external.HOLIDAYS)
    ranges = {feature.name: (feature.int_domain.min, feature.int_domain.max) for feature in schema.feature}
    assert ranges == {"day_of_week": (0, 6), "is_holiday": (0, 1), "is_day_before_holiday": (0, 1)}


def _lists(values, value_type):
    return pa.array(values, pa.large_list(value_type))


def test_join_keys_take_each_trip_s_value_and_an_absent_value_is_no_key():
    trips = pa.RecordBatch.from_arrays(
        [_lists([[1401063300], None, [], [7]], pa.int64()), _lists([[2.5], [3.9], None, [-1.5]], pa.float32())],
        [features.TIMESTAMP_KEY, "fare"],
    )
    keys, present = join_keys(trips, features.TIMESTAMP_KEY)
    assert keys.tolist() == [1401063300, 0, 0, 7] and present.tolist() == [True, False, False, True]
    # A FLOAT join column is truncated, as the Transform graph's tf.cast does.
    keys, present = join_keys(trips, "fare")
    assert keys.tolist() == [2, 3, 0, -1] and present.tolist() == [True, True, False, True]
    # A sliced batch reads its own rows.
    keys, present = join_keys(trips.slice(1, 3), "fare")
    assert keys.tolist() == [3, 0, -1] and present.tolist() == [True, False, True]
    keys, present = join_keys(trips, "tips")
    assert not present.any() and len(keys) == 4


def test_a_join_column_of_text_is_refused_by_name():
    trips = pa.RecordBatch.from_arrays([_lists([[b"soon"]], pa.large_binary())], [features.TIMESTAMP_KEY])
    with pytest.raises(ValueError, match="the join column 'trip_start_timestamp' holds large_binary values"):
        join_keys(trips, features.TIMESTAMP_KEY)


def test_trips_without_a_timestamp_are_unmatched_as_the_transform_leaves_them(tmp_path):
    trips = [trip(), trip(trip_start_timestamp=None), trip(trip_start_timestamp=1401063300)]
    files = {1: [str(write_csv(tmp_path / "span-1" / "data.csv", trips))]}
    checked = _check_files(tmp_path, ["2014-05-16,4,0,0,", "2014-05-26,0,1,0,Memorial Day"], files, configs.DriftConfig())
    assert checked["spans"] == {1: {"trips": 3, "unmatched": 1}}
    assert checked["anomalies"][0].startswith("span 1: 1 of 3 trips have no row in external table 'us_il_holidays'")
    values = {
        bucket.label: bucket.sample_count
        for feature in checked["statistics"][1].datasets[0].features
        if feature.path.step == ["is_holiday"]
        for bucket in feature.string_stats.rank_histogram.buckets
    }
    assert values == {"0": 1, "1": 1, str(features.MISSING_INT): 1}


def test_each_span_is_counted_in_ranges_over_several_files(tmp_path):
    first = [trip()] * 700 + [trip(trip_start_timestamp=None)] * 5
    second = [trip(trip_start_timestamp=1401063300)] * 1300
    files = {
        1: [str(write_csv(tmp_path / "span-1" / "a.csv", first)), str(write_csv(tmp_path / "span-1" / "b.csv", second))],
        2: [str(write_csv(tmp_path / "span-2" / "data.csv", []))],
    }
    checked = _check_files(tmp_path, ["2014-05-16,4,0,0,", "2014-05-26,0,1,0,Memorial Day"], files, configs.DriftConfig())
    assert checked["spans"] == {1: {"trips": 2005, "unmatched": 5}, 2: {"trips": 0, "unmatched": 0}}
    assert [statistics.datasets[0].num_examples for statistics in checked["statistics"].values()] == [2005, 0]


def test_a_span_without_the_join_column_is_counted_and_refused(tmp_path):
    path = tmp_path / "span-1" / "data.csv"
    path.parent.mkdir()
    path.write_text("fare,tips\n1.0,0\n2.0,1\n")
    checked = _check_files(tmp_path, ["2014-05-16,4,0,0,"], {1: [str(path)]}, configs.DriftConfig())
    assert checked["spans"] == {1: {"trips": 2, "unmatched": 2}}
    assert checked["anomalies"][0].startswith("span 1: 2 of 2 trips have no row in external table 'us_il_holidays'")
