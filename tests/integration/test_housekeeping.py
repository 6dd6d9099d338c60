"""Housekeeping on copies of the shared small run with a second, newer pushed version."""
import json
import os
import pathlib
import shutil
import time

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import component_ids, configs, spans
from pipeline.components.artifacts import DRIFT_REPORT_FILE, SPAN_EXAMPLES_PROPERTY, SPAN_STATISTICS_PROPERTY
from pipeline.ops import housekeeping, lineage, run_summary, writer_lock
from tests.conftest import ANY_MODEL_THRESHOLDS, run_small_pipeline

pytestmark = pytest.mark.slow

# Bless whatever the second run trains: these tests are about what is kept, not about quality.
ANY_MODEL = ANY_MODEL_THRESHOLDS


@pytest.fixture(scope="module")
def two_versions(small_pipeline_run, tmp_path_factory):
    """A copy of the shared run's output dir plus a second run that trains (20 steps) and pushes
    a newer version; the copy's ML Metadata still names the original dir's folders."""
    output_dir = tmp_path_factory.mktemp("housekeeping") / "output"
    shutil.copytree(small_pipeline_run["output_dir"], output_dir)
    summary, _ = run_small_pipeline(small_pipeline_run["data_root"], output_dir, [1, 2, 3], train_steps=20, thresholds=ANY_MODEL)
    assert summary.pushed_version, "the second run must push a version for these tests"
    versions = lineage.serving_versions(str(output_dir / "serving_model"))
    assert len(versions) >= 2
    return {"output_dir": output_dir, "versions": versions, "original": small_pipeline_run["output_dir"]}


@pytest.fixture
def copy_of_two_versions(two_versions, tmp_path):
    target = tmp_path / "output"
    shutil.copytree(two_versions["output_dir"], target)
    return target


def _store(output_dir):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(output_dir / "metadata.db")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def test_dry_run_lists_exactly_what_the_real_run_removes(copy_of_two_versions, two_versions):
    output_dir = copy_of_two_versions
    listed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1, dry_run=True)
    assert listed, "the older run's outputs and version should be listed"
    assert all(removal.path.startswith(str(output_dir)) for removal in listed)
    old_version = output_dir / "serving_model" / two_versions["versions"][0]
    assert str(old_version) in [r.path for r in listed if r.kind == housekeeping.SERVING_VERSION]
    assert all((output_dir / removal.path).exists() for removal in listed), "a dry run removes nothing"

    removed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)

    assert removed == listed
    assert not any((output_dir / removal.path).exists() for removal in removed)
    states = {a.id: a.state for a in _store(output_dir).get_artifacts_by_id([r.artifact_id for r in removed if r.kind == housekeeping.ARTIFACT])}
    assert set(states.values()) == {metadata_store_pb2.Artifact.DELETED}
    assert housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1, dry_run=True) == []
    # The copy's metadata names the original dir's folders: those must be untouched.
    for removal in removed:
        if removal.kind == housekeeping.ARTIFACT:
            original = two_versions["original"] / removal.path[len(str(output_dir)) + 1:]
            assert original.exists(), f"housekeeping of a copy removed {original} from the original"


def test_retention_never_removes_the_serving_versions_lineage(copy_of_two_versions, two_versions):
    output_dir = copy_of_two_versions
    newest = two_versions["versions"][-1]
    before = lineage.trace_version(str(output_dir), newest)

    housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)

    after = lineage.trace_version(str(output_dir), newest)
    artifacts = _store(output_dir).get_artifacts_by_id(before.artifact_ids)
    assert {metadata_store_pb2.Artifact.State.Name(a.state) for a in artifacts} == {"LIVE"}
    for artifact in artifacts:
        if artifact.uri:
            # The copy's own folder (component/output/execution id), not the original's.
            assert (output_dir / "pipeline_root").joinpath(*pathlib.PurePath(artifact.uri).parts[-3:]).exists(), artifact.uri
    assert (output_dir / "serving_model" / newest).is_dir()
    assert after.evaluation.metrics == before.evaluation.metrics, "the evaluation behind the served model stays readable"
    assert after.evaluation.baseline_model.id == before.evaluation.baseline_model.id
    assert [f.sha256 for f in after.data.files] == [f.sha256 for f in before.data.files]


