"""External tables in whole pipeline runs: a changed table is imported again and retrains,
lineage names its fingerprint, and a malformed table or trips outside it are refused before
training."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from modules import features
from pipeline import component_ids, configs
from pipeline.components.artifacts import EXTERNAL_TABLES_KEY, TABLES_PROPERTY
from pipeline.ops import lineage
from pipeline.validation.table_sources import resolve_sources, shipped_table_path
from tests.conftest import REPO_ROOT, run_small_pipeline, sample_data_root, write_holiday_table

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HOLIDAYS = features.HOLIDAY_TABLE


@pytest.fixture
def own_copy(small_pipeline_run, tmp_path):
    """The shared run's output dir copied, so the test can add runs to it."""
    output_dir = tmp_path / "output"
    shutil.copytree(small_pipeline_run["output_dir"], output_dir)
    return {**small_pipeline_run, "output_dir": output_dir}


def _newest_execution(store, component):
    context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component}")
    return max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)


def _input(store, execution, key):
    for event in store.get_events_by_execution_ids([execution.id]):
        if event.type == event.INPUT and event.path.steps[0].key == key:
            return store.get_artifacts_by_id([event.artifact_id])[0]
    raise AssertionError(f"execution {execution.id} has no input {key!r}")


def _connection(output_dir):
    from tfx import v1 as tfx

    return tfx.orchestration.metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))


def _serving_files(output_dir):
    serving_dir = output_dir / "serving_model"
    return {path: os.path.getmtime(serving_dir / path) for path in os.listdir(serving_dir)}


def test_served_lineage_names_the_table_file_and_fingerprint(small_pipeline_run):
    served = lineage.trace_version(
        str(small_pipeline_run["output_dir"]), lineage.latest_serving_version(str(small_pipeline_run["serving_model_dir"]))
    )
    (source,) = resolve_sources()
    with open(shipped_table_path(HOLIDAYS), "rb") as shipped:
        sha256 = hashlib.sha256(shipped.read()).hexdigest()
    record = served.external_tables.records[HOLIDAYS]
    assert (record["source_uri"], record["sha256"]) == (source.uri, sha256)
    assert (record["first_key"], record["last_key"]) == ("2012-01-01", "2030-12-31")
    assert served.external_tables.tables.id in served.artifact_ids
    assert f"external    {HOLIDAYS}: {source.uri} sha256 {sha256}" in lineage.format_text(served)


def test_a_changed_table_is_imported_again_and_retrains(own_copy, tmp_path):
    from tfx.orchestration import metadata

    changed = tmp_path / "holidays-v2.csv"
    text = open(shipped_table_path(HOLIDAYS)).read()
    # Friday 2014-05-16 becomes a holiday: a valid table with other content.
    changed.write_text(text.replace("2014-05-16,4,0,0,\n", "2014-05-16,4,1,0,Test Day\n"))
    assert changed.read_text() != text
    (source,) = resolve_sources({HOLIDAYS: str(changed)})
    run_small_pipeline(own_copy["data_root"], own_copy["output_dir"], [1, 2, 3], external_tables=(source,))
    with metadata.Metadata(_connection(own_copy["output_dir"])) as handler:
        store = handler.store
        for component in (component_ids.EXTERNAL_TABLE_GEN, component_ids.TRANSFORM, component_ids.TRAINER):
            newest = _newest_execution(store, component)
            assert newest.last_known_state == newest.COMPLETE, component  # not answered from the cache
        transform = _newest_execution(store, component_ids.TRANSFORM)
        tables = _input(store, transform, EXTERNAL_TABLES_KEY)
        record = json.loads(tables.custom_properties[TABLES_PROPERTY].string_value)[HOLIDAYS]
        assert record == {**record, "source_uri": str(changed), "sha256": source.sha256}
        # The new model was trained on the graph of that Transform run.
        trainer = _newest_execution(store, component_ids.TRAINER)
        graph = _input(store, trainer, "transform_graph")
        producer = [e.execution_id for e in store.get_events_by_artifact_ids([graph.id]) if e.type == e.OUTPUT]
        assert producer == [transform.id]


def _run_local(data_root, output_dir, *extra):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_local.py"), "--data-root", str(data_root),
         "--output-dir", str(output_dir), "--train-steps", "20", *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_a_malformed_table_is_refused_before_training(own_copy, tmp_path):
    table = write_holiday_table(
        tmp_path / "bad.csv",
        ["2014-05-16,4,0,0,", "2014-05-16,4,0,0,", "2014-05-17,5,yes,0,"],
    )
    before = _serving_files(own_copy["output_dir"])
    result = _run_local(own_copy["data_root"], own_copy["output_dir"], "--external-table", f"{HOLIDAYS}={table}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DATA REFUSED" in result.stderr
    assert "line 3: duplicate key '2014-05-16' in column 'date' (first on line 2)" in result.stderr
    assert "line 4: column 'is_holiday': 'yes' is not an integer" in result.stderr
    assert _serving_files(own_copy["output_dir"]) == before
    from tfx.orchestration import metadata

    with metadata.Metadata(_connection(own_copy["output_dir"])) as handler:
        transform = _newest_execution(handler.store, component_ids.TRANSFORM)
        gen = _newest_execution(handler.store, component_ids.EXTERNAL_TABLE_GEN)
    assert gen.last_known_state == gen.FAILED and transform.id < gen.id  # Transform did not run again


def test_trips_outside_the_table_are_refused_before_training(tmp_path):
    # A table of days 1-28 of each month of 2013 only, and spans of 2013 (span 1, partly
    # covered) and 2014 (span 2, not covered at all) trips.
    days = [f"2013-{month:02d}-{day:02d},0,0,0," for month in range(1, 13) for day in range(1, 29)]
    table = write_holiday_table(tmp_path / "2013.csv", days)
    data_root = sample_data_root(tmp_path / "data", spans=(1, 2), rows_per_span=200)
    output_dir = tmp_path / "out"
    result = _run_local(data_root, output_dir, "--external-table", f"{HOLIDAYS}={table}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the columns joined from external tables do not match their schema" in result.stderr
    assert "span 2: 200 of 200 trips have no row in external table 'us_il_holidays' (it covers 2013-01-01 .. 2013-12-28" in result.stderr
    assert not (output_dir / "serving_model").exists()
