"""Times `python run_local.py` and samples its memory, step by step, on resampled trips.

The run's resident memory (the process and every process it starts, such as the serving
check's model server) is read from /proc every `--interval` seconds. Each sample is put
against the step that was running at that moment, from the run's own progress lines
("[12:00:01] Transform ..." and "[12:00:45] Transform ran in 44.0s"). Printed: each step's
seconds and the peak it reached, and the run's wall time and peak.

    python benchmarks/pipeline_memory.py --rows 1000000
    python benchmarks/pipeline_memory.py --data-root data

With `--rows N` the run reads N trips resampled from TFX's taxi example data, as
`benchmarks/pipeline_speed.py --rows N` makes them (one span). Linux only (/proc).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from pipeline_speed import REPO_ROOT, resampled_trips

# The progress lines of pipeline/runners/progress.py.
_STARTED = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (\S+) \.\.\.$")
_ENDED = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (\S+) (\w+) in ([\d.]+)s$")


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident bytes of `root_pid` and all its descendants (0 for those that just ended)."""
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # The command name may hold spaces; the fields after its ")" are fixed.
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _sample(pid: int, interval: float, samples: List[Tuple[float, int]], done: threading.Event) -> None:
    while not done.is_set():
        samples.append((time.time(), _tree_rss_bytes(pid)))
        done.wait(interval)


def step_intervals(log_lines: Sequence[str], day: datetime.date) -> List[Tuple[str, float, float, str, float]]:
    """(step, start, end, state, seconds) of each step in a run's progress lines: start and end
    as Unix times (the lines give whole seconds, so the end is widened to its last second), and
    the seconds the line reports."""
    def unix(clock: str) -> float:
        return datetime.datetime.combine(day, datetime.time.fromisoformat(clock)).timestamp()

    started: Dict[str, float] = {}
    steps = []
    for line in log_lines:
        line = line.rstrip("\n")
        begin = _STARTED.match(line)
        if begin:
            started[begin.group(2)] = unix(begin.group(1))
            continue
        end = _ENDED.match(line)
        if end and end.group(2) in started:
            steps.append((end.group(2), started.pop(end.group(2)), unix(end.group(1)) + 1.0, end.group(3), float(end.group(4))))
    return steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the pipeline once while sampling its memory; prints the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rows", type=int, help="read this many trips resampled from TFX's example data")
    source.add_argument("--data-root", help="a folder of span-<N>/ folders (e.g. data)")
    parser.add_argument("--work-dir", help="where the run writes (default: a new temporary folder, kept)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples (default 0.5)")
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        print(f"--rows must be at least 1, got {args.rows}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="pipeline_memory_")
    os.makedirs(work_dir, exist_ok=True)
    data_root = os.path.dirname(os.path.dirname(resampled_trips(args.rows, work_dir))) if args.rows else args.data_root
    output_dir = os.path.join(work_dir, "output")
    log_path = os.path.join(work_dir, "run.log")
    command = [sys.executable, os.path.join(REPO_ROOT, "run_local.py"), "--data-root", data_root, "--output-dir", output_dir]
    samples: List[Tuple[float, int]] = []
    done = threading.Event()
    day = datetime.date.today()
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=_sample, args=(process.pid, args.interval, samples, done), daemon=True)
        sampler.start()
        returncode = process.wait()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    if returncode != 0:
        print(f"{' '.join(command)} exited {returncode}; its output is in {log_path}", file=sys.stderr)
        return 1
    with open(log_path) as log:
        steps = step_intervals(log.readlines(), day)
    mib = 1024 * 1024
    data = f"{args.rows:,} resampled trips" if args.rows else data_root
    print(f"{'step':<28}{'state':>8}{'seconds':>9}{'peak MiB':>10}   ({data}, sampled every {args.interval:g} s)")
    for name, begin, end, state, seconds in steps:
        during = [rss for moment, rss in samples if begin <= moment <= end]
        peak = f"{max(during) / mib:.0f}" if during else "-"
        print(f"{name:<28}{state:>8}{seconds:>9.1f}{peak:>10}")
    print(f"whole run: {wall:.1f} s, peak {max(rss for _, rss in samples) / mib:.0f} MiB; log and output in {work_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
