"""Splits the Chicago taxi sample shipped in the tfx wheel into yearly CSV spans under data/.

Run once to (re)create the committed data: `.venv/bin/python scripts/split_spans.py`.
Span N holds the trips whose `trip_start_timestamp` falls in year FIRST_YEAR + N - 1 (UTC).
"""
import argparse
import csv
import datetime
import os
import pathlib

import tfx

FIRST_YEAR = 2013
SOURCE = pathlib.Path(tfx.__file__).parent / "examples/chicago_taxi_pipeline/data/simple/data.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="data", help="folder that receives span-<N>/data.csv")
    args = parser.parse_args()
    with open(SOURCE, newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        timestamp_column = header.index("trip_start_timestamp")
        rows_by_span: dict[int, list[list[str]]] = {}
        for row in reader:
            year = datetime.datetime.fromtimestamp(int(row[timestamp_column]), datetime.timezone.utc).year
            rows_by_span.setdefault(year - FIRST_YEAR + 1, []).append(row)
    for span, rows in sorted(rows_by_span.items()):
        span_dir = os.path.join(args.output, f"span-{span}")
        os.makedirs(span_dir, exist_ok=True)
        with open(os.path.join(span_dir, "data.csv"), "w", newline="") as target:
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        print(f"span-{span}: {len(rows)} rows")


if __name__ == "__main__":
    main()
