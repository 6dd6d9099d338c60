"""The in-process DirectRunner without its state cache (beam_args.turn_off_in_process_state_cache):
side inputs still reach every bundle, and nothing is weighed."""
import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import statecache
from apache_beam.testing.util import assert_that, equal_to

from pipeline.runners.beam_args import turn_off_in_process_state_cache


def test_side_inputs_are_read_without_the_cache(monkeypatch):
    weighed = []
    monkeypatch.setattr(statecache, "get_deep_size", lambda *objs: weighed.append(objs) or 8)
    monkeypatch.setattr(worker_handlers, "STATE_CACHE_SIZE_MB", worker_handlers.STATE_CACHE_SIZE_MB)
    turn_off_in_process_state_cache()
    with beam.Pipeline(argv=["--runner=DirectRunner", "--direct_running_mode=in_memory"]) as pipeline:
        offsets = pipeline | "Offsets" >> beam.Create([100, 1000])
        rows = pipeline | "Rows" >> beam.Create(range(50)) | beam.Reshuffle()
        shifted = rows | beam.Map(lambda row, extra: row + sum(extra), extra=beam.pvalue.AsList(offsets))
        assert_that(shifted, equal_to([row + 1100 for row in range(50)]))
    assert weighed == []
