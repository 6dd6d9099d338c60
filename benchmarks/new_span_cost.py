"""What the run that adds one daily span costs, after N spans of history.

For each N (default 1, 4 and 16), in a fresh data root and a fresh output folder:

1. writes N daily spans of `--trips-per-span` synthetic trips each, drawn from shipped span 4
   with `pipeline/data_tools/synthetic_data.py`'s noise (span k seeded by k, so every N gets
   the same span k);
2. runs `python run_local.py` on them: the history run, which ingests all N spans;
3. adds span N+1 and runs `python run_local.py` again into the same output folder, with the
   same ML Metadata: the run that is measured. Its window is every span, N+1 of them (or the
   newest `--span-window` spans), so TFX answers from its cache whatever did not change.

Each run's time is the wall time of the whole process, interpreter start and imports included;
after it come the run summary's seconds per component. A cost that stays flat as N grows is
paid for the new span only; one that grows is paid again for the history. With
`--span-window W`, every step's work is bounded by the window, so the cost should not grow at
all once N reaches W.

    python benchmarks/new_span_cost.py
    python benchmarks/new_span_cost.py --history 1 4 16 --trips-per-span 5000 --work-dir /tmp/new_span
    python benchmarks/new_span_cost.py --history 4 16 64 --span-window 4
"""
import argparse
import csv
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pipeline import configs
from pipeline.data_tools.synthetic_data import read_span, synthesize
from pipeline_speed import REPO_ROOT, components_line, timed_command
SOURCE_SPAN = 4


def write_daily_span(data_root: str, span: int, trips: int) -> str:
    """Writes `trips` synthetic trips drawn from shipped span 4 as `data_root/span-<span>/`,
    seeded by the span number; returns the CSV file's path."""
    source = read_span(os.path.join(REPO_ROOT, "data"), SOURCE_SPAN)
    columns = synthesize(source, trips, np.random.default_rng([SOURCE_SPAN, span]))
    folder = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}")
    os.makedirs(folder)
    path = os.path.join(folder, "data.csv")
    with open(path, "w", newline="") as data_file:
        writer = csv.writer(data_file, lineterminator="\n")
        writer.writerow(source.header)
        writer.writerows(zip(*(columns[key] for key in source.header)))
    return path


def run_pipeline(data_root: str, output_dir: str, log_path: str, span_window: Optional[int] = None) -> Tuple[float, str]:
    """Seconds of one `python run_local.py` (with `--span-window` where given) and its
    "components: ..." line.

    Raises:
        RuntimeError: when the run fails; its output is in `log_path`.
    """
    command = [sys.executable, os.path.join(REPO_ROOT, "run_local.py"), "--data-root", data_root, "--output-dir", output_dir]
    if span_window is not None:
        command += ["--span-window", str(span_window)]
    seconds = timed_command(command, REPO_ROOT, dict(os.environ), log_path)
    return seconds, components_line(log_path) or "components: (no line)"


def component_seconds(line: str) -> Dict[str, str]:
    """{"Transform": "ran 12.3s", "CsvExampleGen": "cached", ...} from a "components: ..." line."""
    parts = {}
    for item in line[len("components: "):].split(", "):
        name, _, what = item.partition(" ")
        parts[name] = what
    return parts


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line: the history sizes, the span size and where the runs write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, nargs="+", default=[1, 4, 16], help="spans before the new one (default 1 4 16)")
    parser.add_argument("--trips-per-span", type=int, default=5000, help="trips of each daily span (default 5,000)")
    parser.add_argument("--work-dir", help="where the data and runs go (default: a temporary folder, removed after)")
    parser.add_argument("--span-window", type=int, help="train on the newest W spans only (run_local.py --span-window; default: every span)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the history and new-span runs for each N; prints each run and a table; returns the exit code."""
    args = parse_args(argv)
    if any(history < 1 for history in args.history) or args.trips_per_span < 1 or (args.span_window is not None and args.span_window < 1):
        print("--history values, --trips-per-span and --span-window must be at least 1", file=sys.stderr)
        return 2
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="new_span_cost_")
    os.makedirs(work_dir, exist_ok=True)
    measured: List[Tuple[int, float, Dict[str, str]]] = []
    try:
        for history in args.history:
            data_root = os.path.join(work_dir, f"history-{history}", "data")
            output_dir = os.path.join(work_dir, f"history-{history}", "output")
            shutil.rmtree(os.path.dirname(data_root), ignore_errors=True)
            for span in range(1, history + 1):
                write_daily_span(data_root, span, args.trips_per_span)
            seconds, line = run_pipeline(data_root, output_dir, os.path.join(work_dir, f"history-{history}.log"), args.span_window)
            print(f"N={history}: history run, spans 1-{history}: {seconds:.1f} s\n    {line}", flush=True)
            write_daily_span(data_root, history + 1, args.trips_per_span)
            seconds, line = run_pipeline(data_root, output_dir, os.path.join(work_dir, f"new-span-{history}.log"), args.span_window)
            print(f"N={history}: run adding span {history + 1}: {seconds:.1f} s\n    {line}", flush=True)
            measured.append((history, seconds, component_seconds(line)))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    names = [name for name in measured[0][2]]
    window = f"the newest {args.span_window} spans" if args.span_window else "every span"
    print(f"\nthe run that adds span N+1 ({args.trips_per_span:,} trips per span, window: {window}, {os.cpu_count()} CPUs)")
    print(f"{'step':<28}" + "".join(f"{f'N={history}':>14}" for history, _, _ in measured))
    print(f"{'whole run (s)':<28}" + "".join(f"{seconds:>14.1f}" for _, seconds, _ in measured))
    for name in names:
        print(f"{name:<28}" + "".join(f"{parts.get(name, '-'):>14}" for _, _, parts in measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
