"""Times `python run_local.py` against TFX's own taxi example pipeline, on the same machine.

TFX's example (`taxi_pipeline_native_keras.py`, with `taxi_utils_native_keras.py` and the
same 15,002 trips) ships in the installed tfx wheel. It reads its data and writes its output
under `$HOME`, so each of its runs gets a fresh temporary HOME. Runs alternate, this
pipeline first, so that a slow minute on the machine falls on both. Each time is the wall
time of the whole process, interpreter start and imports included, into a fresh output folder.

    python benchmarks/pipeline_speed.py --rounds 3
"""
import argparse
import os
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


def _timed(command: List[str], cwd: str, env: Dict[str, str], log_path: str) -> float:
    started = time.monotonic()
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}; its output is in {log_path}")
    return elapsed


def time_this_pipeline(work_dir: str) -> float:
    """Seconds for one `python run_local.py` into a fresh output folder."""
    output_dir = os.path.join(work_dir, "this_pipeline")
    shutil.rmtree(output_dir, ignore_errors=True)
    command = [sys.executable, os.path.join(REPO_ROOT, "run_local.py"), "--output-dir", output_dir]
    return _timed(command, REPO_ROOT, dict(os.environ), os.path.join(work_dir, "this_pipeline.log"))


def time_tfx_example(work_dir: str) -> float:
    """Seconds for one run of TFX's taxi example, laid out under a fresh HOME as it expects."""
    home = os.path.join(work_dir, "tfx_home")
    shutil.rmtree(home, ignore_errors=True)
    example_dir = tfx_example_dir()
    taxi_root = os.path.join(home, "taxi")
    shutil.copytree(os.path.join(example_dir, "data", "simple"), os.path.join(taxi_root, "data", "simple"))
    shutil.copy(os.path.join(example_dir, TFX_EXAMPLE_MODULE), taxi_root)
    command = [sys.executable, os.path.join(example_dir, TFX_EXAMPLE_PIPELINE)]
    return _timed(command, home, {**os.environ, "HOME": home}, os.path.join(work_dir, "tfx_example.log"))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line: how many rounds, and where the runs write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each pipeline (default 3)")
    parser.add_argument("--work-dir", help="where the runs write (default: a temporary folder, removed after)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs both pipelines in turn and prints each time and the summary; returns the exit code."""
    args = parse_args(argv)
    if args.rounds < 1:
        print(f"--rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="pipeline_speed_")
    os.makedirs(work_dir, exist_ok=True)
    times: Dict[str, List[float]] = {"this pipeline (run_local.py)": [], "TFX's taxi example": []}
    try:
        for round_number in range(1, args.rounds + 1):
            for name, run in zip(times, (time_this_pipeline, time_tfx_example)):
                seconds = run(work_dir)
                times[name].append(seconds)
                print(f"round {round_number}: {name:<30} {seconds:6.1f} s", flush=True)
    except RuntimeError as error:
        # The failed run's log stays in the work folder, which the message names.
        print(error, file=sys.stderr)
        return 1
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"\n{'pipeline':<30}{'median':>9}{'fastest':>9}{'slowest':>9}   (s, {os.cpu_count()} CPUs)")
    for name, seconds in times.items():
        print(f"{name:<30}{statistics.median(seconds):>9.1f}{min(seconds):>9.1f}{max(seconds):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
