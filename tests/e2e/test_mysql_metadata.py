"""ML Metadata on a real MySQL/MariaDB server: a whole pipeline run, the tools that read and
record lineage, and a second writer refused while the run writes.

Needs the server of `tests/conftest.py`'s `mysql_metadata_url` (the machines' MariaDB); skips,
saying why, without one.
"""
import json
import os
import subprocess
import sys
import time

import pytest
from ml_metadata import metadata_store

from pipeline.ops import metadata, writer_lock
from pipeline.ops.rollback import ROLLBACK_EXECUTION_TYPE
from tests.conftest import sample_data_root

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The sample run of tests/conftest.py (3 spans x 400 trips, the sample thresholds), with its
# ML Metadata where argv[3] says.
SAMPLE_RUN = """
import json, sys
from pipeline.ops import metadata
from pipeline.runners.local import LocalPaths, run_once
from tests.conftest import SAMPLE_OPTIONS
paths = LocalPaths(sys.argv[1], sys.argv[2], metadata.parse_metadata_url(sys.argv[3]))
result = run_once(paths, SAMPLE_OPTIONS, [])
summary = result.summary
print(json.dumps({"exit_code": result.exit_code, "error": result.error,
                  "pushed": summary.pushed_version if summary else None}))
"""


def _command(*args, environ=None, timeout=300):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout,
        env={**os.environ, **(environ or {})},
    )


def _wait_for_lock(output_dir, process, seconds=120.0):
    lock_path = os.path.join(output_dir, writer_lock.LOCK_FILE)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(lock_path) and f"pid {process.pid} " in open(lock_path).read():
            return
        time.sleep(0.2)
    raise AssertionError(f"the run (pid {process.pid}) never took the writer lock of {output_dir}")


