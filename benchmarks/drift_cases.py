"""The newest-span checks (`pipeline.components.drift_check.check_span`) on the shipped spans and on shifted copies.

    python benchmarks/drift_cases.py [--output-dir /tmp/drift_cases]

Each case is a window of span folders: the reference (earlier spans) and a newest span, made
from the shipped data. Prints, per case, whether the checks refuse it (schema anomalies of the
span alone, or a judged column over its threshold) and the highest judged scores, with the
default `DriftConfig`. docs/data_checks.md quotes the table.
"""
import argparse
import csv
import os
import pathlib
import random
import shutil
import tempfile
from typing import Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow_data_validation as tfdv  # noqa: E402

from pipeline import configs
from pipeline.components import drift_check  # noqa: E402
from pipeline.configs import CURATED_SCHEMA_PATH  # noqa: E402
from pipeline.validation.table_sources import REPO_DATA_ROOT  # noqa: E402

Row = Dict[str, str]


def read_rows(path: pathlib.Path) -> List[Row]:
    with open(path, newline="") as data_file:
        return list(csv.DictReader(data_file))


def write_span(folder: pathlib.Path, rows: List[Row], header: List[str]) -> List[str]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "data.csv", "w", newline="") as data_file:
        writer = csv.DictWriter(data_file, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return [str(folder / "data.csv")]


def scaled(column: str, factor: float, digits: int = 2) -> Callable[[Row], Row]:
    def change(row: Row) -> Row:
        if row[column]:
            value = float(row[column]) * factor
            row[column] = str(round(value)) if digits == 0 else f"{value:.{digits}f}"
        return row

    return change


def emptied(columns: List[str], share: float, seed: int = 0) -> Callable[[Row], Row]:
    chooser = random.Random(seed)

    def change(row: Row) -> Row:
        if chooser.random() < share:
            for column in columns:
                row[column] = ""
        return row

    return change


def renamed_companies(share: float, seed: int = 0) -> Callable[[Row], Row]:
    chooser = random.Random(seed)
    newcomers = ["Flash Cab 2", "City Service New", "Sun Taxi Co"]

    def change(row: Row) -> Row:
        if chooser.random() < share:
            row["company"] = chooser.choice(newcomers)
        return row

    return change


def flipped_payments(row: Row) -> Row:
    row["payment_type"] = {"Cash": "Credit Card", "Credit Card": "Cash"}.get(row["payment_type"], row["payment_type"])
    return row


def combined(*changes: Callable[[Row], Row]) -> Callable[[Row], Row]:
    def change(row: Row) -> Row:
        for one in changes:
            row = one(row)
        return row

    return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=None, help="where the case folders go (default: a temporary folder)")
    args = parser.parse_args()
    work = pathlib.Path(args.output_dir or tempfile.mkdtemp(prefix="drift_cases_"))
    schema = tfdv.load_schema_text(CURATED_SCHEMA_PATH)
    config = configs.DriftConfig()
    data_root = pathlib.Path(REPO_DATA_ROOT)
    spans = {span: read_rows(data_root / f"span-{span}" / "data.csv") for span in (1, 2, 3, 4)}
    header = list(spans[1][0])
    by_time = sorted((row for rows in spans.values() for row in rows), key=lambda row: int(row["trip_start_timestamp"]))

    cases: Dict[str, Dict[int, List[Row]]] = {}
    for newest in (2, 3, 4):
        cases[f"shipped span {newest} against spans 1..{newest - 1}"] = {s: spans[s] for s in range(1, newest + 1)}
    # The shipped trips in time order, cut into 30 spans of 500 trips (about seven weeks each).
    chunks = [by_time[i : i + 500] for i in range(0, len(by_time) - 499, 500)]
    for newest in (10, 20, len(chunks) - 1):
        cases[f"time-ordered chunk {newest + 1} of 500 trips against chunks 1..{newest}"] = {
            index + 1: chunk for index, chunk in enumerate(chunks[: newest + 1])
        }

    def shifted(change: Callable[[Row], Row], source: int = 4) -> Dict[int, List[Row]]:
        window = {s: spans[s] for s in range(1, source)}
        window[source] = [change(dict(row)) for row in spans[source]]
        return window

    def outlier(row: Row, state={"done": False}) -> Row:  # one fare of 9,000, inside the schema's range
        if not state["done"] and row["fare"]:
            row["fare"], state["done"] = "9000.00", True
        return row

    cases["span 4, fares x1.25"] = shifted(scaled("fare", 1.25))
    cases["span 4, fares x1.5"] = shifted(scaled("fare", 1.5))
    cases["span 4, fares x2 and one fare of 9,000"] = shifted(combined(scaled("fare", 2.0), outlier))
    cases["span 4, trips 1.5x longer (seconds and miles)"] = shifted(
        combined(scaled("trip_seconds", 1.5, digits=0), scaled("trip_miles", 1.5))
    )
    cases["span 4, 40% of companies new names"] = shifted(renamed_companies(0.4))
    cases["span 4, fares x3 and payments flipped"] = shifted(combined(scaled("fare", 3.0), flipped_payments))
    coordinates = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]
    cases["span 4, every coordinate empty"] = shifted(emptied(coordinates, 1.0))
    cases["span 4, company empty in 80% of trips"] = shifted(emptied(["company"], 0.8))

    print("Completeness: the share of rows with a value, per shipped span, and the schema's floor")
    print(f"{'column':<24}" + "".join(f"{'span ' + str(s):>9}" for s in spans) + f"{'floor':>9}")
    floors = {feature.name: feature.presence.min_fraction for feature in schema.feature}
    for column in header:
        shares = [sum(1 for row in rows if row[column] != "") / len(rows) for rows in spans.values()]
        print(f"{column:<24}" + "".join(f"{share:>9.3f}" for share in shares) + f"{floors.get(column, 0.0):>9.2f}")
    print()
    print(f"{'case':<62} {'verdict':<8} highest judged scores (threshold)")
    for index, (name, window) in enumerate(cases.items()):
        folder = work / f"case-{index}"
        shutil.rmtree(folder, ignore_errors=True)
        span_files = {span: write_span(folder / f"span-{span}", rows, header) for span, rows in window.items()}
        report = drift_check.check_span(span_files, schema, config, str(folder))
        judged = [s for s in report["scores"] if s["judged"]]
        refused = bool(report["anomalies"]) or any(s["drifted"] for s in judged)
        top = ", ".join(f"{s['feature']} {s['score']:.3f} ({s['threshold']})" for s in judged[:3])
        print(f"{name:<62} {'REFUSED' if refused else 'passes':<8} {top}")
        for anomaly in report["anomalies"]:
            print(f"{'':<71} anomaly: {anomaly['feature']}: {anomaly['description']}")


if __name__ == "__main__":
    main()