def test_keeping_more_versions_keeps_their_lineage(copy_of_two_versions, two_versions):
    output_dir = copy_of_two_versions
    removed = housekeeping.housekeep(str(output_dir), keep_versions=2, keep_blessed=1, dry_run=True)
    protected = set()
    for version in two_versions["versions"][-2:]:
        protected |= set(lineage.trace_version(str(output_dir), version).artifact_ids)
    assert not protected & {r.artifact_id for r in removed if r.kind == housekeeping.ARTIFACT}
    assert not [r for r in removed if r.kind == housekeeping.SERVING_VERSION]


def test_span_statistics_no_kept_artifact_records_are_removed(copy_of_two_versions):
    output_dir = copy_of_two_versions
    folder = output_dir / "pipeline_root" / configs.SPAN_STATISTICS_FOLDER
    store = _store(output_dir)
    statistics = run_summary.latest_node_outputs(store, configs.PIPELINE_NAME, component_ids.STATISTICS_GEN, 0)["statistics"][0]
    external = run_summary.latest_node_outputs(store, configs.PIPELINE_NAME, component_ids.EXTERNAL_FEATURE_CHECK, 0)["report"][0]
    in_use = set()
    for artifact in (statistics, external):
        recorded = json.loads(artifact.custom_properties[SPAN_STATISTICS_PROPERTY].string_value)
        keys = {f"{entry['key']}{configs.SPAN_STATISTICS_SUFFIX}" for by_part in recorded.values() for entry in by_part.values()}
        assert keys and keys <= set(os.listdir(folder))
        in_use |= keys
    # Another code version's statistics, and the temporary file of a write that stopped.
    stale = folder / f"{'0' * 64}{configs.SPAN_STATISTICS_SUFFIX}"
    stale.write_bytes(b"statistics of other code")
    leftover = folder / f"{sorted(in_use)[0]}.tmp-0123"
    leftover.write_bytes(b"half a file")

    listed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1, dry_run=True)
    removed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)

    assert removed == listed
    assert sorted(r.path for r in removed if r.kind == housekeeping.SPAN_STATISTICS) == sorted([str(leftover), str(stale)])
    assert set(os.listdir(folder)) == in_use  # what the newest run merged or joined stays, for the next run to reuse
    assert not [r for r in housekeeping.housekeep(str(output_dir), dry_run=True) if r.kind == housekeeping.SPAN_STATISTICS]


def test_span_examples_no_kept_examples_record_are_removed_and_kept_examples_stay_readable(copy_of_two_versions):
    output_dir = copy_of_two_versions
    folder = output_dir / "pipeline_root" / configs.SPAN_EXAMPLES_FOLDER
    store = _store(output_dir)
    examples = run_summary.latest_node_outputs(store, configs.PIPELINE_NAME, component_ids.EXAMPLE_GEN, 0)["examples"][0]
    recorded = json.loads(examples.custom_properties[SPAN_EXAMPLES_PROPERTY].string_value)
    in_use = {entry["key"] for by_split in recorded.values() for entry in by_split.values()}
    assert in_use and in_use <= set(os.listdir(folder))
    # Another code version's entry, with a file in it.
    stale = folder / ("0" * 64) / f"Split-{configs.TRAIN_SPLIT}"
    stale.mkdir(parents=True)
    (stale / "data_tfrecord-00000-000000000000.gz").write_bytes(b"examples of other code")
    before = {path.name: path.read_bytes() for path in sorted((pathlib.Path(examples.uri) / f"Split-{configs.TRAIN_SPLIT}").iterdir())}
    # Transform's analyzer cache (kept for spans of 8 MiB or more; these are smaller): a
    # dataset of a kept span, named by TFT after the entry's folder, and one of the stale entry's.
    cache = output_dir / "pipeline_root" / configs.TRANSFORM_CACHE_FOLDER / "tft-version"
    cached = cache / f"root-SpanExamples-{sorted(in_use)[0]}-Split-train-STAR-{'1' * 64}"
    stale_cache = cache / f"root-SpanExamples-{'0' * 64}-Split-train-STAR-{'1' * 64}"
    for dataset in (cached, stale_cache):
        dataset.mkdir(parents=True)
        (dataset / "MANIFEST").write_bytes(b"analyzer cache")

    listed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1, dry_run=True)
    removed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)

    assert removed == listed
    assert [r.path for r in removed if r.kind == housekeeping.SPAN_EXAMPLES] == [str(folder / ("0" * 64)), str(stale_cache)]
    assert set(os.listdir(folder)) == in_use
    assert list(cache.iterdir()) == [cached]
    # The newest run's examples are whole, whatever else went.
    after = {path.name: path.read_bytes() for path in sorted((pathlib.Path(examples.uri) / f"Split-{configs.TRAIN_SPLIT}").iterdir())}
    assert after == before and before


