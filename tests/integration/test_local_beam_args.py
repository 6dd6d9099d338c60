"""The local runs' Beam arguments: TFX's Beam steps run with them as given, without packaging
TFX itself into a new folder under the temporary directory each time (pipeline.runners.beam_args,
DirectRunnerConfig.setup_file)."""
import pathlib
import tempfile

import apache_beam as beam
import pytest
from tfx.dsl.components.base import base_beam_executor

from pipeline.runners.local import local_beam_args


class _BeamStep(base_beam_executor.BaseBeamExecutor):
    """A Beam step as TFX builds one: the constructor settles its Beam arguments."""

    def Do(self, input_dict, output_dict, exec_properties):
        with self._make_beam_pipeline() as pipeline:
            path = exec_properties["total_file"]
            _ = pipeline | beam.Create([1, 2, 3]) | beam.CombineGlobally(sum) | beam.Map(lambda total: pathlib.Path(path).write_text(str(total)))


def _step(args):
    return _BeamStep(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=args))


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_tfx_beam_step_runs_with_the_local_arguments_and_packages_nothing(mode, tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    step = _step(local_beam_args(mode))
    assert not [arg for arg in step._beam_pipeline_args if arg.startswith("--extra_package")]
    step.Do({}, {}, {"total_file": str(tmp_path / "total")})
    assert (tmp_path / "total").read_text() == "6"
    assert list(temp.iterdir()) == []


def test_without_a_dependency_flag_tfx_packages_itself_for_every_step(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    step = _step(["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    packages = [arg for arg in step._beam_pipeline_args if arg.startswith("--extra_package=")]
    assert len(packages) == 1 and packages[0].startswith(f"--extra_package={tmp_path}")
    assert len(list(tmp_path.iterdir())) == 1
