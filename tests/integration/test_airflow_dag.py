"""The Airflow DAG for real: Airflow's DagBag loads it, and `airflow dags test` runs it end to
end on a small sample with SQLite, pushing a model.

Airflow runs as a subprocess with a clean environment (its home, database and dags folder in
tmp_path), as a deployment would, so nothing of this test process leaks into it.
"""
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from pipeline import configs
from pipeline import dag as taxi_pipeline
from pipeline.runners.airflow_config import DAG_ID
from pipeline.validation.table_sources import resolve_sources
from tests.conftest import DATA_ROOT, REPO_ROOT, SAMPLE_OPTIONS, sample_data_root

pytestmark = pytest.mark.slow



def _pipeline_upstream() -> dict:
    """Each node of the pipeline (as create_pipeline builds it) with the ids it waits for."""
    pipeline = taxi_pipeline.create_pipeline(
        pipeline_name=DAG_ID,
        pipeline_root="/unused/root",
        data_root="/unused/data",
        spans=[1, 2, 3],
        serving_model_dir="/unused/serving",
        metadata_connection_config=None,
        options=configs.PipelineOptions(external_tables=resolve_sources(), newest_span_check=False),
    )
    return {node.id: sorted(upstream.id for upstream in node.upstream_nodes) for node in pipeline.components}


# The file an Airflow deployment puts in its dags folder (docs/orchestrators.md).
DAG_FILE = "from pipeline.runners.airflow_dag import DAG  # noqa: F401\n"
# Run in Airflow's environment: load the dags folder and describe what DagBag found.
DAGBAG_SCRIPT = """
import json, os
from airflow.models import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
dag = bag.dags.get(os.environ["EXPECTED_DAG_ID"])
print("DAGBAG=" + json.dumps({
    "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "upstream": {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks} if dag else {},
    "schedule": str(dag.schedule_interval) if dag else None,
}))
"""


def _airflow_env(home: pathlib.Path, data_root: pathlib.Path, output_dir: pathlib.Path, **overrides) -> dict:
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
        "HOME": str(home),
        # This checkout's packages, whatever the virtual environment's install points at.
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TAXI_DATA_ROOT": str(data_root),
        "TAXI_OUTPUT_DIR": str(output_dir),
        # A quick run that still learns: the sample thresholds of the end-to-end tests.
        "TAXI_TRAIN_STEPS": str(SAMPLE_OPTIONS.train_steps),
        "TAXI_EVAL_STEPS": str(SAMPLE_OPTIONS.eval_steps),
        "TAXI_BLESSING_THRESHOLDS": json.dumps(dataclasses.asdict(SAMPLE_OPTIONS.thresholds)),
        # 400-trip samples drift more than whole spans (tests/conftest.py's SAMPLE_OPTIONS).
        "TAXI_ON_DRIFT": SAMPLE_OPTIONS.drift.on_drift,
        "TAXI_SCHEDULE": "@weekly",
        "EXPECTED_DAG_ID": DAG_ID,
    }
    env.update(overrides)
    return env


def _run(command, env, timeout):
    result = subprocess.run(command, env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=timeout)
    return result


def _dagbag(env) -> dict:
    result = _run([sys.executable, "-c", DAGBAG_SCRIPT], env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("DAGBAG="))
    return json.loads(line[len("DAGBAG=") :])


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """An Airflow home with a migrated SQLite database, a dags folder and a small sample."""
    root = tmp_path_factory.mktemp("airflow")
    home = root / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "taxi_dag.py").write_text(DAG_FILE)
    data_root = sample_data_root(root / "data")
    # A deployment's data root holds the external tables beside the spans, as data/ does.
    shutil.copytree(DATA_ROOT / "external", data_root / "external")
    env = _airflow_env(home, data_root, root / "output")
    result = _run(["airflow", "db", "migrate"], env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"env": env, "home": home, "output_dir": root / "output"}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    return _dagbag(airflow_home["env"])


def test_dagbag_loads_the_dag_without_import_errors(dagbag):
    assert dagbag["import_errors"] == {}
    assert dagbag["dag_ids"] == [DAG_ID]
    assert dagbag["schedule"] == "@weekly"


def test_one_task_per_pipeline_node_with_the_pipelines_dependencies(dagbag):
    assert dagbag["upstream"] == _pipeline_upstream()


@pytest.mark.parametrize(
    "task, upstream",
    [
        (taxi_pipeline.STATISTICS_GEN, taxi_pipeline.EXAMPLE_GEN),
        (taxi_pipeline.TRANSFORM, taxi_pipeline.DATA_GATE),
        (taxi_pipeline.TRAINER, taxi_pipeline.TRANSFORM),
        (taxi_pipeline.EVALUATOR, taxi_pipeline.MODEL_RESOLVER),
        (taxi_pipeline.MODEL_GATE, taxi_pipeline.EVALUATOR),
        (taxi_pipeline.PUSHER, taxi_pipeline.MODEL_GATE),
    ],
)
def test_tasks_wait_for_the_steps_they_need(dagbag, task, upstream):
    assert upstream in dagbag["upstream"][task]


