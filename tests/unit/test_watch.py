"""The watcher's trigger rule: only complete spans, each handled once, never across a gap."""
from pipeline import configs, spans
from pipeline.runners.local import LocalPaths, RunResult
from pipeline.runners.watch import pending_span, watch_once


def _span(root, number, complete=True):
    folder = root / f"span-{number}"
    folder.mkdir()
    (folder / "data.csv").write_text("a\n1\n")
    if complete:
        (folder / configs.SPAN_COMPLETE_MARKER).write_text("")


def test_half_written_span_is_not_picked_up(tmp_path):
    _span(tmp_path, 1)
    _span(tmp_path, 2, complete=False)
    assert spans.discover_spans(str(tmp_path), complete_only=True) == [1]
    assert pending_span(str(tmp_path), handled=[]) == 1
    assert pending_span(str(tmp_path), handled=[1]) is None


def test_a_complete_span_after_an_incomplete_one_waits(tmp_path):
    _span(tmp_path, 1)
    _span(tmp_path, 2, complete=False)
    _span(tmp_path, 3)
    assert spans.discover_spans(str(tmp_path), complete_only=True) == [1]


def test_nothing_complete_means_nothing_pending(tmp_path):
    _span(tmp_path, 1, complete=False)
    assert pending_span(str(tmp_path), handled=[]) is None


def test_each_new_span_triggers_exactly_one_run(tmp_path):
    data_root, output_dir = tmp_path / "data", tmp_path / "out"
    data_root.mkdir()
    output_dir.mkdir()
    paths = LocalPaths(str(data_root), str(output_dir))
    runs = []

    def run():
        runs.append(spans.discover_spans(str(data_root), complete_only=True))
        return RunResult(0, runs[-1], None, [], 0.0)

    _span(data_root, 1)
    _span(data_root, 2, complete=False)
    assert watch_once(paths, run) is not None
    assert watch_once(paths, run) is None  # nothing new: no second run
    (data_root / "span-2" / configs.SPAN_COMPLETE_MARKER).write_text("")
    assert watch_once(paths, run) is not None
    assert runs == [[1], [1, 2]]


def test_a_refused_span_waits_for_a_change_and_a_failed_run_stays_pending(tmp_path):
    data_root, output_dir = tmp_path / "data", tmp_path / "out"
    data_root.mkdir()
    output_dir.mkdir()
    paths = LocalPaths(str(data_root), str(output_dir))
    outcomes = [2, 1, 0]
    runs = []

    def run():
        runs.append(outcomes[len(runs)])
        return RunResult(runs[-1], [1], None, [], 0.0, "why")

    _span(data_root, 1)
    assert watch_once(paths, run).exit_code == 2  # refused
    assert watch_once(paths, run) is None  # nothing changed: not run again
    (data_root / "span-1" / "data.csv").write_text("a\n2\n")  # the producer fixed the span
    assert watch_once(paths, run).exit_code == 1  # failed for another reason
    assert watch_once(paths, run).exit_code == 0  # still pending, so run again: trained
    assert watch_once(paths, run) is None
    assert runs == [2, 1, 0]


def test_a_stray_folder_is_skipped_with_a_warning_and_a_broken_root_stops_the_watcher(tmp_path):
    import subprocess
    import sys

    def watch(data_root):
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "watch", "--once", "--data-root", str(data_root), "--output-dir", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=300,
        )

    _span(tmp_path, 1, complete=False)
    (tmp_path / "span-old").mkdir()
    waiting = watch(tmp_path)
    assert waiting.returncode == 0, waiting.stderr
    assert "warning: skipped folder(s) span-old under" in waiting.stderr
    # Two folders for one span: named, exit 2, and the span is not marked handled.
    (tmp_path / "span-01").mkdir()
    (tmp_path / "span-01" / "data.csv").write_text("a\n1\n")
    broken = watch(tmp_path)
    assert broken.returncode == 2
    assert "folders 'span-01' and 'span-1' under" in broken.stderr and "both name span 1" in broken.stderr
