"""The real ExampleGen and StatisticsGen (LocalDagRunner) on CSV spans with empty cells."""
import collections
import hashlib
import json

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import v1 as tfx

from pipeline import component_ids, configs, dag
from pipeline.components import example_gen
from pipeline.components.artifacts import SPAN_FILES_PROPERTY, SPANS_PROPERTY
from pipeline.ops import run_summary
from pipeline.spans import file_sha256
from pipeline.validation import span_chunks, span_rows
from pipeline.validation.span_rows import CsvFormatError
from tests.conftest import DATA_ROOT, SCHEMA_PATH, trip, write_csv

pytestmark = pytest.mark.slow

ROWS = 40


def _run(data_root, output_dir, spans, with_statistics=True):
    example_gen = dag.make_example_gen(str(data_root), spans, configs.PipelineOptions(code_fingerprint="test"))
    components = [example_gen]
    if with_statistics:
        components.append(tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(component_ids.STATISTICS_GEN))
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="example_gen_test",
            pipeline_root=str(output_dir / "root"),
            components=components,
            metadata_connection_config=connection,
        )
    )
    from tfx.orchestration import metadata

    with metadata.Metadata(connection) as handler:
        if not with_statistics:
            return run_summary.latest_node_outputs(handler.store, "example_gen_test", component_ids.EXAMPLE_GEN, 0)["examples"][0]
        outputs = run_summary.latest_node_outputs(handler.store, "example_gen_test", component_ids.STATISTICS_GEN, 0)
    return outputs["statistics"][0].uri


def _feature(statistics, name):
    return next(f for f in statistics.datasets[0].features if f.path.step == [name])


