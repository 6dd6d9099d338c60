"""ExternalFeatureCheck's logic on tiny spans: per-span matching, schema anomalies and drift of
the joined columns."""
import pandas as pd

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import drifted, refusals
from pipeline.components.external_check import check_table, joined_frame, joined_schema
from pipeline.validation.table_sources import shipped_table_path
from tests.conftest import trip, write_csv, write_holiday_table

FRIDAY = 1400269500  # 2014-05-16 19:45
DAY = 86400


# The joined columns are calendar columns, which change with the span's time and are not
# judged by default; these tests judge them to check the comparison itself.
JUDGING_CALENDAR = configs.DriftConfig(ignored=())


def _check(tmp_path, span_1, span_2, drift=JUDGING_CALENDAR):
    table_path = write_holiday_table(
        tmp_path / "holidays.csv", ["2014-05-16,4,0,0,", "2014-05-25,6,0,1,", "2014-05-26,0,1,0,Memorial Day"]
    )
    table = external.read_table(str(table_path), external.HOLIDAYS)
    files = {
        1: [str(write_csv(tmp_path / "span-1" / "data.csv", span_1))],
        2: [str(write_csv(tmp_path / "span-2" / "data.csv", span_2))],
    }
    return check_table(table, files, drift)


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


def test_a_missing_or_non_numeric_join_column_leaves_trips_unmatched():
    table = external.read_table(shipped_table_path(features.HOLIDAY_TABLE), external.HOLIDAYS)
    joined = joined_frame(pd.DataFrame({features.TIMESTAMP_KEY: ["1401063300", "soon", None]}), table)
    assert joined["is_holiday"].tolist() == [1, features.MISSING_INT, features.MISSING_INT]
    joined = joined_frame(pd.DataFrame({"fare": ["1.0", "2.0"]}), table)
    assert joined["is_holiday"].tolist() == [features.MISSING_INT] * 2


def test_a_span_without_the_join_column_is_counted_and_refused(tmp_path):
    path = tmp_path / "span-1" / "data.csv"
    path.parent.mkdir()
    path.write_text("fare,tips\n1.0,0\n2.0,1\n")
    table = external.read_table(str(write_holiday_table(tmp_path / "h.csv", ["2014-05-16,4,0,0,"])), external.HOLIDAYS)
    checked = check_table(table, {1: [str(path)]}, configs.DriftConfig())
    assert checked["spans"] == {1: {"trips": 2, "unmatched": 2}}
    assert checked["anomalies"][0].startswith("span 1: 2 of 2 trips have no row in external table 'us_il_holidays'")
