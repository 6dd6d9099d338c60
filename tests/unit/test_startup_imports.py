"""What a pipeline run imports: never `tfx.v1`, whose Google Cloud extensions cost seconds."""
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

# Every module a local run loads to build and run the pipeline, the module files included.
RUN_MODULES = [
    "pipeline.dag",
    "pipeline.runners.local",
    "pipeline.runners.concurrent_dag",
    "modules.train",
    "modules.tune",
]
# Imported by `tfx.v1` (its `extensions`), by nothing a local run needs: about 2.7 s.
NOT_IMPORTED = ["tfx.v1", "tfx.v1.extensions", "google.cloud.aiplatform"]


def _imported_after(code: str) -> set:
    """The modules loaded by a fresh interpreter after it runs `code`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_a_run_builds_its_pipeline_and_runner_without_tfx_v1():
    imported = _imported_after(
        "\n".join(f"import {name}" for name in RUN_MODULES)
        + "\nfrom pipeline.runners.local import dag_runner\ndag_runner(1)\ndag_runner(2)"
    )
    assert set(RUN_MODULES) <= imported
    assert "tfx.components" in imported  # the probe did load TFX
    assert imported.isdisjoint(NOT_IMPORTED), sorted(imported & set(NOT_IMPORTED))
