"""A readable console for the entry points: TensorFlow imported without its known CPU noise.

`TF_CPP_MIN_LOG_LEVEL=2` hides TensorFlow's INFO and WARNING lines but keeps its errors. On a
machine without a GPU, TensorFlow 2.16 still prints three ERROR lines at import ("Unable to
register cuFFT/cuDNN/cuBLAS factory: ... already been registered"), which are harmless and
say nothing about the run. `import_tensorflow` drops exactly those three and passes
everything else through, so real errors stay visible. It also silences the Google client
libraries' notice that Python 3.10 gets no more updates (the stack is pinned to 3.10).
"""
import os
import re
import sys
import tempfile
import warnings

# The registration notices TensorFlow 2.16 prints on import on a CPU-only machine.
KNOWN_IMPORT_NOISE = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory: Attempting to register factory for plugin "
    r"cu(FFT|DNN|BLAS) when one has already been registered"
)


def import_tensorflow() -> None:
    """Imports TensorFlow with INFO/WARNING hidden (unless TF_CPP_MIN_LOG_LEVEL is set) and the
    known import notices dropped; any other line TensorFlow writes to stderr is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode("utf-8", errors="replace").splitlines(keepends=True):
                if not KNOWN_IMPORT_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
