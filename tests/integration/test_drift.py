"""The newest span's checks (TFDV statistics in Beam) on real span files and shifted copies."""
import csv

import pytest
import tensorflow_data_validation as tfdv

from pipeline import configs
from pipeline.components.drift_check import check_span
from pipeline.validation.comparators import describe
from pipeline.validation.span_rows import CsvFormatError
from tests.conftest import DATA_ROOT, SCHEMA_PATH

pytestmark = pytest.mark.slow

SHIPPED = {span: [str(DATA_ROOT / f"span-{span}" / "data.csv")] for span in (1, 2, 3, 4)}
COORDINATES = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]


def _changed_copy(source, target_dir, change):
    """Writes `source` with `change(row)` applied to each row into target_dir/data.csv."""
    target_dir.mkdir(parents=True)
    with open(source, newline="") as source_file, open(target_dir / "data.csv", "w", newline="") as target_file:
        reader = csv.DictReader(source_file)
        writer = csv.DictWriter(target_file, fieldnames=reader.fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in reader:
            writer.writerow(change(row))
    return [str(target_dir / "data.csv")]


def _scaled_fares(factor):
    def change(row):
        if row["fare"]:
            row["fare"] = f"{float(row['fare']) * factor:.2f}"
        return row

    return change


@pytest.fixture(scope="module")
def schema():
    return tfdv.load_schema_text(str(SCHEMA_PATH))


def _window_with(tmp_path, change):
    return {1: SHIPPED[1], 2: SHIPPED[2], 3: SHIPPED[3], 4: _changed_copy(SHIPPED[4][0], tmp_path / "span-4", change)}


def test_the_shipped_newest_span_passes_against_the_window_and_every_score_is_recorded(schema, tmp_path):
    report = check_span(SHIPPED, schema, configs.DriftConfig(), str(tmp_path))
    assert report["checked_span"] == 4 and report["reference_spans"] == [1, 2, 3]
    assert report["anomalies"] == []
    assert [s for s in report["scores"] if s["drifted"]] == []
    judged = {s["feature"]: s for s in report["scores"] if s["judged"]}
    assert {"fare", "payment_type", "company", "trip_miles", "trip_seconds"} <= set(judged)
    assert judged["payment_type"]["measure"] == "L-infinity" and judged["fare"]["measure"] == "Jensen-Shannon"
    # Columns that change with the span's time are reported, not judged.
    month = next(s for s in report["scores"] if s["feature"] == "trip_start_month")
    assert not month["judged"] and "span's time" in month["note"]
    assert (tmp_path / "newest_span_statistics.pb").exists() and (tmp_path / "reference_statistics.pb").exists()


def test_fares_half_as_high_again_are_flagged_and_unchanged_columns_stay_quiet(schema, tmp_path):
    report = check_span(_window_with(tmp_path, _scaled_fares(1.5)), schema, configs.DriftConfig(), str(tmp_path))
    drifted = {s["feature"] for s in report["scores"] if s["drifted"]}
    assert drifted == {"fare"}
    assert "fare Jensen-Shannon" in describe(report["scores"])


def test_empty_coordinates_are_refused_naming_each_column_and_both_fractions(schema, tmp_path):
    def empty(row):
        return {**row, **{column: "" for column in COORDINATES}}

    report = check_span(_window_with(tmp_path, empty), schema, configs.DriftConfig(), str(tmp_path))
    by_feature = {anomaly["feature"]: anomaly["description"] for anomaly in report["anomalies"]}
    assert set(by_feature) == set(COORDINATES)
    assert "present in 0.0% of the span's 833 rows; the schema expects at least 85%" in by_feature["pickup_latitude"]


def test_a_span_that_dropped_a_column_is_refused_naming_it(schema, tmp_path):
    folder = tmp_path / "span-4"
    folder.mkdir()
    with open(SHIPPED[4][0], newline="") as source, open(folder / "data.csv", "w", newline="") as target:
        reader = csv.DictReader(source)
        kept = [name for name in reader.fieldnames if name != "company"]
        writer = csv.DictWriter(target, fieldnames=kept, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(reader)
    window = {1: SHIPPED[1], 2: SHIPPED[2], 3: SHIPPED[3], 4: [str(folder / "data.csv")]}
    report = check_span(window, schema, configs.DriftConfig(), str(tmp_path))
    (anomaly,) = [a for a in report["anomalies"] if a["feature"] == "company"]
    assert "present in 0.0% of the span's 833 rows; the schema expects at least 50%" in anomaly["description"]


def test_a_small_span_is_reported_but_not_judged(schema, tmp_path):
    folder = tmp_path / "span-5"
    folder.mkdir()
    with open(SHIPPED[4][0]) as source:
        lines = source.readlines()[:51]
    (folder / "data.csv").write_text("".join(lines))
    report = check_span({**SHIPPED, 5: [str(folder / "data.csv")]}, schema, configs.DriftConfig(), str(tmp_path))
    fare = next(s for s in report["scores"] if s["feature"] == "fare")
    assert not fare["judged"] and "50 values in the span" in fare["note"]


def test_a_span_with_a_header_only_is_refused(schema, tmp_path):
    folder = tmp_path / "span-5"
    folder.mkdir()
    with open(SHIPPED[4][0]) as source:
        (folder / "data.csv").write_text(source.readline())
    report = check_span({**SHIPPED, 5: [str(folder / "data.csv")]}, schema, configs.DriftConfig(), str(tmp_path))
    assert report["anomalies"] == [
        {"feature": "(dataset)", "kind": "Empty span", "description": "span 5 has no rows: its files hold a header only"}
    ]


def test_a_span_the_reader_cannot_read_fails_the_check_with_the_file_and_line(schema, tmp_path):
    def broken(row, seen={"n": 0}):
        seen["n"] += 1
        return {**row, "fare": "twelve"} if seen["n"] == 3 else row

    with pytest.raises(CsvFormatError, match=r"span-4/data.csv, line 4, column 'fare': value 'twelve'"):
        check_span(_window_with(tmp_path, broken), schema, configs.DriftConfig(), str(tmp_path))


def test_a_quoted_multi_line_cell_is_read_and_tripled_fares_are_still_flagged(schema, tmp_path):
    def multi_line(row, seen={"n": 0}):
        seen["n"] += 1
        row = _scaled_fares(3.0)(row)
        return {**row, "company": "Cab\nCompany"} if seen["n"] == 1 else row

    report = check_span(_window_with(tmp_path, multi_line), schema, configs.DriftConfig(), str(tmp_path))
    assert "fare" in {s["feature"] for s in report["scores"] if s["drifted"]}
