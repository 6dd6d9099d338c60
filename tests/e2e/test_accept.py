"""A refused span, accepted on the record with `python -m pipeline.accept`, then trained on:
real runs with LocalDagRunner, the real command line, ML Metadata on SQLite."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from pipeline import component_ids, configs
from pipeline.runners.code_fingerprint import project_fingerprint
from tests.conftest import REPO_ROOT, SAMPLE_OPTIONS, sample_data_root
from tests.integration.test_drift import _changed_copy, _scaled_fares

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# The sample's options with the default drift policy: a drifted span stops the run.
STOPPING = dataclasses.replace(SAMPLE_OPTIONS, drift=configs.DriftConfig())


def _run(data_root, output_dir, options=STOPPING):
    from pipeline.runners.local import LocalPaths, run_once

    return run_once(LocalPaths(str(data_root), str(output_dir)), options, [])


def _accept(data_root, output_dir, span, reason="reviewed: fares rose with the new meter rates"):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.ops.accept", "--data-root", str(data_root), "--output-dir", str(output_dir),
         "--span", str(span), "--reason", reason],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )


def _versions(output_dir):
    folder = output_dir / "serving_model"
    return sorted(name for name in os.listdir(folder) if name.isdigit()) if folder.exists() else []


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Spans 1-2 of the sample and a span 3 whose fares are twice as high: refused for drift."""
    data_root = sample_data_root(tmp_path_factory.mktemp("data"), spans=(1, 2, 3))
    source = data_root / "span-3" / "data.csv"
    os.rename(source, data_root / "original.csv")
    os.rmdir(data_root / "span-3")
    _changed_copy(data_root / "original.csv", data_root / "span-3", _scaled_fares(2.0))
    os.remove(data_root / "original.csv")
    output_dir = tmp_path_factory.mktemp("output")
    result = _run(data_root, output_dir)
    return {"data_root": data_root, "output_dir": output_dir, "result": result}


def test_a_drifted_span_is_refused_with_the_exact_command_to_accept_it(refused):
    result = refused["result"]
    assert result.exit_code == 2, result.error
    assert "span 3 drifted from spans 1,2: fare Jensen-Shannon" in result.error
    command = f"python -m pipeline.accept --data-root {refused['data_root']} --output-dir {refused['output_dir']} --span 3"
    assert command in result.error
    assert _versions(refused["output_dir"]) == []


def test_only_the_refused_span_can_be_accepted_and_only_with_a_reason(refused):
    wrong_span = _accept(refused["data_root"], refused["output_dir"], 2)
    assert wrong_span.returncode == 2 and "the newest run checked span 3, not span 2" in wrong_span.stderr
    no_reason = _accept(refused["data_root"], refused["output_dir"], 3, reason="  ")
    assert no_reason.returncode == 2 and "--reason is empty" in no_reason.stderr


def test_accepted_span_trains_and_pushes_and_a_changed_file_is_refused_again(refused):
    data_root, output_dir = refused["data_root"], refused["output_dir"]
    accepted = _accept(data_root, output_dir, 3)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "span 3 accepted on record" in accepted.stdout and "fare Jensen-Shannon" in accepted.stdout
    assert f"Next: python run_local.py --data-root {data_root} --output-dir {output_dir}" in accepted.stdout

    _assert_the_airflow_dag_honours_it(data_root, output_dir)

    trained = _run(data_root, output_dir)
    assert trained.exit_code == 0, trained.error
    assert trained.summary.acceptances and trained.summary.acceptances[0]["span"] == 3
    assert any("fare Jensen-Shannon" in line for line in trained.summary.accepted)
    assert trained.summary.blessed and len(_versions(output_dir)) == 1

    # The acceptance is on the record of what serves, and in the run report.
    lineage = subprocess.run(
        [sys.executable, "-m", "pipeline.ops.lineage", "--output-dir", str(output_dir), "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert lineage.returncode == 0, lineage.stderr
    (record,) = json.loads(lineage.stdout)["data"]["acceptances"]
    assert record["span"] == 3 and record["reason"] == "reviewed: fares rose with the new meter rates"
    with open(trained.report_path, encoding="utf-8") as report_file:
        report = report_file.read()
    assert "accepted on record" in report and "reviewed: fares rose with the new meter rates" in report

    # One more trip in span 3: the acceptance no longer applies, the span is refused again.
    with open(data_root / "span-3" / "data.csv") as span_file:
        lines = span_file.readlines()
    with open(data_root / "span-3" / "data.csv", "a") as span_file:
        span_file.write(lines[-1])
    again = _run(data_root, output_dir)
    assert again.exit_code == 2, again.error
    assert "span 3 drifted" in again.error
    assert len(_versions(output_dir)) == 1


# Run where Airflow parses the DAG: its own process, so Airflow's logging set-up stays out of this one.
GATE_SCRIPT = """
from pipeline.runners.airflow_dag import DAG
from pipeline.component_ids import DATA_GATE
print("GATE=" + DAG.get_task(DATA_GATE).op_kwargs["exec_properties"]["accepted_spans"])
"""


def _assert_the_airflow_dag_honours_it(data_root, output_dir):
    """The DAG Airflow parses from the same data root and output dir gives its DataGate task the
    acceptance, as run_local.py gives it to the LocalDagRunner."""
    from modules import features
    from pipeline.validation.acceptance import acceptances_from_json
    from pipeline.validation.table_sources import shipped_table_path
    from tests.integration.test_airflow_dag import _airflow_env

    home = output_dir.parent / "airflow_home"
    home.mkdir(exist_ok=True)
    # The sample data root has no external/ folder: name the shipped table.
    env = _airflow_env(
        home, data_root, output_dir,
        TAXI_EXTERNAL_TABLES=f"{features.HOLIDAY_TABLE}={shipped_table_path(features.HOLIDAY_TABLE)}",
    )
    result = subprocess.run([sys.executable, "-c", GATE_SCRIPT], env=env, cwd=home, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("GATE="))
    (accepted,) = acceptances_from_json(line[len("GATE="):])
    assert accepted.span == 3 and accepted.reason == "reviewed: fares rose with the new meter rates"


def test_a_change_of_project_code_reruns_the_project_executors_on_unchanged_data(refused, tmp_path):
    """Same data, same options, another code fingerprint: nothing may come from the cache."""
    import shutil

    from tfx.orchestration import metadata


    output_dir = tmp_path / "output"
    shutil.copytree(refused["output_dir"], output_dir)
    changed = dataclasses.replace(STOPPING, code_fingerprint=project_fingerprint()[::-1])
    _run(refused["data_root"], output_dir, changed)
    connection = metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))
    with metadata.Metadata(connection) as handler:
        store = handler.store
        for component in (component_ids.EXAMPLE_GEN, component_ids.DRIFT_CHECK, component_ids.EXTERNAL_TABLE_GEN):
            context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component}")
            newest = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
            assert newest.last_known_state != newest.CACHED, component
