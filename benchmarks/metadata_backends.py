"""Times the whole `python run_local.py` with ML Metadata in SQLite against MySQL/MariaDB.

Runs alternate, SQLite first (A B A B ...), so a slow minute on the machine falls on both.
Each run is a whole process (interpreter start and imports included) on the shipped data into
a fresh output folder; each MariaDB run gets a fresh database, dropped afterwards. Prints each
time, then the medians and their ratio.

    python benchmarks/metadata_backends.py --pairs 3
    python benchmarks/metadata_backends.py --pairs 3 --server mysql://root@127.0.0.1:3306/test
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from typing import List, Optional, Sequence

from pipeline.ops import metadata
from pipeline_speed import REPO_ROOT, timed_command


def _timed_run(output_dir: str, log_path: str, extra: List[str]) -> float:
    command = [sys.executable, os.path.join(REPO_ROOT, "run_local.py"), "--output-dir", output_dir, *extra]
    return timed_command(command, REPO_ROOT, dict(os.environ), log_path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the pairs and prints the times; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="SQLite/MariaDB pairs (default 3)")
    parser.add_argument("--server", default="mysql://root@127.0.0.1:3306/test", help="a MySQL/MariaDB server (its database part is ignored)")
    parser.add_argument("--work-dir", help="where the runs write (default: a temporary folder, removed after)")
    args = parser.parse_args(argv)
    import pymysql

    server = metadata.parse_metadata_url(args.server).mysql
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="metadata_backends_")
    os.makedirs(work_dir, exist_ok=True)
    connection = pymysql.connect(host=server.host, port=server.port, user=server.user, password=os.environ.get(metadata.METADATA_PASSWORD_ENV, ""))
    times = {"sqlite": [], "mariadb": []}
    try:
        for pair in range(1, args.pairs + 1):
            output_dir = os.path.join(work_dir, "out")
            shutil.rmtree(output_dir, ignore_errors=True)
            seconds = _timed_run(output_dir, os.path.join(work_dir, f"sqlite-{pair}.log"), [])
            times["sqlite"].append(seconds)
            print(f"pair {pair}: SQLite  {seconds:6.1f} s", flush=True)
            shutil.rmtree(output_dir, ignore_errors=True)
            database = f"taxi_bench_{uuid.uuid4().hex[:8]}"
            url = f"mysql://{server.user}@{server.host}:{server.port}/{database}"
            try:
                seconds = _timed_run(output_dir, os.path.join(work_dir, f"mariadb-{pair}.log"), ["--metadata-url", url])
            finally:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS {database}")
            times["mariadb"].append(seconds)
            print(f"pair {pair}: MariaDB {seconds:6.1f} s", flush=True)
    finally:
        connection.close()
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    sqlite, mariadb = statistics.median(times["sqlite"]), statistics.median(times["mariadb"])
    print(f"median of {args.pairs} alternated pairs: SQLite {sqlite:.1f} s, MariaDB {mariadb:.1f} s, ratio MariaDB/SQLite {mariadb / sqlite:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