@pytest.mark.slow
def test_wrong_server_user_or_database_is_refused_before_anything_runs(mysql_metadata_url, tmp_path, data_root):
    server = metadata.parse_metadata_url(mysql_metadata_url).mysql
    cases = [
        (f"mysql://{server.user}@{server.host}:1/{server.database}", "Can't connect to MySQL server"),
        (f"mysql://no_such_taxi_user@{server.host}:{server.port}/{server.database}", "Access denied for user 'no_such_taxi_user'"),
    ]
    for url, reason in cases:
        output_dir = tmp_path / f"out-{len(os.listdir(tmp_path))}"
        result = _command("run_local.py", "--data-root", str(data_root), "--output-dir", str(output_dir), "--metadata-url", url)
        assert result.returncode == 64, result.stderr[-2000:]
        assert f"error: --metadata-url {url}: cannot open ML Metadata there: {reason}" in result.stderr
        assert not output_dir.exists()
    # The environment variable is the same setting, named as such.
    result = _command("run_local.py", "--output-dir", str(tmp_path / "env"), environ={"TAXI_METADATA_URL": cases[1][0]})
    assert result.returncode == 64 and f"error: TAXI_METADATA_URL {cases[1][0]}: cannot open" in result.stderr
    # A tool that reads lineage needs the database to exist; a run would create it.
    missing = f"mysql://{server.user}@{server.host}:{server.port}/taxi_never_created"
    result = _command("-m", "pipeline", "lineage", "--output-dir", str(tmp_path / "none"), "--version", "1", "--metadata-url", missing)
    assert result.returncode != 0 and "Unknown database 'taxi_never_created'" in result.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_a_whole_run_on_mariadb_refuses_a_second_writer_and_its_lineage_is_read_back(mysql_metadata_url, tmp_path):
    data = sample_data_root(tmp_path / "data")
    output_dir = tmp_path / "output"
    run = subprocess.Popen(
        [sys.executable, "-c", SAMPLE_RUN, str(data), str(output_dir), mysql_metadata_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        _wait_for_lock(output_dir, run)
        # While the run writes: a second run, an accept and a housekeeping are refused at once.
        second = _command("run_local.py", "--data-root", str(data), "--output-dir", str(output_dir), "--metadata-url", mysql_metadata_url)
        accept = _command(
            "-m", "pipeline", "accept", "--data-root", str(data), "--output-dir", str(output_dir), "--span", "3",
            "--reason", "reviewed", "--metadata-url", mysql_metadata_url,
        )
        for refused in (second, accept):
            assert refused.returncode == writer_lock.EXIT_BUSY, refused.stderr[-2000:]
            assert f"{output_dir} is being written by pid {run.pid} " in refused.stderr
        stdout, stderr = run.communicate(timeout=1200)
    finally:
        if run.poll() is None:
            run.kill()
    outcome = json.loads(stdout.strip().splitlines()[-1])
    assert outcome["exit_code"] == 0, (outcome, stderr[-3000:])
    version = outcome["pushed"]
    assert version and (output_dir / "serving_model" / version / "saved_model.pb").exists()
    assert not (output_dir / "metadata.db").exists()  # the history is in the database only

    environ = {"TAXI_METADATA_URL": mysql_metadata_url}
    lineage = _command("-m", "pipeline", "lineage", "--output-dir", str(output_dir), "--json", environ=environ)
    assert lineage.returncode == 0, lineage.stderr[-2000:]
    traced = json.loads(lineage.stdout)
    assert traced["version"] == version and traced["blessed"] is True
    assert traced["data"]["spans"] == [1, 2, 3]

    rollback = _command("-m", "pipeline", "rollback", "--output-dir", str(output_dir), "--to", version, environ=environ)
    assert rollback.returncode == 0, rollback.stderr[-2000:]
    store = metadata_store.MetadataStore(metadata.parse_metadata_url(mysql_metadata_url).connection_config(str(output_dir), metadata.READ))
    [record] = store.get_executions_by_type(ROLLBACK_EXECUTION_TYPE)
    assert record.properties["to_version"].string_value == version

    report = _command("-m", "pipeline", "report", "--output-dir", str(output_dir), environ=environ)
    assert report.returncode == 0 and f"MySQL database {metadata.parse_metadata_url(mysql_metadata_url).mysql.url}" in open(report.stdout.strip()).read()
    kept = _command("-m", "pipeline", "housekeeping", "--output-dir", str(output_dir), "--dry-run", environ=environ)
    assert kept.returncode == 0 and "would remove" in kept.stdout

    # A refused span accepted on the record in MariaDB, then trained on; retention on MySQL.
    from pipeline.runners.local import LocalPaths, run_once
    from pipeline.validation import acceptance
    from tests.e2e.test_accept import STOPPING
    from tests.integration.test_drift import _changed_copy, _scaled_fares

    _changed_copy(data / "span-1" / "data.csv", data / "span-4", _scaled_fares(2.0))
    setting = metadata.parse_metadata_url(mysql_metadata_url)
    paths = LocalPaths(str(data), str(output_dir), setting)
    refused = run_once(paths, STOPPING, [])
    assert refused.exit_code == 2 and "span 4 drifted" in refused.error, refused.error
    accepted = _command(
        "-m", "pipeline", "accept", "--data-root", str(data), "--output-dir", str(output_dir), "--span", "4",
        "--reason", "reviewed: fares doubled on purpose", environ=environ,
    )
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    trained = run_once(paths, STOPPING, [])
    assert trained.exit_code == 0, trained.error
    assert [record["span"] for record in trained.summary.acceptances] == [4]
    [recorded] = acceptance.for_spans(setting.connection_config(str(output_dir), metadata.READ), [4])
    assert recorded.reason == "reviewed: fares doubled on purpose"
    kept = _command("-m", "pipeline", "housekeeping", "--output-dir", str(output_dir), "--keep-versions", "1", "--keep-blessed", "1", environ=environ)
    assert kept.returncode == 0, kept.stderr[-2000:]
    serving = sorted(name for name in os.listdir(output_dir / "serving_model") if name.isdigit())[-1]
    lineage = _command("-m", "pipeline", "lineage", "--output-dir", str(output_dir), "--version", serving, environ=environ)
    assert lineage.returncode == 0, lineage.stderr[-2000:]

    # The same output dir without the setting would start a second, SQLite history: refused.
    sqlite = _command("run_local.py", "--data-root", str(data), "--output-dir", str(output_dir))
    assert sqlite.returncode == 64
    assert f"keeps its ML Metadata in {metadata.parse_metadata_url(mysql_metadata_url).mysql.url}, not in sqlite" in sqlite.stderr
