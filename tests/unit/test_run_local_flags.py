"""run_local.py refuses a bad command line before anything runs, with its own exit code."""
import subprocess
import sys

import pytest

from tests.conftest import DATA_ROOT, REPO_ROOT


def _run(*flags):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_local.py"), *flags], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--train-steps", "0"], "--train-steps must be at least 1, got 0"),
        (["--train-steps", "-5"], "--train-steps must be at least 1, got -5"),
        (["--span-window", "0"], "--span-window must be at least 1, got 0"),
        (["--tune", "--tune-trials", "0"], "--tune-trials must be at least 1, got 0"),
        (["--steps-at-once", "0"], "--steps-at-once must be at least 1, got 0"),
        (["--data-root", "/no/such/folder"], "--data-root '/no/such/folder' is not a folder"),
        (["--data-root", str(REPO_ROOT / "docs")], f"--data-root {str(REPO_ROOT / 'docs')!r} holds no span-<N> folder"),
    ],
)
def test_a_usage_error_is_named_and_is_not_a_data_refusal(tmp_path, flags, message):
    result = _run("--output-dir", str(tmp_path / "out"), *(["--data-root", str(DATA_ROOT)] if "--data-root" not in flags else []), *flags)
    assert result.returncode == 64, result.stderr
    assert f"error: {message}" in result.stderr
    assert "DATA REFUSED" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_dir_under_a_file_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    result = _run("--output-dir", str(tmp_path / "file" / "out"))
    assert result.returncode == 64 and "cannot be written" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a database, just text" * 100, "is not a usable ML Metadata (SQLite) file: file is not a database"),
        (b"SQLite format 3\x00" + b"\x00" * 80, "move it away to start a new history"),
    ],
    ids=["not-sqlite", "truncated"],
)
def test_a_metadata_file_that_does_not_open_is_named_and_left_alone(tmp_path, content, message):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "metadata.db").write_bytes(content)
    result = _run("--output-dir", str(output_dir), "--data-root", str(DATA_ROOT))
    assert result.returncode == 64, result.stderr
    assert message in result.stderr
    assert (output_dir / "metadata.db").read_bytes() == content  # nothing stored is touched


def test_a_failure_without_a_message_is_named_with_the_error_it_came_from():
    from pipeline.runners.local import _error_text

    try:
        try:
            raise OSError("/out/dist; No such file or directory")
        except OSError as cause:
            raise FileNotFoundError() from cause
    except FileNotFoundError as failure:
        assert _error_text(failure) == "FileNotFoundError: (from OSError: /out/dist; No such file or directory)"
    assert _error_text(ValueError("bad span")) == "ValueError: bad span"