def test_kept_hashes_of_span_files_since_changed_or_removed_are_removed(copy_of_two_versions, small_pipeline_run, tmp_path):
    output_dir = copy_of_two_versions
    hashes_dir = output_dir / "pipeline_root" / configs.SOURCE_HASHES_FOLDER
    # The runs' span files, written minutes ago: their hashes are kept (or were already).
    span_files = sorted(pathlib.Path(small_pipeline_run["data_root"]).rglob("*.csv"))
    assert len(span_files) == 3
    for path in span_files:
        spans.kept_file_sha256(str(path), str(hashes_dir))
    in_use = sorted(os.listdir(hashes_dir))
    assert len(in_use) == 3
    # A span file hashed and then removed.
    gone = tmp_path / "gone.csv"
    gone.write_text("trips\n")
    os.utime(gone, (time.time() - 3600,) * 2)
    spans.kept_file_sha256(str(gone), str(hashes_dir))
    stale = sorted(set(os.listdir(hashes_dir)) - set(in_use))
    os.remove(gone)

    listed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1, dry_run=True)
    removed = housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)

    assert removed == listed
    assert [r.path for r in removed if r.kind == housekeeping.SOURCE_HASH] == [str(hashes_dir / name) for name in stale]
    assert sorted(os.listdir(hashes_dir)) == in_use


def test_an_unreadable_drift_report_stops_housekeeping_before_it_removes_anything(copy_of_two_versions):
    output_dir = copy_of_two_versions
    drift = run_summary.latest_node_outputs(_store(output_dir), configs.PIPELINE_NAME, component_ids.DRIFT_CHECK, 0)["drift_report"][0]
    report = pathlib.Path(lineage.local_artifact_path(drift.uri, str(output_dir / "pipeline_root"))) / DRIFT_REPORT_FILE
    assert str(report).startswith(str(output_dir))  # the copy's, never the original's
    report.write_text("{not json")
    lock = output_dir / writer_lock.LOCK_FILE  # housekeeping takes the writer lock first
    before = sorted(str(path) for path in output_dir.rglob("*") if path != lock)
    with pytest.raises(housekeeping.HousekeepingError, match="cannot read the drift report .* to tell which span statistics it uses"):
        housekeeping.housekeep(str(output_dir), keep_versions=1, keep_blessed=1)
    assert sorted(str(path) for path in output_dir.rglob("*") if path != lock) == before


def test_command_line_dry_run_prints_the_list(copy_of_two_versions, capsys):
    argv = ["--output-dir", str(copy_of_two_versions), "--keep-versions", "1", "--keep-blessed", "1", "--dry-run"]
    assert housekeeping.main(argv) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "serving version" in out


@pytest.mark.parametrize(
    "keep_versions, keep_blessed, message",
    [(0, 1, "--keep-versions must be at least 1"), (1, 0, "--keep-blessed must be at least 1")],
)
def test_a_policy_that_would_remove_what_serves_is_refused(tmp_path, keep_versions, keep_blessed, message):
    with pytest.raises(housekeeping.HousekeepingError, match=message):
        housekeeping.plan(str(tmp_path), keep_versions=keep_versions, keep_blessed=keep_blessed)


def test_missing_metadata_is_named(tmp_path, capsys):
    assert housekeeping.main(["--output-dir", str(tmp_path), "--dry-run"]) == 1
    assert f"no ML Metadata file at {tmp_path / 'metadata.db'}" in capsys.readouterr().err
