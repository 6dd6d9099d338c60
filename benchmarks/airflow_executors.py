"""Times one Airflow run of the taxi DAG under the SequentialExecutor against the LocalExecutor.

Everything else is the same and as deployed: Airflow's database in a fresh PostgreSQL database,
ML Metadata in a fresh MariaDB database, a real `airflow scheduler`, one `airflow dags trigger`.
The time is the DAG run's own (its end minus its start in Airflow's database), so the
scheduler's start and the DAG's first parse are not counted. Runs alternate, sequential first
(A B A B ...). The data is a sample (3 spans x 400 trips, 150 training steps), where Airflow's
per-task overhead weighs most.

    python benchmarks/airflow_executors.py --pairs 3
"""
import argparse
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, Optional, Sequence

import psycopg2
import pymysql

from pipeline.ops import metadata
from pipeline.runners.airflow_config import DAG_ID

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DAG_FILE = "from pipeline.runners.airflow_dag import DAG  # noqa: F401\n"


def _sample(root: pathlib.Path, rows_per_span: int = 400) -> pathlib.Path:
    """The first trips of shipped spans 1-3, and the external tables beside them."""
    for span in (1, 2, 3):
        target = root / f"span-{span}" / "data.csv"
        target.parent.mkdir(parents=True)
        with open(REPO_ROOT / "data" / f"span-{span}" / "data.csv") as source, open(target, "w") as sample:
            for index, line in enumerate(source):
                if index > rows_per_span:
                    break
                sample.write(line)
    shutil.copytree(REPO_ROOT / "data" / "external", root / "external")
    return root


def _environment(home: pathlib.Path, data_root: pathlib.Path, executor: str, airflow_db: str, metadata_url: str) -> Dict[str, str]:
    return {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TAXI_DATA_ROOT": str(data_root),
        "TAXI_OUTPUT_DIR": str(home.parent / "output"),
        "TAXI_TRAIN_STEPS": "150",
        "TAXI_EVAL_STEPS": "5",
        "TAXI_MIN_AUC": "0.85",
        "TAXI_MIN_BINARY_ACCURACY": "0.8",
        "TAXI_ON_DRIFT": "warn",
        "TAXI_SCHEDULE": "none",
        metadata.METADATA_URL_ENV: metadata_url,
    }


def time_one_run(work_dir: pathlib.Path, executor: str, postgres_url: str, mysql: metadata.MySQLDatabase) -> float:
    """Seconds of one triggered DAG run under `executor`, in fresh databases."""
    shutil.rmtree(work_dir, ignore_errors=True)
    home = work_dir / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "taxi_dag.py").write_text(DAG_FILE)
    data_root = _sample(work_dir / "data")
    name = f"taxi_bench_{uuid.uuid4().hex[:8]}"
    server = psycopg2.connect(postgres_url)
    server.autocommit = True
    mariadb = pymysql.connect(host=mysql.host, port=mysql.port, user=mysql.user, password=os.environ.get(metadata.METADATA_PASSWORD_ENV, ""))
    with server.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    airflow_db = f"{postgres_url.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg2://', 1)}/{name}"
    env = _environment(home, data_root, executor, airflow_db, f"mysql://{mysql.user}@{mysql.host}:{mysql.port}/{name}")
    try:
        subprocess.run(["airflow", "db", "migrate"], env=env, cwd=home, check=True, capture_output=True)
        with open(work_dir / "scheduler.log", "w") as log:
            scheduler = subprocess.Popen(["airflow", "scheduler"], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while subprocess.run(["airflow", "dags", "trigger", DAG_ID], env=env, cwd=home, capture_output=True).returncode != 0:
                time.sleep(5)
            while True:
                with psycopg2.connect(airflow_db.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
                    cursor.execute("SELECT state, EXTRACT(EPOCH FROM end_date - start_date) FROM dag_run WHERE dag_id = %s", (DAG_ID,))
                    row = cursor.fetchone()
                if row and row[0] in ("success", "failed"):
                    break
                time.sleep(2)
        finally:
            os.killpg(scheduler.pid, signal.SIGTERM)
            try:
                scheduler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(scheduler.pid, signal.SIGKILL)
                scheduler.wait()
        if row[0] != "success":
            raise RuntimeError(f"the {executor} run ended {row[0]}; see {work_dir / 'scheduler.log'}")
        return float(row[1])
    finally:
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        with mariadb.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        server.close()
        mariadb.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the pairs and prints the times; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="sequential/local pairs (default 3)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a PostgreSQL server for Airflow's database")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/test", help="a MySQL/MariaDB server for ML Metadata (database part ignored)")
    args = parser.parse_args(argv)
    mysql = metadata.parse_metadata_url(args.mysql).mysql
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="airflow_executors_"))
    times: Dict[str, list] = {"SequentialExecutor": [], "LocalExecutor": []}
    try:
        for pair in range(1, args.pairs + 1):
            for executor in times:
                seconds = time_one_run(work_dir / executor, executor, args.postgres, mysql)
                times[executor].append(seconds)
                print(f"pair {pair}: {executor:<18} {seconds:6.1f} s", flush=True)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    sequential, local = (statistics.median(times[executor]) for executor in times)
    print(f"median of {args.pairs} alternated pairs: SequentialExecutor {sequential:.1f} s, LocalExecutor {local:.1f} s, ratio local/sequential {local / sequential:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
