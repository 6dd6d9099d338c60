"""`python -m pipeline <command>`: one entry to the pipeline's commands."""
import importlib
import subprocess
import sys

import pytest

from pipeline import __main__ as commands
from tests.conftest import REPO_ROOT


def test_every_command_names_a_module_with_a_main():
    for name, command in commands.COMMANDS.items():
        module = importlib.import_module(command.module)
        assert callable(getattr(module, "main", None)), name


def test_without_a_command_the_usage_lists_every_command(capsys):
    assert commands.main([]) == commands.EXIT_USAGE
    usage = capsys.readouterr().err
    assert all(f"  {name}" in usage for name in commands.COMMANDS)
    assert commands.main(["--help"]) == 0
    assert "python -m pipeline <command>" in capsys.readouterr().out


def test_an_unknown_command_is_a_usage_error(capsys):
    assert commands.main(["lineages"]) == commands.EXIT_USAGE
    assert "unknown command 'lineages'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-m", "pipeline", "accept", "--help"], ["-m", "pipeline.accept", "--help"]])
def test_accept_answers_under_both_names(argv):
    # `python -m pipeline.accept` is what refusal messages print; it stays.
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "--reason" in result.stdout


def test_run_checks_its_flags_before_anything_runs():
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--train-steps", "0"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 64
    assert "--train-steps must be at least 1" in result.stderr


def test_replay_names_a_data_root_that_is_not_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "--data-root", str(tmp_path / "none"), "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 64
    assert f"error: --data-root {str(tmp_path / 'none')!r} is not a folder" in result.stderr
    assert "Traceback" not in result.stderr
