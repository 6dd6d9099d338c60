"""ConcurrentDagRunner on real TFX Python-function components, ML Metadata on SQLite: independent
nodes run at the same time, a node waits for every node it reads, a failure stops what depends
on it, and a second run is answered from TFX's cache as LocalDagRunner's would be."""
import json
import os
import pathlib
import time

import pytest
from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline.runners.concurrent_dag import ConcurrentDagRunner

# Each side waits this long at most for the other to start; run one after the other, the first
# would wait the whole time and fail.
MEETING_SECONDS = 20.0


def _note(folder: str, name: str, event: str) -> None:
    with open(os.path.join(folder, f"{name}.{event}"), "w") as handle:
        handle.write(str(time.time()))


@component
def Source(folder: tfx.dsl.components.Parameter[str], data: tfx.dsl.components.OutputArtifact[standard_artifacts.String]):
    _note(folder, "source", "end")
    data.value = "trips"


@component
def Branch(
    folder: tfx.dsl.components.Parameter[str],
    name: tfx.dsl.components.Parameter[str],
    partner: tfx.dsl.components.Parameter[str],
    fail: tfx.dsl.components.Parameter[int],
    data: tfx.dsl.components.InputArtifact[standard_artifacts.String],
    result: tfx.dsl.components.OutputArtifact[standard_artifacts.String],
):
    """Waits until `partner` has started too (when `partner` is set), then writes its name."""
    _note(folder, name, "start")
    if partner:
        deadline = time.time() + MEETING_SECONDS
        while not os.path.exists(os.path.join(folder, f"{partner}.start")):
            if time.time() > deadline:
                raise RuntimeError(f"{name}: {partner} did not start while {name} ran")
            time.sleep(0.05)
    if fail:
        _note(folder, name, "end")
        raise ValueError(f"{name} refuses its input")
    result.value = f"{name}({data.value})"
    _note(folder, name, "end")


@component
def Join(
    folder: tfx.dsl.components.Parameter[str],
    left: tfx.dsl.components.InputArtifact[standard_artifacts.String],
    right: tfx.dsl.components.InputArtifact[standard_artifacts.String],
    joined: tfx.dsl.components.OutputArtifact[standard_artifacts.String],
):
    _note(folder, "join", "start")
    joined.value = json.dumps([left.value, right.value])


def _pipeline(root: pathlib.Path, folder: pathlib.Path, fail_left: bool = False, meet: bool = True):
    source = Source(folder=str(folder))
    left = Branch(folder=str(folder), name="left", partner="right" if meet else "", fail=int(fail_left), data=source.outputs["data"]).with_id("left")
    right = Branch(folder=str(folder), name="right", partner="left" if meet else "", fail=0, data=source.outputs["data"]).with_id("right")
    join = Join(folder=str(folder), left=left.outputs["result"], right=right.outputs["result"])
    return tfx.dsl.Pipeline(
        pipeline_name="concurrent_dag_test",
        pipeline_root=str(root / "pipeline_root"),
        components=[source, left, right, join],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.db")),
    )


def _time(folder: pathlib.Path, name: str, event: str) -> float:
    return float((folder / f"{name}.{event}").read_text())


def _executions(root: pathlib.Path):
    from ml_metadata.metadata_store import metadata_store

    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.db")))
    types = {item.id: item.name for item in store.get_execution_types()}
    return [(types[item.type_id].rsplit(".", 1)[-1], item.last_known_state) for item in store.get_executions()]


def test_independent_nodes_run_together_and_the_join_waits_for_both(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    ConcurrentDagRunner(max_workers=2).run(_pipeline(tmp_path, folder))
    # Each branch waited for the other to start: they ran at the same time.
    assert _time(folder, "left", "start") < _time(folder, "right", "end")
    assert _time(folder, "right", "start") < _time(folder, "left", "end")
    assert _time(folder, "source", "end") <= min(_time(folder, "left", "start"), _time(folder, "right", "start"))
    assert _time(folder, "join", "start") >= max(_time(folder, "left", "end"), _time(folder, "right", "end"))
    joined = list((tmp_path / "pipeline_root" / "Join" / "joined").rglob("value"))
    assert [json.loads(path.read_text()) for path in joined] == [["left(trips)", "right(trips)"]]


def test_one_worker_runs_the_nodes_one_at_a_time(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    ConcurrentDagRunner(max_workers=1).run(_pipeline(tmp_path, folder, meet=False))
    starts = sorted((_time(folder, name, "start"), name) for name in ("left", "right"))
    (first_start, first), (second_start, _) = starts
    assert _time(folder, first, "end") <= second_start


def test_a_failure_stops_what_depends_on_it_and_is_raised(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    with pytest.raises(ValueError, match="left refuses its input"):
        ConcurrentDagRunner(max_workers=2).run(_pipeline(tmp_path, folder, fail_left=True))
    # The branch running beside the failed one finished; the join never started.
    assert (folder / "right.end").exists()
    assert not (folder / "join.start").exists()
    states = dict(_executions(tmp_path))
    assert "Join" not in states


def test_a_second_run_is_answered_from_the_cache(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    folder = tmp_path / "notes"
    folder.mkdir()
    ConcurrentDagRunner(max_workers=2).run(_pipeline(tmp_path, folder))
    for note in folder.iterdir():
        note.unlink()
    ConcurrentDagRunner(max_workers=2).run(_pipeline(tmp_path, folder))
    assert list(folder.iterdir()) == []
    cached = [name for name, state in _executions(tmp_path) if state == metadata_store_pb2.Execution.CACHED]
    assert sorted(cached) == ["Branch", "Branch", "Join", "Source"]


def test_max_workers_must_be_positive():
    with pytest.raises(ValueError, match="max_workers must be at least 1, got 0"):
        ConcurrentDagRunner(max_workers=0)


def test_the_progress_lines_follow_each_thread():
    import io
    import logging

    from pipeline.runners.progress import ProgressHandler

    def record(message, thread):
        item = logging.LogRecord("absl", logging.INFO, __file__, 1, message, None, None)
        item.thread = thread
        return item

    stream = io.StringIO()
    handler = ProgressHandler(stream=stream)
    # Two components interleaved: one answered from the cache, one run.
    for message, thread in [
        ("Component StatisticsGen is running.", 1),
        ("Component SpanDriftCheck is running.", 2),
        ("A cached execution 7 is used.", 1),
        ("Component SpanDriftCheck is finished.", 2),
        ("Component StatisticsGen is finished.", 1),
    ]:
        handler.emit(record(message, thread))
    assert [(name, state) for name, state, _ in handler.timings] == [("SpanDriftCheck", "ran"), ("StatisticsGen", "cached")]