@pytest.fixture(scope="module")
def statistics(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("data")
    # Whole-number fares only, a company in one trip of four, no dropoff coordinates in half.
    rows = [
        trip(fare=float(10 + i % 7), company="Flash Cab" if i % 4 == 0 else None, dropoff_latitude=None if i % 2 else 41.88)
        for i in range(ROWS)
    ]
    write_csv(data_root / "span-1" / "data.csv", rows)
    uri = _run(data_root, tmp_path_factory.mktemp("out"), [1])
    train = tfdv.load_stats_binary(f"{uri}/Split-{configs.TRAIN_SPLIT}/FeatureStats.pb")
    evaluation = tfdv.load_stats_binary(f"{uri}/Split-{configs.EVAL_SPLIT}/FeatureStats.pb")
    return train, evaluation


def _counts(both, name):
    features = [_feature(statistics, name) for statistics in both]
    common = [f.string_stats.common_stats if f.HasField("string_stats") else f.num_stats.common_stats for f in features]
    return sum(c.num_non_missing for c in common), sum(c.num_missing for c in common)


def test_empty_cells_are_counted_as_missing(statistics):
    assert _counts(statistics, "company") == (ROWS // 4, ROWS - ROWS // 4)
    assert _counts(statistics, "dropoff_latitude") == (ROWS // 2, ROWS // 2)
    assert _counts(statistics, "payment_type") == (ROWS, 0)


def test_whole_number_fares_stay_the_schema_s_float(statistics):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    assert _feature(statistics[0], "fare").type == statistics_pb2.FeatureNameStatistics.FLOAT
    assert _feature(statistics[0], "trip_seconds").type == statistics_pb2.FeatureNameStatistics.INT


def test_a_bad_cell_fails_the_run_naming_file_line_column_and_value(tmp_path):
    data_root = tmp_path / "data"
    path = write_csv(data_root / "span-1" / "data.csv", [trip(), trip(), trip(trip_miles="1.2.3")])
    with pytest.raises(CsvFormatError, match=rf"{path}, line 4, column 'trip_miles': value '1.2.3'"):
        _run(data_root, tmp_path / "out", [1])


def _row_reader_splits(spans):
    """Each split's examples as the row reader makes them, put where TFX's hash puts them."""
    types = span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))
    options = configs.PipelineOptions()
    buckets = options.train_buckets + options.eval_buckets
    splits = {configs.TRAIN_SPLIT: collections.Counter(), configs.EVAL_SPLIT: collections.Counter()}
    for span in spans:
        path = str(DATA_ROOT / f"span-{span}" / "data.csv")
        for _, row in span_rows.read_rows(path, span_rows.read_header(path), types):
            serialized = span_rows.to_example(row, types).SerializeToString(deterministic=True)
            # BaseExampleGenExecutor's rule: sha256 of the deterministic bytes, modulo all buckets.
            bucket = int(hashlib.sha256(serialized).hexdigest(), 16) % buckets
            splits[configs.TRAIN_SPLIT if bucket < options.train_buckets else configs.EVAL_SPLIT][serialized] += 1
    return splits


def _records(paths):
    return [record.numpy() for record in tf.data.TFRecordDataset(list(paths), compression_type="GZIP")]


def test_the_shipped_spans_land_in_the_splits_the_row_reader_gave_them(tmp_path):
    spans = [1, 2, 3, 4]
    examples = _run(DATA_ROOT, tmp_path, spans, with_statistics=False)
    expected = _row_reader_splits(spans)
    for split, counts in expected.items():
        # What TFX's readers read: every file of the split's folder.
        pattern = f"{examples.uri}/Split-{split}/*"
        # The records themselves are the deterministic bytes, not just the same examples.
        written = collections.Counter(_records(tf.io.gfile.glob(pattern)))
        assert written == counts, f"split {split}: {sum(written.values())} examples, the row reader's split has {sum(counts.values())}"
        # One file per range, a range per shipped file, named by file number and first byte.
        names = sorted(tf.io.gfile.listdir(f"{examples.uri}/Split-{split}"))
        assert [name.split("-")[1] for name in names] == ["00000", "00001", "00002", "00003"]
    assert sorted(tf.io.gfile.listdir(examples.uri)) == [f"Split-{configs.EVAL_SPLIT}", f"Split-{configs.TRAIN_SPLIT}"]
    assert sum(expected[configs.EVAL_SPLIT].values()) == 2988  # docs/data_checks.md: the eval split since absent cells
    properties = examples.custom_properties
    assert properties[SPANS_PROPERTY].string_value == "1,2,3,4"
    recorded = json.loads(properties[SPAN_FILES_PROPERTY].string_value)
    assert recorded == {str(DATA_ROOT / f"span-{span}" / "data.csv"): file_sha256(str(DATA_ROOT / f"span-{span}" / "data.csv")) for span in spans}


def _executor_run(output_dir, spans, range_bytes):
    """Runs the executor's Do (a real Beam pipeline) with ranges of range_bytes; returns the artifact."""
    from google.protobuf import message
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    component = dag.make_example_gen(str(DATA_ROOT), spans, configs.PipelineOptions(code_fingerprint="test"))
    exec_properties = {
        key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
        for key, value in component.exec_properties.items()
        if value is not None
    }
    exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = proto_utils.proto_to_json(
        example_gen.span_window_config(spans[0], spans[-1], str(SCHEMA_PATH), "test", range_bytes=range_bytes)
    )
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    example_gen.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def test_several_ranges_per_file_give_the_same_splits_in_a_reproducible_shuffled_order(tmp_path):
    path = str(DATA_ROOT / "span-4" / "data.csv")
    ranges = span_chunks.plan_ranges(path, 16_384)
    assert len(ranges) >= 5
    first = _executor_run(tmp_path / "first", [4], 16_384)
    again = _executor_run(tmp_path / "again", [4], 16_384)
    expected = _row_reader_splits([4])
    types = span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))
    csv_order = list(span_chunks.read_range(span_chunks.plan_ranges(path)[0], types))
    for split, counts in expected.items():
        folder = f"{first.uri}/Split-{split}"
        names = sorted(tf.io.gfile.listdir(folder))
        assert names == sorted(example_gen.range_file_name(0, file_range) for file_range in ranges)
        written = _records(f"{folder}/{name}" for name in names)
        assert collections.Counter(written) == counts
        # Shuffled within each range: not the order of the CSV file...
        assert written != [record for record in csv_order if record in counts]
        # ... but the same order on a rerun.
        assert written == _records(f"{again.uri}/Split-{split}/{name}" for name in names)


def test_a_range_written_twice_is_in_its_split_once(tmp_path):
    import apache_beam as beam
    from tfx.proto import example_gen_pb2
    from tfx.utils import proto_utils

    file_range = span_chunks.plan_ranges(str(DATA_ROOT / "span-4" / "data.csv"), 16_384)[1]
    component = dag.make_example_gen(str(DATA_ROOT), [4], configs.PipelineOptions())
    input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
    proto_utils.json_to_proto(component.exec_properties["input_config"], input_config)
    proto_utils.json_to_proto(component.exec_properties["output_config"], output_config)
    rule = example_gen.split_rule(input_config, output_config)
    folders = [str(tmp_path / name) for name in rule.names]
    for folder in folders + [str(tmp_path / "temp")]:
        tf.io.gfile.makedirs(folder)
    types = span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))
    # A retried bundle: the same range twice, as a runner that reruns a lost worker's work gives it.
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create([(0, 0, file_range), (0, 0, file_range)])
            | beam.ParDo(example_gen.SplitAndWriteRange(types, rule, folders, str(tmp_path / "temp")))
        )
    written = collections.Counter(record for folder in folders for record in _records(tf.io.gfile.glob(f"{folder}/*")))
    assert written == collections.Counter(span_chunks.read_range(file_range, types))
    assert [len(tf.io.gfile.listdir(folder)) for folder in folders] == [1, 1]
    assert tf.io.gfile.listdir(str(tmp_path / "temp")) == []
