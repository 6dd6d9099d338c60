"""Spans arriving one after another: each run's decision, the versions, and a cached rerun."""
import os

import pytest

from pipeline.local_run import EXIT_OK
from pipeline.replay import describe_step, replay
from tests.conftest import SAMPLE_OPTIONS, sample_data_root

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_replay_pushes_refuses_and_caches_as_designed(tmp_path, capsys):
    data_root = sample_data_root(tmp_path / "data")
    output_dir = tmp_path / "out"
    options = SAMPLE_OPTIONS
    results = replay(str(data_root), str(output_dir), options, ["--direct_running_mode=in_memory"])
    assert [result.spans for result in results] == [[1], [1, 2], [1, 2, 3], [1, 2, 3]]
    assert all(result.exit_code == EXIT_OK for result in results), [r.error for r in results]
    # The first model has nothing to beat but the floors: it is pushed.
    assert results[0].summary.pushed_version is not None
    assert results[0].summary.metrics["auc"][1] is None
    # Every later model was compared with the one serving, and pushed only when not worse.
    for result in results[1:3]:
        summary = result.summary
        assert summary.metrics["auc"][1] is not None
        if summary.pushed_version is None:
            assert summary.blessed is False and summary.failed_thresholds
        else:
            assert summary.blessed and summary.serves
    pushed = [r.summary.pushed_version for r in results if r.summary.pushed_version]
    assert sorted(os.listdir(output_dir / "serving_model")) == sorted(pushed)
    # No new span: nothing retrained, nothing pushed.
    rerun = results[-1].summary
    assert rerun.pushed_version is None
    printed = capsys.readouterr().out
    assert "== span 3 arrived: spans [1, 2, 3]" in printed
    assert "== no new span, run again" in printed
    assert describe_step("x", results[0]).count("decision: pushed version") == 1
