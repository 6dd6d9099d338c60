"""Shared fixtures: paths to the shipped data and schema, and tiny hand-made taxi trips."""
import os
import pathlib
from typing import Dict, List

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "data"
SCHEMA_PATH = REPO_ROOT / "pipeline" / "schema" / "schema.pbtxt"
SHARED_TF_SERVING = REPO_ROOT.parent / "shared" / "testdata" / "tf_serving"


def read_csv_header() -> List[str]:
    """Returns the column names of the shipped data, in file order."""
    with open(DATA_ROOT / "span-1" / "data.csv") as data_file:
        return data_file.readline().strip().split(",")


def trip(**overrides) -> Dict[str, object]:
    """Returns one raw taxi trip (a credit-card ride downtown) with `overrides` applied; a value
    of None leaves the column empty, as in the CSV."""
    row: Dict[str, object] = {
        "pickup_community_area": 8,
        "fare": 10.0,
        "trip_start_month": 5,
        "trip_start_hour": 19,
        "trip_start_day": 6,
        "trip_start_timestamp": 1400269500,
        "pickup_latitude": 41.899,
        "pickup_longitude": -87.633,
        "dropoff_latitude": 41.880,
        "dropoff_longitude": -87.632,
        "trip_miles": 1.5,
        "pickup_census_tract": None,
        "dropoff_census_tract": 17031839100,
        "payment_type": "Credit Card",
        "company": "Taxi Affiliation Services",
        "trip_seconds": 540,
        "dropoff_community_area": 32,
        "tips": 2.5,
    }
    row.update(overrides)
    return row


def write_csv(path: pathlib.Path, rows: List[Dict[str, object]]) -> pathlib.Path:
    """Writes `rows` as a CSV with the shipped data's header; None becomes an empty cell."""
    import csv

    header = read_csv_header()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row[column] is None else row[column] for column in header])
    return path


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    return DATA_ROOT


@pytest.fixture(scope="session")
def schema_path() -> pathlib.Path:
    return SCHEMA_PATH
