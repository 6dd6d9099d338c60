"""Measures `python -m pipeline score`: trips scored per second, per DirectRunner mode.

Examples:
  .venv/bin/python benchmarks/batch_score.py --serving-dir outputs/serving_model
      Generate 100,000 synthetic trips in one span (resampled from shipped span 4 by
      pipeline/data_tools/synthetic_data.py), then score them with the serving version three
      times in each mode, in_memory and multi_processing with 2 workers, alternating; check
      every run wrote the same trips in the same order with the same scores (within
      SCORE_TOLERANCE); print a table.
  .venv/bin/python benchmarks/batch_score.py --saved-model outputs/serving_model/1796391526 --rows 20000 --pairs 1
      A quick look with one SavedModel folder.

What is timed is `pipeline.runners.batch_score.score_span`: the Beam job from reading the CSV
to the renamed output file, model loading included, imports not. Trips per second = trips /
those seconds. The machine's other work shows in the spread; the median is quoted.

Runs agree on every trip and its place, and on its score to the last bits of a float32 only:
the model computes a batch at a time, and the math library's sums over a batch of another size
may round differently (measured: at most 1.4e-7, on 57 of 20,000 trips).
"""
import argparse
import csv
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
from typing import Dict, List, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from serving.console import import_tensorflow  # noqa: E402

import_tensorflow()

from pipeline.data_tools.synthetic_data import generate  # noqa: E402
from pipeline.runners import batch_score  # noqa: E402
from pipeline.runners.beam_args import DirectRunnerConfig, beam_args_for  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# How far two runs' scores of one trip may differ (float32 rounding of another batch size).
SCORE_TOLERANCE = 1e-6


def _read_scores(path: pathlib.Path) -> Tuple[List[Tuple[str, ...]], List[float]]:
    """(the key columns of each row, the scores) of an output CSV, in file order."""
    with open(path, newline="") as scores:
        rows = list(csv.reader(scores))[1:]
    return [tuple(row[:-1]) for row in rows], [float(row[-1]) for row in rows]


def main() -> int:
    """Runs the measurement and prints the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving-dir", default=str(REPO_ROOT / "outputs" / "serving_model"), help="score with the version serving here")
    parser.add_argument("--saved-model", help="score with this SavedModel folder instead")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic trips in the span (default 100,000)")
    parser.add_argument("--source-span", type=int, default=4, help="shipped span the trips are resampled from (default 4)")
    parser.add_argument("--pairs", type=int, default=3, help="in_memory / multi_processing pairs, alternated (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="multi_processing workers (default 2)")
    args = parser.parse_args()
    model_path = batch_score.resolve_model(args.saved_model, None if args.saved_model else args.serving_dir)
    modes = {
        "in_memory": beam_args_for(DirectRunnerConfig(mode="in_memory")),
        f"multi_processing x{args.workers}": beam_args_for(DirectRunnerConfig(mode="multi_processing", num_workers=args.workers)),
    }
    work = pathlib.Path(tempfile.mkdtemp(prefix="batch_score_bench_"))
    try:
        source = work / "source"
        shutil.copytree(REPO_ROOT / "data" / f"span-{args.source_span}", source / f"span-{args.source_span}")
        generate(str(source), str(work / "data"), args.rows)
        span_dir = str(work / "data" / f"span-{args.source_span}")
        seconds: Dict[str, List[float]] = {mode: [] for mode in modes}
        first_output = None
        largest_difference = 0.0
        for round_number in range(args.pairs):
            for mode, pipeline_args in modes.items():
                output = work / f"scores-{round_number}-{mode.split()[0]}.csv"
                result = batch_score.score_span(span_dir, model_path, str(output), pipeline_args)
                if result.rows != args.rows:
                    raise RuntimeError(f"{mode} scored {result.rows} trips, not {args.rows}")
                keys, scores = _read_scores(output)
                if first_output is None:
                    first_output = keys, scores
                elif keys != first_output[0]:
                    raise RuntimeError(f"{mode} wrote other trips or another order than the first run ({output})")
                else:
                    difference = max(abs(score - first) for score, first in zip(scores, first_output[1]))
                    if difference > SCORE_TOLERANCE:
                        raise RuntimeError(f"{mode} scored a trip {difference:.2g} away from the first run ({output})")
                    largest_difference = max(largest_difference, difference)
                seconds[mode].append(result.seconds)
                print(f"round {round_number + 1} {mode}: {result.seconds:.1f}s, {args.rows / result.seconds:,.0f} trips/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.rows:,} trips, model {model_path}, {os.cpu_count()} CPUs; every run wrote the same trips in the same "
        f"order, scores at most {largest_difference:.2g} apart"
    )
    print(f"{'mode':<22} {'median s':>9} {'fastest':>8} {'slowest':>8} {'trips/s (median)':>17}")
    for mode, times in seconds.items():
        median = statistics.median(times)
        print(f"{mode:<22} {median:>9.1f} {min(times):>8.1f} {max(times):>8.1f} {args.rows / median:>17,.0f}")
    names = list(seconds)
    print(f"ratio {names[1]} / {names[0]} (median seconds): {statistics.median(seconds[names[1]]) / statistics.median(seconds[names[0]]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
