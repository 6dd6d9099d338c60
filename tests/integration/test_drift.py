"""Drift between spans with TFDV's comparators on real span files."""
import csv

import pytest
import tensorflow_data_validation as tfdv

from pipeline import configs
from pipeline.drift import compare_spans, describe
from tests.conftest import DATA_ROOT, SCHEMA_PATH

pytestmark = pytest.mark.slow


def _drifted_copy(source, target_dir):
    """Span 3 with fares tripled and the payment mix flipped (cash <-> credit card)."""
    target_dir.mkdir(parents=True)
    flip = {"Cash": "Credit Card", "Credit Card": "Cash"}
    with open(source) as source_file, open(target_dir / "data.csv", "w", newline="") as target_file:
        reader = csv.DictReader(source_file)
        writer = csv.DictWriter(target_file, fieldnames=reader.fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in reader:
            if row["fare"]:
                row["fare"] = f"{float(row['fare']) * 3:.2f}"
            row["payment_type"] = flip.get(row["payment_type"], row["payment_type"])
            writer.writerow(row)


@pytest.fixture(scope="module")
def schema():
    return tfdv.load_schema_text(str(SCHEMA_PATH))


def test_shipped_neighbouring_spans_do_not_drift_but_every_score_is_recorded(schema):
    scores = compare_spans(str(DATA_ROOT / "span-3"), str(DATA_ROOT / "span-4"), schema, configs.DriftConfig())
    assert [s for s in scores if s["drifted"]] == []
    compared = {s["feature"] for s in scores}
    assert {"fare", "payment_type", "company", "trip_miles"} <= compared
    assert "trip_start_timestamp" not in compared
    measures = {s["feature"]: s["measure"] for s in scores}
    assert measures["payment_type"] == "L-infinity" and measures["fare"] == "Jensen-Shannon"


def test_tripled_fares_and_flipped_payments_are_caught_and_named(schema, tmp_path):
    _drifted_copy(DATA_ROOT / "span-3" / "data.csv", tmp_path / "span-4")
    scores = compare_spans(str(DATA_ROOT / "span-3"), str(tmp_path / "span-4"), schema, configs.DriftConfig())
    drifted = {s["feature"] for s in scores if s["drifted"]}
    assert {"fare", "payment_type"} <= drifted
    assert "trip_seconds" not in drifted  # unchanged columns stay quiet
    message = describe(scores)
    assert "fare Jensen-Shannon" in message and "payment_type L-infinity" in message
