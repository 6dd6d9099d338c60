"""Finding span folders and choosing the training window, with the errors a user sees; a span
file's kept hash."""
import hashlib
import json
import os
import time

import pytest

from pipeline import spans


def _span(root, name, with_csv=True):
    folder = root / name
    folder.mkdir()
    if with_csv:
        (folder / "data.csv").write_text("a,b\n1,2\n")


def test_spans_are_found_in_numeric_order(tmp_path):
    for name in ["span-10", "span-2", "span-1"]:
        _span(tmp_path, name)
    (tmp_path / "README.md").write_text("not a span")
    assert spans.discover_spans(str(tmp_path)) == [1, 2, 10]


def test_shipped_data_has_four_yearly_spans(data_root):
    assert spans.discover_spans(str(data_root)) == [1, 2, 3, 4]


def test_window_keeps_the_newest_spans():
    assert spans.window([1, 2, 3, 4], None) == [1, 2, 3, 4]
    assert spans.window([1, 2, 3, 4], 2) == [3, 4]
    assert spans.window([1, 2], 5) == [1, 2]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "holds no span-<N> folder"),
        (lambda root: _span(root, "span-3", with_csv=False), "holds no *.csv file"),
    ],
)
def test_bad_data_roots_are_named(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(spans.SpanError, match=message.replace("*", r"\*")):
        spans.discover_spans(str(tmp_path))


def test_missing_data_root_is_named(tmp_path):
    with pytest.raises(spans.SpanError, match="is not a folder"):
        spans.discover_spans(str(tmp_path / "nope"))


def test_window_must_be_positive():
    with pytest.raises(spans.SpanError, match="at least 1"):
        spans.window([1, 2], 0)


def test_two_folders_for_one_span_number_are_named(tmp_path):
    _span(tmp_path, "span-1")
    _span(tmp_path, "span-01")
    with pytest.raises(spans.SpanError, match=r"folders 'span-01' and 'span-1' under .* both name span 1"):
        spans.discover_spans(str(tmp_path))


def test_a_gap_inside_the_window_is_named_and_a_window_after_it_is_fine():
    with pytest.raises(spans.SpanError, match=r"span\(s\) \[2\] missing between span 1 and span 4"):
        spans.window([1, 3, 4], None)
    assert spans.window([1, 3, 4], 2) == [3, 4]


def test_a_folder_that_is_not_a_span_is_skipped_and_named(tmp_path):
    _span(tmp_path, "span-1")
    _span(tmp_path, "span-old")
    (tmp_path / "span-notes.txt").write_text("not a folder")
    assert spans.discover_spans(str(tmp_path)) == [1]
    assert spans.stray_folders(str(tmp_path)) == ["span-old"]
    assert spans.stray_text(str(tmp_path)) == (
        f"skipped folder(s) span-old under {tmp_path}: span folders are named span-<N> with N a number"
    )
    assert spans.stray_text(str(tmp_path / "missing")) == ""


def test_no_span_yet_is_its_own_error(tmp_path):
    # A watcher waits on NoSpanError; any other SpanError is a broken data root.
    with pytest.raises(spans.NoSpanError):
        spans.discover_spans(str(tmp_path))
    _span(tmp_path, "span-1")
    with pytest.raises(spans.NoSpanError, match="no complete span"):
        spans.discover_spans(str(tmp_path), complete_only=True)


def test_a_data_root_problem_is_named_before_anything_runs(tmp_path):
    assert spans.data_root_problem(str(tmp_path / "none")) == "is not a folder"
    (tmp_path / "span-1").write_text("a file, not a span folder")
    _span(tmp_path, "span-old")
    assert spans.data_root_problem(str(tmp_path)) == "holds no span-<N> folder"
    _span(tmp_path, "span-2", with_csv=False)  # a span folder: judging it is the data checks' job
    assert spans.data_root_problem(str(tmp_path)) == ""


def _settled_file(path, content: bytes):
    """Writes a file dated an hour back, long enough before any hash for its hash to be kept."""
    path.write_bytes(content)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return str(path)


def _records(hashes_dir):
    return sorted(name for name in os.listdir(hashes_dir) if name.endswith(".json")) if os.path.isdir(hashes_dir) else []


def test_a_kept_hash_is_read_while_the_file_is_unchanged(tmp_path):
    data = _settled_file(tmp_path / "data.csv", b"a,b\n1,2\n")
    hashes_dir = str(tmp_path / "hashes")
    assert spans.kept_file_sha256(data, hashes_dir) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    [name] = _records(hashes_dir)
    # The second call answers from the record, not from the file's bytes: a record that says
    # otherwise is believed while the file's size and times are those it was taken with.
    record_path = os.path.join(hashes_dir, name)
    with open(record_path) as record_file:
        record = json.load(record_file)
    assert record["path"] == data
    record["sha256"] = "f" * 64
    with open(record_path, "w") as record_file:
        json.dump(record, record_file)
    assert spans.kept_file_sha256(data, hashes_dir) == "f" * 64


def test_a_file_rewritten_with_its_old_size_and_modification_time_is_hashed_again(tmp_path):
    data = _settled_file(tmp_path / "data.csv", b"a,b\n1,2\n")
    hashes_dir = str(tmp_path / "hashes")
    spans.kept_file_sha256(data, hashes_dir)
    before = os.stat(data)
    time.sleep(0.01)
    with open(data, "r+b") as data_file:
        data_file.write(b"a,b\n3,4\n")
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(data).st_size == before.st_size and os.stat(data).st_mtime_ns == before.st_mtime_ns
    # The status-change time moved, so the kept hash no longer answers.
    assert spans.kept_file_sha256(data, hashes_dir) == hashlib.sha256(b"a,b\n3,4\n").hexdigest()


def test_a_file_written_just_now_is_hashed_but_its_hash_not_kept(tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n1,2\n")
    hashes_dir = str(tmp_path / "hashes")
    assert spans.kept_file_sha256(str(data), hashes_dir) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert _records(hashes_dir) == []


def test_an_unreadable_kept_hash_is_replaced(tmp_path, caplog):
    data = _settled_file(tmp_path / "data.csv", b"a,b\n1,2\n")
    hashes_dir = str(tmp_path / "hashes")
    spans.kept_file_sha256(data, hashes_dir)
    [name] = _records(hashes_dir)
    (tmp_path / "hashes" / name).write_text("{not json")
    assert spans.kept_file_sha256(data, hashes_dir) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert "unreadable" in caplog.text and data in caplog.text
    assert spans.read_kept_hash(str(tmp_path / "hashes" / name))["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_stale_kept_hashes_are_those_of_changed_or_removed_files(tmp_path):
    hashes_dir = tmp_path / "hashes"
    kept = _settled_file(tmp_path / "kept.csv", b"kept\n")
    changed = _settled_file(tmp_path / "changed.csv", b"before\n")
    removed = _settled_file(tmp_path / "removed.csv", b"removed\n")
    for path in (kept, changed, removed):
        spans.kept_file_sha256(path, str(hashes_dir))
    by_path = {spans.read_kept_hash(str(hashes_dir / name))["path"]: str(hashes_dir / name) for name in _records(str(hashes_dir))}
    _settled_file(tmp_path / "changed.csv", b"after, longer\n")
    os.remove(removed)
    (hashes_dir / ".0123.tmp").write_text("a write that stopped")
    assert spans.stale_kept_hashes(str(hashes_dir)) == sorted([by_path[changed], by_path[removed], str(hashes_dir / ".0123.tmp")])
    assert spans.stale_kept_hashes(str(tmp_path / "no such folder")) == []
