"""ExternalFeatureCheck's logic on tiny spans, in its Beam pipeline: per-span matching, schema
anomalies and drift of the joined columns."""
import pathlib

import pyarrow as pa
import pytest
import tensorflow_data_validation as tfdv

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import drifted, refusals, table_file
from pipeline.components.external_check import check_tables
from pipeline.components.external_join import join_keys, joined_schema, table_fingerprint, table_span_key
from pipeline.spans import file_sha256
from pipeline.validation import span_rows, span_statistics
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


def _without_kept(checked):
    return {key: value for key, value in checked.items() if key != "kept"}


def test_a_span_joined_once_is_read_from_the_store_and_gives_the_same_result(tmp_path):
    tables_uri = tmp_path / "tables"
    write_holiday_table(
        pathlib.Path(table_file(str(tables_uri), features.HOLIDAY_TABLE)),
        ["2014-05-16,4,0,0,", "2014-05-25,6,0,1,", "2014-05-26,0,1,0,Memorial Day"],
    )
    tables = {features.HOLIDAY_TABLE: external.read_table(table_file(str(tables_uri), features.HOLIDAY_TABLE), external.HOLIDAYS)}
    spans = {
        span: [str(write_csv(tmp_path / f"span-{span}" / "data.csv", [trip(trip_start_timestamp=FRIDAY + offset * DAY)] * (5 + span)))]
        for span, offset in ((1, 0), (2, 9), (3, 10))
    }
    store = span_statistics.SpanStatisticsStore(str(tmp_path / "kept"))
    hashes = {path: file_sha256(path) for paths in spans.values() for path in paths}

    def check(window, work, kept=store):
        files = {span: spans[span] for span in window}
        return check_tables(tables, str(tables_uri), files, _curated_schema(), JUDGING_CALENDAR, str(tmp_path / work), store=kept, salt="code", file_hashes=hashes)[
            features.HOLIDAY_TABLE
        ]

    first = check([1, 2], "first")
    assert {span: entry["reused"] for span, entry in first["kept"].items()} == {1: False, 2: False}
    # Span 1's file now breaks the reader: only a kept result lets the next window pass it.
    pathlib.Path(spans[1][0]).write_text("not,a,taxi,file\n1,2\n")
    with pytest.raises(span_rows.CsvFormatError, match="span-1"):
        check([1], "unkept", kept=None)
    second = check([1, 2, 3], "second")
    assert {span: entry["reused"] for span, entry in second["kept"].items()} == {1: True, 2: True, 3: False}
    assert second["kept"][1]["key"] == first["kept"][1]["key"]
    assert second["spans"] == {1: {"trips": 6, "unmatched": 0}, 2: {"trips": 7, "unmatched": 0}, 3: {"trips": 8, "unmatched": 0}}

    # The same window joined afresh gives the same report and statistics, span 1 restored.
    write_csv(pathlib.Path(spans[1][0]), [trip(trip_start_timestamp=FRIDAY)] * 6)
    afresh = check([1, 2, 3], "afresh", kept=None)
    assert _without_kept(second) == _without_kept(afresh)
    assert second["compared_spans"] == [2, 3] and second["scores"]


def test_a_changed_table_joins_every_span_again(tmp_path):
    tables_uri = tmp_path / "tables"
    holiday_file = pathlib.Path(table_file(str(tables_uri), features.HOLIDAY_TABLE))
    files = {1: [str(write_csv(tmp_path / "span-1" / "data.csv", [trip(trip_start_timestamp=FRIDAY + 9 * DAY)] * 4))]}
    store = span_statistics.SpanStatisticsStore(str(tmp_path / "kept"))

    def check(lines, work):
        write_holiday_table(holiday_file, lines)
        tables = {features.HOLIDAY_TABLE: external.read_table(str(holiday_file), external.HOLIDAYS)}
        return check_tables(tables, str(tables_uri), files, _curated_schema(), JUDGING_CALENDAR, str(tmp_path / work), store=store)[features.HOLIDAY_TABLE]

    before = check(["2014-05-16,4,0,0,"], "before")
    after = check(["2014-05-16,4,0,0,", "2014-05-25,6,0,1,"], "after")
    assert before["spans"][1] == {"trips": 4, "unmatched": 4}
    assert after["kept"][1]["reused"] is False and after["kept"][1]["key"] != before["kept"][1]["key"]
    assert after["spans"][1] == {"trips": 4, "unmatched": 0}


def test_spans_with_the_same_files_share_a_kept_result_and_keep_their_own_names(tmp_path):
    tables_uri = tmp_path / "tables"
    write_holiday_table(pathlib.Path(table_file(str(tables_uri), features.HOLIDAY_TABLE)), ["2014-05-16,4,0,0,"])
    tables = {features.HOLIDAY_TABLE: external.read_table(table_file(str(tables_uri), features.HOLIDAY_TABLE), external.HOLIDAYS)}
    # A file delivered twice, and two header-only spans.
    same = [trip()] * 3
    files = {span: [str(write_csv(tmp_path / f"span-{span}" / "data.csv", rows))] for span, rows in ((1, same), (2, same), (3, []), (4, []))}
    store = span_statistics.SpanStatisticsStore(str(tmp_path / "kept"))

    def check(work, kept):
        return check_tables(tables, str(tables_uri), files, _curated_schema(), JUDGING_CALENDAR, str(tmp_path / work), store=kept)[features.HOLIDAY_TABLE]

    first, again, afresh = check("first", store), check("again", store), check("afresh", None)
    assert first["kept"][1]["key"] == first["kept"][2]["key"] and first["kept"][3]["key"] == first["kept"][4]["key"]
    assert all(entry["reused"] for entry in again["kept"].values())
    for checked in (first, again):
        assert {span: statistics.datasets[0].name for span, statistics in checked["statistics"].items()} == {span: f"span-{span}" for span in files}
        assert _without_kept(checked) == _without_kept(afresh)
    assert again["spans"] == {1: {"trips": 3, "unmatched": 0}, 2: {"trips": 3, "unmatched": 0}, 3: {"trips": 0, "unmatched": 0}, 4: {"trips": 0, "unmatched": 0}}


def test_the_key_changes_with_the_join_type_the_table_and_the_code():
    table = external.ExternalTable(external.HOLIDAYS, (16206,), {name: (0,) for name in external.HOLIDAYS.joined} | {"holiday_name": ("",)})
    other_table = external.ExternalTable(external.HOLIDAYS, (16207,), table.values)
    name, content = external.HOLIDAYS.name, table_fingerprint(table)
    key = table_span_key(["abc"], name, content, 1, "code")
    assert key == table_span_key(["abc"], name, table_fingerprint(table), 1, "code")
    assert len({key, table_span_key(["abd"], name, content, 1, "code"), table_span_key(["abc"], name, content, 2, "code"),
                table_span_key(["abc"], name, table_fingerprint(other_table), 1, "code"), table_span_key(["abc"], name, content, 1, "other code")}) == 5
