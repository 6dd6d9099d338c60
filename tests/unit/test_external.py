"""External tables: what a valid table is, the errors for a malformed one, and the join."""
import datetime
import hashlib
import json

import pytest
import tensorflow as tf

from modules import external, features
from pipeline.components.external_table_gen import ExternalTableChangedError, snapshot_tables
from pipeline.data_tools import export_holidays
from pipeline.validation.table_sources import parse_overrides, resolve_sources, shipped_table_path, table_source
from tests.conftest import HOLIDAY_HEADER

HOLIDAYS = external.HOLIDAYS


def _table(*lines: str, header: str = HOLIDAY_HEADER) -> external.ExternalTable:
    return external.parse_table("\n".join([header, *lines]) + "\n", HOLIDAYS, "tiny.csv")


def _timestamp(day: str, hour: int = 12) -> int:
    moment = datetime.datetime.fromisoformat(f"{day}T{hour:02d}:15:00+00:00")
    return int(moment.timestamp())


def test_rows_are_sorted_by_key_and_typed():
    table = _table("2014-05-26,0,1,0,Memorial Day", "2014-05-25,6,0,1,")
    assert [table.key_text(key) for key in table.keys] == ["2014-05-25", "2014-05-26"]
    assert table.values["is_holiday"] == (0, 1) and table.values["holiday_name"] == ("", "Memorial Day")


@pytest.mark.parametrize(
    "lines, message",
    [
        (["2014-05-26,0,1,0,Memorial Day", "2014-05-26,0,1,0,Memorial Day"], r"line 3: duplicate key '2014-05-26' in column 'date' \(first on line 2\)"),
        (["2014-05-26,Monday,1,0,Memorial Day"], r"line 2: column 'day_of_week': 'Monday' is not an integer"),
        (["26/05/2014,0,1,0,Memorial Day"], r"line 2: column 'date': '26/05/2014' is not a date"),
        (["2014-05-26,0,yes,0,Memorial Day"], r"line 2: column 'is_holiday': 'yes' is not an integer"),
        (["2014-05-26,0,2,0,Memorial Day"], r"line 2: column 'is_holiday': 2 is outside \[0, 1\]"),
        (["2014-05-26,0,1,0"], r"line 2: 4 fields, expected 5"),
    ],
)
def test_a_malformed_table_is_refused_naming_line_column_and_value(lines, message):
    with pytest.raises(external.ExternalTableError, match=message) as refused:
        _table(*lines)
    assert "'us_il_holidays' (tiny.csv) is malformed" in str(refused.value)


def test_a_wrong_header_or_an_empty_table_is_refused():
    with pytest.raises(external.ExternalTableError, match=r"has header \['day', 'holiday'\], expected \['date'"):
        _table("2014-05-26,1", header="day,holiday")
    with pytest.raises(external.ExternalTableError, match="has a header but no rows"):
        _table()
    with pytest.raises(external.ExternalTableError, match="is empty"):
        external.parse_table("", HOLIDAYS, "empty.csv")


def test_a_file_read_again_is_parsed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    # tf.Transform traces preprocessing_fn several times a run; each trace reads the tables.
    parses = []
    parse = external.parse_table
    monkeypatch.setattr(external, "parse_table", lambda *args: parses.append(args[2]) or parse(*args))
    path = tmp_path / "holidays.csv"
    path.write_text(f"{HOLIDAY_HEADER}\n2014-05-26,0,1,0,Memorial Day\n")
    first = external.read_table(str(path), HOLIDAYS)
    assert external.read_table(str(path), HOLIDAYS) is first
    assert parses == [str(path)]
    path.write_text(f"{HOLIDAY_HEADER}\n2014-05-26,0,1,0,Memorial Day\n2014-07-04,4,1,0,Independence Day\n")
    assert len(external.read_table(str(path), HOLIDAYS).keys) == 2
    path.write_text(f"{HOLIDAY_HEADER}\n2014-05-26,0,2,0,Memorial Day\n")
    for _ in range(2):  # a malformed file is refused on every read, never remembered as good
        with pytest.raises(external.ExternalTableError, match="line 2: column 'is_holiday': 2 is outside"):
            external.read_table(str(path), HOLIDAYS)
    assert parses == [str(path)] * 4


def test_every_problem_is_listed_up_to_ten():
    lines = [f"2014-05-{day:02d},0,9,0," for day in range(1, 16)]
    with pytest.raises(external.ExternalTableError) as refused:
        _table(*lines)
    assert str(refused.value).count("is outside [0, 1]") == 10 and "... and 5 more" in str(refused.value)


def test_join_gives_the_row_of_the_trip_s_date_and_missing_outside_the_table():
    table = _table(
        "2014-05-16,4,0,0,",  # an ordinary Friday
        "2014-05-25,6,0,1,",  # the day before Memorial Day
        "2014-05-26,0,1,0,Memorial Day",
    )
    timestamps = [
        _timestamp("2014-05-16", hour=0),  # first minutes of the day
        _timestamp("2014-05-25", hour=23),  # last minutes of the day
        _timestamp("2014-05-26"),
        _timestamp("2014-05-20"),  # a date the table has no row for
        _timestamp("2014-05-26"),  # no timestamp: `present` is False
    ]
    present = [True, True, True, True, False]
    joined = external.join(tf.constant(timestamps, tf.int64), tf.constant(present), table)
    missing = features.MISSING_INT
    assert joined["day_of_week"].numpy().tolist() == [4, 6, 0, missing, missing]
    assert joined["is_holiday"].numpy().tolist() == [0, 0, 1, missing, missing]
    assert joined["is_day_before_holiday"].numpy().tolist() == [0, 1, 0, missing, missing]
    assert set(joined) == set(features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE])


