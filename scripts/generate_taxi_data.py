"""Writes synthetic taxi trips at any row count, resampled with noise from the shipped spans.

Examples:
  .venv/bin/python scripts/generate_taxi_data.py --rows 100000 --output /tmp/taxi_100k
      100,000 trips in /tmp/taxi_100k/span-<N>/data-*.csv, shared between spans like the source.
  .venv/bin/python scripts/generate_taxi_data.py --rows 1000000 --seed 7 --output /tmp/taxi_1m
      Another draw (same seed, same bytes).
  .venv/bin/python run_local.py --data-root /tmp/taxi_100k
      Train on it.

See pipeline/data_tools/synthetic_data.py for what is resampled and how the noise keeps the label.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

from pipeline.data_tools.synthetic_data import SyntheticDataError, generate
from pipeline.spans import SpanError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Generates the data; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, required=True, help="trips to write in all")
    parser.add_argument("--output", required=True, help="folder to write span-<N>/ folders into (no spans there yet)")
    parser.add_argument("--source", default=os.path.join(REPO_ROOT, "data"), help="data root to resample (default: data/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    parser.add_argument("--rows-per-file", type=int, default=250_000, help="trips per CSV file at most (default: 250000)")
    args = parser.parse_args(argv)
    try:
        written = generate(args.source, args.output, args.rows, seed=args.seed, rows_per_file=args.rows_per_file)
    except (SyntheticDataError, SpanError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for span, paths in sorted(written.items()):
        print(f"span {span}: {len(paths)} file(s) in {os.path.dirname(paths[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
