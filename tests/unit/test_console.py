"""Entry points import TensorFlow without its known CPU-machine notices, and keep real errors."""
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

NOISE = (
    "E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:10575] Unable to register cuDNN factory: "
    "Attempting to register factory for plugin cuDNN when one has already been registered"
)


def _run(code: str, extra_path: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [extra_path, str(REPO_ROOT)])))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_known_notices_are_dropped_and_other_lines_kept(tmp_path):
    # A stand-in "tensorflow" that writes, at the file-descriptor level as TensorFlow's C++
    # logging does, one known notice and one real error.
    (tmp_path / "tensorflow.py").write_text(
        "import os\n"
        f"os.write(2, b{NOISE!r} + b'\\n')\n"
        "os.write(2, b'E some/real/op.cc:1] a real error\\n')\n"
    )
    result = _run(
        "from serving.console import import_tensorflow\n"
        "import_tensorflow()\n"
        "import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "Unable to register" not in result.stderr
    assert "a real error" in result.stderr
    assert result.stdout.strip() == "2"


def test_the_real_import_prints_none_of_the_known_notices():
    result = _run("from serving.console import import_tensorflow\nimport_tensorflow()\nimport tensorflow as tf\nprint(tf.__version__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.16.2"
    assert "Unable to register" not in result.stderr and "non-supported Python version" not in result.stderr