def test_a_date_before_or_after_every_row_is_not_matched():
    table = _table("2014-05-26,0,1,0,Memorial Day")
    joined = external.join(
        tf.constant([_timestamp("2014-05-25"), _timestamp("2014-05-27")], tf.int64), tf.constant([True, True]), table
    )
    assert joined["is_holiday"].numpy().tolist() == [features.MISSING_INT] * 2


def test_the_shipped_table_is_valid_and_as_exported():
    path = shipped_table_path(features.HOLIDAY_TABLE)
    table = external.read_table(path, HOLIDAYS)
    days = {table.key_text(key): index for index, key in enumerate(table.keys)}
    for day, holiday in [("2014-07-04", 1), ("2014-07-03", 0), ("2016-12-26", 1), ("2015-03-02", 1)]:
        assert table.values["is_holiday"][days[day]] == holiday, day
    assert table.values["is_day_before_holiday"][days["2014-07-03"]] == 1
    assert table.values["day_of_week"][days["2014-07-04"]] == datetime.date(2014, 7, 4).weekday()
    # The shipped version is what the export command writes (the holidays package is pinned).
    source = export_holidays.table_text(
        export_holidays.holiday_rows(export_holidays.DEFAULT_FIRST_YEAR, export_holidays.DEFAULT_LAST_YEAR)
    )
    with open(path, "rb") as shipped:
        assert hashlib.sha256(shipped.read()).hexdigest() == hashlib.sha256(source.encode()).hexdigest()


def test_export_never_overwrites_a_version_with_other_content(tmp_path):
    path = export_holidays.export(str(tmp_path), "v1", 2014, 2014)
    assert export_holidays.export(str(tmp_path), "v1", 2014, 2014) == path  # same content: fine
    with pytest.raises(ValueError, match="already holds a different table; export into a new --version"):
        export_holidays.export(str(tmp_path), "v1", 2014, 2015)
    with open(path) as table_file:
        assert len(table_file.readlines()) == 1 + 365


def test_table_overrides_are_checked():
    assert parse_overrides(["us_il_holidays=/tmp/h.csv"]) == {"us_il_holidays": "/tmp/h.csv"}
    with pytest.raises(ValueError, match="is not NAME=PATH"):
        parse_overrides(["/tmp/h.csv"])
    with pytest.raises(ValueError, match="unknown external table 'weather'"):
        parse_overrides(["weather=/tmp/w.csv"])
    with pytest.raises(FileNotFoundError, match="no file at /nowhere/h.csv"):
        resolve_sources({"us_il_holidays": "/nowhere/h.csv"})


def _sources(path, sha256):
    return json.dumps([{"name": HOLIDAYS.name, "uri": str(path), "sha256": sha256}])


def test_a_snapshot_copies_the_table_and_records_its_fingerprint(tmp_path):
    table = tmp_path / "holidays.csv"
    table.write_text(HOLIDAY_HEADER + "\n2014-05-26,0,1,0,Memorial Day\n")
    sha256 = hashlib.sha256(table.read_bytes()).hexdigest()
    (tmp_path / "out").mkdir()  # the artifact's folder, which TFX creates
    records = snapshot_tables(_sources(table, sha256), str(tmp_path / "out"))
    assert records == {
        HOLIDAYS.name: {"source_uri": str(table), "sha256": sha256, "rows": 1, "first_key": "2014-05-26", "last_key": "2014-05-26"}
    }
    assert (tmp_path / "out" / f"{HOLIDAYS.name}.csv").read_bytes() == table.read_bytes()


def test_a_table_changed_since_the_pipeline_was_built_is_refused(tmp_path):
    table = tmp_path / "holidays.csv"
    table.write_text(HOLIDAY_HEADER + "\n2014-05-26,0,1,0,Memorial Day\n")
    with pytest.raises(ExternalTableChangedError, match=r"changed after the pipeline was built: SHA-256 [0-9a-f]{64}, expected 0000"):
        snapshot_tables(_sources(table, "0000"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_table_that_is_not_utf8_is_refused(tmp_path):
    table = tmp_path / "holidays.csv"
    table.write_bytes(HOLIDAY_HEADER.encode() + b"\n2014-05-26,0,1,0,F\xeate\n")
    sha256 = hashlib.sha256(table.read_bytes()).hexdigest()
    with pytest.raises(external.ExternalTableError, match="is not UTF-8 text"):
        snapshot_tables(_sources(table, sha256), str(tmp_path / "out"))


def test_a_byte_order_mark_is_not_part_of_the_header():
    table = external.parse_table("\ufeff" + HOLIDAY_HEADER + "\n2014-05-26,0,1,0,\n", HOLIDAYS, "excel.csv")
    assert table.values["is_holiday"] == (1,)


def test_a_spec_joins_only_bounded_integer_columns():
    with pytest.raises(ValueError, match="joined column 'name' must be int64 with a min and a max value"):
        external.ExternalTableSpec("t", "day", external.DATE, "ts", (external.ExternalColumn("name", external.STRING),), ("name",))
    with pytest.raises(KeyError, match="has no column 'nope'"):
        HOLIDAYS.column("nope")
    # The joined ranges are the feature sizes of modules/features.py, not a second copy.
    sizes = features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE]
    assert {name: HOLIDAYS.column(name).max_value + 1 for name in HOLIDAYS.joined} == sizes


def test_relative_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(shipped_table_path(features.HOLIDAY_TABLE).rsplit("/", 1)[0])
    source = table_source(features.HOLIDAY_TABLE, "holidays.csv")
    assert source.uri == shipped_table_path(features.HOLIDAY_TABLE)
