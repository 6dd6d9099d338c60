"""Times `python run_local.py` against TFX's own taxi example pipeline, on the same machine.

TFX's example (`taxi_pipeline_native_keras.py`, with `taxi_utils_native_keras.py` and the
same 15,002 trips) ships in the installed tfx wheel. It reads its data and writes its output
under `$HOME`, so each of its runs gets a fresh temporary HOME. Runs alternate, this
pipeline first, so that a slow minute on the machine falls on both. Each time is the wall
time of the whole process, interpreter start and imports included, into a fresh output folder.

    python benchmarks/pipeline_speed.py --rounds 3
    python benchmarks/pipeline_speed.py --rounds 3 --rows 200000

With `--rows N` both pipelines read the same N trips, resampled (with replacement, seeded) from
the example's 15,002: one CSV file, TFX's example's `data/simple/data.csv` and this pipeline's
only span. The ratio column is this pipeline's median over the example's. Each run of this
pipeline is followed by its run summary's seconds per component.
"""
import argparse
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Inside the tfx package: the example's pipeline, its module file and its data.
TFX_EXAMPLE_DIR = os.path.join("examples", "chicago_taxi_pipeline")
TFX_EXAMPLE_PIPELINE = "taxi_pipeline_native_keras.py"
TFX_EXAMPLE_MODULE = "taxi_utils_native_keras.py"


def tfx_example_dir() -> str:
    """The taxi example folder of the installed tfx wheel."""
    import tfx

    return os.path.join(os.path.dirname(tfx.__file__), TFX_EXAMPLE_DIR)


def timed_command(command: List[str], cwd: str, env: Dict[str, str], log_path: str) -> float:
    """Wall seconds of one command, its output into `log_path`.

    Raises:
        RuntimeError: when it fails; the message names the log.
    """
    started = time.monotonic()
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}; its output is in {log_path}")
    return elapsed


def resampled_trips(rows: int, work_dir: str, seed: int = 0) -> str:
    """Writes `rows` trips drawn with replacement from the example's data (same header, cells as
    they are, empty ones included) to work_dir/resampled/span-1/data.csv; returns that path."""
    path = os.path.join(work_dir, "resampled", "span-1", "data.csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(os.path.join(tfx_example_dir(), "data", "simple", "data.csv"), newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        trips = list(reader)
    draw = random.Random(seed)
    with open(path, "w", newline="") as target:
        writer = csv.writer(target, lineterminator="\n")
        writer.writerow(header)
        for _ in range(rows):
            writer.writerow(trips[draw.randrange(len(trips))])
    return path


def time_this_pipeline(work_dir: str, data_csv: Optional[str] = None) -> float:
    """Seconds for one `python run_local.py` into a fresh output folder (on `data_csv`'s span
    when given, else on the shipped data)."""
    output_dir = os.path.join(work_dir, "this_pipeline")
    shutil.rmtree(output_dir, ignore_errors=True)
    command = [sys.executable, os.path.join(REPO_ROOT, "run_local.py"), "--output-dir", output_dir]
    if data_csv:
        command += ["--data-root", os.path.dirname(os.path.dirname(data_csv))]
    return timed_command(command, REPO_ROOT, dict(os.environ), os.path.join(work_dir, "this_pipeline.log"))


def component_times(work_dir: str) -> Optional[str]:
    """The run summary's "components: ..." line of the last `time_this_pipeline` run, if any."""
    return components_line(os.path.join(work_dir, "this_pipeline.log"))


def components_line(log_path: str) -> Optional[str]:
    """The run summary's last "components: ..." line in a `run_local.py` log, if any."""
    with open(log_path) as log:
        lines = [line.strip() for line in log if line.startswith("components: ")]
    return lines[-1] if lines else None


def time_tfx_example(work_dir: str, data_csv: Optional[str] = None) -> float:
    """Seconds for one run of TFX's taxi example, laid out under a fresh HOME as it expects
    (reading `data_csv` when given, else its own data)."""
    home = os.path.join(work_dir, "tfx_home")
    shutil.rmtree(home, ignore_errors=True)
    example_dir = tfx_example_dir()
    taxi_root = os.path.join(home, "taxi")
    shutil.copytree(os.path.join(example_dir, "data", "simple"), os.path.join(taxi_root, "data", "simple"))
    if data_csv:
        shutil.copy(data_csv, os.path.join(taxi_root, "data", "simple", "data.csv"))
    shutil.copy(os.path.join(example_dir, TFX_EXAMPLE_MODULE), taxi_root)
    command = [sys.executable, os.path.join(example_dir, TFX_EXAMPLE_PIPELINE)]
    return timed_command(command, home, {**os.environ, "HOME": home}, os.path.join(work_dir, "tfx_example.log"))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line: how many rounds, and where the runs write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each pipeline (default 3)")
    parser.add_argument("--rows", type=int, help="both read this many trips resampled from the example's data (default: each its own data)")
    parser.add_argument("--work-dir", help="where the runs write (default: a temporary folder, removed after)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs both pipelines in turn and prints each time and the summary; returns the exit code."""
    args = parse_args(argv)
    if args.rounds < 1:
        print(f"--rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    if args.rows is not None and args.rows < 1:
        print(f"--rows must be at least 1, got {args.rows}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="pipeline_speed_")
    os.makedirs(work_dir, exist_ok=True)
    data_csv = resampled_trips(args.rows, work_dir) if args.rows else None
    times: Dict[str, List[float]] = {"this pipeline (run_local.py)": [], "TFX's taxi example": []}
    try:
        for round_number in range(1, args.rounds + 1):
            for name, run in zip(times, (time_this_pipeline, time_tfx_example)):
                seconds = run(work_dir, data_csv)
                times[name].append(seconds)
                print(f"round {round_number}: {name:<30} {seconds:6.1f} s", flush=True)
                if run is time_this_pipeline:
                    print(f"    {component_times(work_dir)}", flush=True)
    except RuntimeError as error:
        # The failed run's log stays in the work folder, which the message names.
        print(error, file=sys.stderr)
        return 1
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    rows = f"{args.rows:,} resampled trips" if args.rows else "each its own data"
    print_medians("pipeline", times, rows, "this pipeline / TFX's example")
    return 0


def print_medians(title: str, times: Dict[str, List[float]], what: str, ratio_words: str) -> None:
    """Prints each variant's median, fastest and slowest seconds, then the ratio of the first
    variant's median over the second's (`ratio_words` names the two)."""
    print(f"\n{title:<30}{'median':>9}{'fastest':>9}{'slowest':>9}   (s, {os.cpu_count()} CPUs, {what})")
    for name, seconds in times.items():
        print(f"{name:<30}{statistics.median(seconds):>9.1f}{min(seconds):>9.1f}{max(seconds):>9.1f}")
    first, second = (statistics.median(seconds) for seconds in times.values())
    print(f"ratio of medians ({ratio_words}): {first / second:.2f}")


if __name__ == "__main__":
    sys.exit(main())
