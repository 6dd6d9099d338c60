"""Spans arriving one after another: each run's decision, the versions, and a cached rerun."""
import os

import pytest

from pipeline.runners.local import EXIT_OK, local_beam_args
from pipeline.runners.replay import describe_step, replay
from tests.conftest import SAMPLE_OPTIONS, sample_data_root

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_replay_pushes_refuses_and_caches_as_designed(tmp_path, capsys):
    # 800 trips a span, so that span 1 alone (640 to train on) can make a model worth pushing.
    data_root = sample_data_root(tmp_path / "data", rows_per_span=800)
    output_dir = tmp_path / "out"
    options = SAMPLE_OPTIONS
    results = replay(str(data_root), str(output_dir), options, local_beam_args("in_memory"))
    assert [result.spans for result in results] == [[1], [1, 2], [1, 2, 3], [1, 2, 3]]
    assert all(result.exit_code == EXIT_OK for result in results), [r.error for r in results]
    # The first model has nothing to beat but the floors.
    assert results[0].summary.metrics["auc"][1] is None
    for result in results[:3]:
        summary = result.summary
        # Pushed exactly when blessed and served well; a refusal always says why.
        if summary.pushed_version is None:
            assert summary.blessed is False and summary.failed_thresholds, summary
        else:
            assert summary.blessed and summary.serves
    # Later models were compared with the one serving, once something serves.
    pushed_steps = [i for i, r in enumerate(results) if r.summary.pushed_version]
    assert pushed_steps, [r.summary.failed_thresholds for r in results]
    first_push = pushed_steps[0]
    assert all(r.summary.metrics["auc"][1] is not None for r in results[first_push + 1 : 3])
    pushed = [r.summary.pushed_version for r in results if r.summary.pushed_version]
    assert sorted(os.listdir(output_dir / "serving_model")) == sorted(pushed)
    # No new span: nothing retrained, nothing pushed.
    rerun = results[-1].summary
    assert rerun.pushed_version is None
    printed = capsys.readouterr().out
    assert "== span 3 arrived: spans [1, 2, 3]" in printed
    assert "== no new span, run again" in printed
    assert describe_step("x", results[first_push]).count("decision: pushed version") == 1
