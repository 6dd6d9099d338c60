"""One writer at a time on a real output dir (SQLite ML Metadata): while another process holds
the writer lock, accept, rollback and housekeeping are refused with exit 75 and change nothing;
once it is gone they work. (tests/e2e/test_mysql_metadata.py does the same with a real run on
MariaDB.)"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest

from pipeline.ops import writer_lock

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOLD_LOCK = """
import sys, time
from pipeline.ops import writer_lock
with writer_lock.hold(sys.argv[1], ["held-by-the-test"]):
    print("held", flush=True)
    time.sleep(300)
"""


def _tree_digest(folder):
    digest = hashlib.sha256()
    for root, folders, files in sorted(os.walk(folder)):
        folders.sort()
        for name in sorted(files):
            if name == writer_lock.LOCK_FILE:
                continue
            path = os.path.join(root, name)
            digest.update(path.encode())
            with open(path, "rb") as content:
                digest.update(content.read())
    return digest.hexdigest()


def _tool(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_tools_that_write_wait_their_turn(small_pipeline_run, tmp_path):
    output_dir = tmp_path / "output"
    shutil.copytree(small_pipeline_run["output_dir"], output_dir)
    version = sorted(os.listdir(output_dir / "serving_model"))[0]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _tree_digest(output_dir)
        refused = [
            _tool("rollback", "--output-dir", str(output_dir), "--to", version),
            _tool("housekeeping", "--output-dir", str(output_dir), "--keep-versions", "1"),
            _tool("accept", "--data-root", str(small_pipeline_run["data_root"]), "--output-dir", str(output_dir),
                  "--span", "3", "--reason", "reviewed"),
        ]
        for result in refused:
            assert result.returncode == writer_lock.EXIT_BUSY, result.stderr[-2000:]
            assert f"is being written by pid {holder.pid} (held-by-the-test, since" in result.stderr
        assert _tree_digest(output_dir) == before  # metadata.db and serving_model/ untouched
        # A reader takes no lock.
        assert _tool("lineage", "--output-dir", str(output_dir), "--version", version).returncode == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = _tool("rollback", "--output-dir", str(output_dir), "--to", version)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"versions: {version}" in (output_dir / "models.config").read_text()
