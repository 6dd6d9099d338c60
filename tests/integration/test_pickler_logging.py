"""Beam's pickler with `beam_args.quiet_pickler_logging`: a pipeline pickles and runs as before,
dill's logging level is set only when it changes, and tracing can still be turned on."""
import logging

import apache_beam as beam
from apache_beam.internal import pickler
from apache_beam.testing.util import assert_that, equal_to
from dill import _dill

from pipeline.runners.beam_args import quiet_pickler_logging


def _dills_own_trace(monkeypatch) -> None:
    """Puts dill's own `_trace` back for the test: a run earlier in this process may have
    turned the quiet one on already."""
    monkeypatch.setattr(_dill, "_trace", getattr(_dill._trace, "dill_trace", _dill._trace))


def _dill_level_changes(monkeypatch) -> list:
    levels = []
    set_level = logging.Logger.setLevel

    def recording(logger, level):
        if logger is _dill.log:
            levels.append(level)
        set_level(logger, level)

    monkeypatch.setattr(logging.Logger, "setLevel", recording)
    return levels


def test_a_pipeline_pickles_without_setting_the_same_level_again(monkeypatch):
    _dills_own_trace(monkeypatch)
    levels = _dill_level_changes(monkeypatch)
    pickler.dumps(len)
    # Beam's own pickler sets the level after every pickle, changed or not.
    assert levels == [logging.WARN]

    quiet_pickler_logging()
    quiet_pickler_logging()
    levels.clear()
    with beam.Pipeline(argv=["--runner=DirectRunner", "--direct_running_mode=in_memory"]) as pipeline:
        doubled = pipeline | beam.Create(range(20)) | beam.Map(lambda value: 2 * value) | beam.Reshuffle()
        assert_that(doubled, equal_to([2 * value for value in range(20)]))
    assert pickler.loads(pickler.dumps(len)) is len
    assert levels == []
    assert _dill.log.level == logging.WARN


def test_tracing_is_still_turned_on_and_off(monkeypatch):
    _dills_own_trace(monkeypatch)
    quiet_pickler_logging()
    levels = _dill_level_changes(monkeypatch)
    _dill._trace(True)
    _dill._trace(True)
    _dill._trace(False)
    assert levels == [logging.INFO, logging.WARN]
    assert _dill.log.level == logging.WARN
