"""Runs the taxi pipeline on this machine with TFX's LocalDagRunner and Beam's DirectRunner.

`python run_local.py --help` lists the flags with worked examples; the code is
`pipeline/runners/local.py` (also `python -m pipeline run`).
"""
import os

# Before TensorFlow is imported: keep CUDA/oneDNN start-up notices off a CPU console.
# Level 2 still shows errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.runners.local import run  # noqa: E402  (light: TensorFlow is imported after the flags are checked)

if __name__ == "__main__":
    run()