def test_a_missing_setting_is_an_import_error_naming_it(airflow_home):
    env = dict(airflow_home["env"])
    del env["TAXI_DATA_ROOT"]
    found = _dagbag(env)
    assert found["dag_ids"] == []
    (error,) = found["import_errors"].values()
    assert "TAXI_DATA_ROOT is not set" in error


def test_an_unreachable_metadata_database_is_an_import_error_naming_the_setting(airflow_home):
    # Port 1: nothing listens there, so no server is needed to see the refusal.
    found = _dagbag({**airflow_home["env"], "TAXI_METADATA_URL": "mysql://root@127.0.0.1:1/taxi_metadata"})
    assert found["dag_ids"] == []
    (error,) = found["import_errors"].values()
    assert "TAXI_METADATA_URL mysql://root@127.0.0.1:1/taxi_metadata: cannot open ML Metadata there: Can't connect" in error


def test_airflow_dags_test_runs_the_pipeline_and_pushes_a_model(airflow_home):
    env = airflow_home["env"]
    result = _run(["airflow", "dags", "test", DAG_ID, "2024-01-02"], env, timeout=540)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    with sqlite3.connect(airflow_home["home"] / "airflow.db") as database:
        states = dict(database.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)))
    assert states == {node_id: "success" for node_id in _pipeline_upstream()}, log[-5000:]
    serving_model_dir = airflow_home["output_dir"] / "serving_model"
    versions = [entry for entry in serving_model_dir.iterdir() if entry.name.isdigit()]
    assert len(versions) == 1, sorted(os.listdir(serving_model_dir))
    assert (versions[0] / "saved_model.pb").is_file()
    assert (airflow_home["output_dir"] / "metadata.db").is_file()


def _trigger_when_parsed(env, seconds=300.0) -> None:
    """`airflow dags trigger`, retried until the scheduler has parsed the dags folder."""
    deadline = time.monotonic() + seconds
    while True:
        result = _run(["airflow", "dags", "trigger", DAG_ID], env, timeout=120)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, (result.stdout + result.stderr)[-3000:]
        time.sleep(5)


def _dag_run_state(database_url: str):
    import psycopg2

    with psycopg2.connect(database_url.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT state FROM dag_run WHERE dag_id = %s", (DAG_ID,))
        states = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT task_id, state, start_date, end_date FROM task_instance WHERE dag_id = %s", (DAG_ID,))
        tasks = {task_id: (state, start, end) for task_id, state, start, end in cursor.fetchall()}
    return (states[0] if states else None), tasks


@pytest.mark.e2e
def test_deployed_airflow_runs_tasks_in_parallel_on_postgres_with_metadata_on_mariadb(
    postgres_database_url, mysql_metadata_url, tmp_path
):
    """Airflow as deployed: PostgreSQL as its database, the LocalExecutor under a real scheduler
    (independent tasks at the same time), ML Metadata in MariaDB; a triggered run pushes."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "taxi_dag.py").write_text(DAG_FILE)
    data_root = sample_data_root(tmp_path / "data")
    shutil.copytree(DATA_ROOT / "external", data_root / "external")
    output_dir = tmp_path / "output"
    env = _airflow_env(
        home, data_root, output_dir,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_database_url,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # A test does not wait for production's polling intervals.
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
        TAXI_SCHEDULE="none",
        TAXI_METADATA_URL=mysql_metadata_url,
    )
    result = _run(["airflow", "db", "migrate"], env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "scheduler.log", "w") as scheduler_log:
        # Its own process group: the scheduler's executor and worker processes stop with it.
        scheduler = subprocess.Popen(
            ["airflow", "scheduler"], env=env, cwd=home, stdout=scheduler_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _trigger_when_parsed(env)
        deadline = time.monotonic() + 1500
        state, tasks = _dag_run_state(postgres_database_url)
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(5)
            state, tasks = _dag_run_state(postgres_database_url)
    finally:
        os.killpg(scheduler.pid, signal.SIGTERM)
        try:
            scheduler.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(scheduler.pid, signal.SIGKILL)  # what is left of the group
        except ProcessLookupError:
            pass
        scheduler.wait()
    log = (tmp_path / "scheduler.log").read_text()[-5000:]
    assert state == "success", (state, {task: value[0] for task, value in tasks.items()}, log)
    assert {task: value[0] for task, value in tasks.items()} == {node_id: "success" for node_id in _pipeline_upstream()}
    # The LocalExecutor ran independent tasks at the same time (e.g. the drift and external
    # checks beside StatisticsGen), which the SequentialExecutor never does.
    spans_of = sorted((start, end, task) for task, (_, start, end) in tasks.items())
    overlapping = [(a[2], b[2]) for a, b in zip(spans_of, spans_of[1:]) if b[0] < a[1]]
    assert overlapping, spans_of
    versions = [entry.name for entry in (output_dir / "serving_model").iterdir() if entry.name.isdigit()]
    assert len(versions) == 1
    assert not (output_dir / "metadata.db").exists()
    from ml_metadata import metadata_store

    from pipeline.ops import metadata

    store = metadata_store.MetadataStore(metadata.parse_metadata_url(mysql_metadata_url).connection_config(str(output_dir), metadata.READ))
    pushed = [artifact.custom_properties["pushed_version"].string_value for artifact in store.get_artifacts_by_type("PushedModel")]
    assert pushed == versions
