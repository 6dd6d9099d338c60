"""Finding span folders and choosing the training window, with the errors a user sees."""
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
