"""The real ExampleGen and StatisticsGen (LocalDagRunner) on CSV spans with empty cells."""
import collections
import hashlib
import json
import os
import shutil
import time

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import v1 as tfx

from pipeline import component_ids, configs, dag
from pipeline.components import example_gen
from pipeline.components.artifacts import SPAN_FILES_PROPERTY, SPANS_PROPERTY
from pipeline.ops import run_summary
from pipeline.spans import file_sha256, read_kept_hash
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
        # One file per range, a range per shipped file, named by span, input split, file
        # number in the span and first byte.
        names = sorted(tf.io.gfile.listdir(f"{examples.uri}/Split-{split}"))
        assert [name.rsplit("-", 1)[0] for name in names] == [f"span-{span}-0-data_tfrecord-00000" for span in spans]
    assert sorted(tf.io.gfile.listdir(examples.uri)) == [f"Split-{configs.EVAL_SPLIT}", f"Split-{configs.TRAIN_SPLIT}"]
    assert sum(expected[configs.EVAL_SPLIT].values()) == 2988  # docs/data_checks.md: the eval split since absent cells
    properties = examples.custom_properties
    assert properties[SPANS_PROPERTY].string_value == "1,2,3,4"
    recorded = json.loads(properties[SPAN_FILES_PROPERTY].string_value)
    assert recorded == {str(DATA_ROOT / f"span-{span}" / "data.csv"): file_sha256(str(DATA_ROOT / f"span-{span}" / "data.csv")) for span in spans}


def _executor_run(output_dir, spans, range_bytes=None, span_examples_dir="", data_root=DATA_ROOT, source_hashes_dir=""):
    """Runs the executor's Do (a real Beam pipeline) with ranges of range_bytes, keeping spans in
    span_examples_dir and the span files' hashes in source_hashes_dir when given; returns the
    artifact."""
    from google.protobuf import message
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    component = dag.make_example_gen(str(data_root), spans, configs.PipelineOptions(code_fingerprint="test"))
    exec_properties = {
        key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
        for key, value in component.exec_properties.items()
        if value is not None
    }
    exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = proto_utils.proto_to_json(
        example_gen.span_window_config(
            spans[0],
            spans[-1],
            str(SCHEMA_PATH),
            "test",
            range_bytes=range_bytes,
            span_examples_dir=str(span_examples_dir or ""),
            source_hashes_dir=str(source_hashes_dir or ""),
        )
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
        assert names == sorted(f"span-4-0-{example_gen.range_file_name(0, file_range)}" for file_range in ranges)
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
    folders = [str(tmp_path / "entry" / f"Split-{name}") for name in rule.names]
    for folder in folders + [str(tmp_path / "temp")]:
        tf.io.gfile.makedirs(folder)
    types = span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))
    # A retried bundle: the same range twice, as a runner that reruns a lost worker's work gives it.
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create([(0, 0, file_range, str(tmp_path / "entry")), (0, 0, file_range, str(tmp_path / "entry"))])
            | beam.ParDo(example_gen.SplitAndWriteRange(types, rule, str(tmp_path / "temp")))
        )
    written = collections.Counter(record for folder in folders for record in _records(tf.io.gfile.glob(f"{folder}/*")))
    assert written == collections.Counter(span_chunks.read_range(file_range, types))
    assert [len(tf.io.gfile.listdir(folder)) for folder in folders] == [1, 1]
    assert tf.io.gfile.listdir(str(tmp_path / "temp")) == []


def _split_records(examples):
    """Split -> Counter of the artifact's records, and split -> {file name: inode}."""
    records, inodes = {}, {}
    for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
        folder = f"{examples.uri}/Split-{split}"
        names = sorted(tf.io.gfile.listdir(folder))
        records[split] = collections.Counter(_records(f"{folder}/{name}" for name in names))
        inodes[split] = {name: os.stat(f"{folder}/{name}").st_ino for name in names}
    return records, inodes


def _kept(examples):
    from pipeline.components.artifacts import SPAN_EXAMPLES_PROPERTY

    recorded = json.loads(examples.get_string_custom_property(SPAN_EXAMPLES_PROPERTY))
    return {int(span): entry["single_split"] for span, entry in recorded.items()}


def test_kept_spans_are_linked_into_the_next_window_not_read_again(tmp_path):
    data_root = tmp_path / "data"
    hour_ago = time.time() - 3600
    for span in (1, 2, 3):
        path = write_csv(data_root / f"span-{span}" / "data.csv", [trip(fare=float(5 + span + i % 9), trip_seconds=60 * (i + span)) for i in range(ROWS)])
        os.utime(path, (hour_ago, hour_ago))  # settled: its hash is kept
    store, hashes = tmp_path / "SpanExamples", tmp_path / "SourceHashes"
    first = _executor_run(tmp_path / "first", [1, 2], span_examples_dir=store, data_root=data_root, source_hashes_dir=hashes)
    assert {span: entry["reused"] for span, entry in _kept(first).items()} == {1: False, 2: False}
    # Each span file's hash is kept; the next window reads the kept hashes of spans 1 and 2.
    assert sorted(read_kept_hash(str(hashes / name))["path"] for name in os.listdir(hashes)) == [
        str(data_root / f"span-{span}" / "data.csv") for span in (1, 2)
    ]
    second = _executor_run(tmp_path / "second", [1, 2, 3], span_examples_dir=store, data_root=data_root, source_hashes_dir=hashes)
    assert len(os.listdir(hashes)) == 3
    kept = _kept(second)
    assert {span: entry["reused"] for span, entry in kept.items()} == {1: True, 2: True, 3: False}
    assert [kept[span]["key"] for span in (1, 2)] == [_kept(first)[span]["key"] for span in (1, 2)]
    # The same examples in the same splits as a window read whole without a kept folder.
    unkept = _executor_run(tmp_path / "unkept", [1, 2, 3], data_root=data_root)
    assert second.get_string_custom_property(SPAN_FILES_PROPERTY) == unkept.get_string_custom_property(SPAN_FILES_PROPERTY)
    records, inodes = _split_records(second)
    assert records == _split_records(unkept)[0]
    assert sum(sum(counts.values()) for counts in records.values()) == 3 * ROWS
    # Each file of the window is a link to its span's kept file, not a copy.
    for split, by_name in inodes.items():
        for name, inode in by_name.items():
            span = int(name.split("-")[1])
            kept_name = name.split("-", 3)[3]
            assert os.stat(store / kept[span]["key"] / f"Split-{split}" / kept_name).st_ino == inode
    assert sorted(os.listdir(store)) == sorted(entry["key"] for entry in kept.values())
    # Removing the first window's artifact leaves the kept files and the second window whole.
    shutil.rmtree(first.uri)
    assert _split_records(second)[0] == records


def test_a_kept_span_that_is_incomplete_or_whose_file_changed_is_read_again(tmp_path):
    data_root = tmp_path / "data"
    rows = [trip(fare=float(7 + i % 5)) for i in range(ROWS)]
    write_csv(data_root / "span-1" / "data.csv", rows)
    store = tmp_path / "SpanExamples"
    first = _executor_run(tmp_path / "first", [1], span_examples_dir=store, data_root=data_root)
    key = _kept(first)[1]["key"]
    # A write that stopped before its manifest: the entry is written again, under the same key.
    os.remove(store / key / example_gen.MANIFEST_FILE)
    again = _executor_run(tmp_path / "again", [1], span_examples_dir=store, data_root=data_root)
    assert _kept(again)[1] == {"key": key, "reused": False}
    # A kept file removed by hand: written again too.
    name = next(iter(os.listdir(store / key / f"Split-{configs.TRAIN_SPLIT}")))
    os.remove(store / key / f"Split-{configs.TRAIN_SPLIT}" / name)
    third = _executor_run(tmp_path / "third", [1], span_examples_dir=store, data_root=data_root)
    assert _kept(third)[1] == {"key": key, "reused": False}
    assert _split_records(third)[0] == _split_records(first)[0]
    # A file delivered again with another trip: another key, and the new trip is in the examples.
    write_csv(data_root / "span-1" / "data.csv", rows + [trip(fare=99.0)])
    changed = _executor_run(tmp_path / "changed", [1], span_examples_dir=store, data_root=data_root)
    assert _kept(changed)[1]["key"] != key and not _kept(changed)[1]["reused"]
    assert sum(sum(counts.values()) for counts in _split_records(changed)[0].values()) == ROWS + 1


def test_the_kept_key_follows_what_the_examples_depend_on():
    from tfx.proto import example_gen_pb2

    options = configs.PipelineOptions()
    rule = example_gen.split_rule(
        example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]), dag.example_split_config(options)
    )
    other_rule = example_gen.split_rule(
        example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]),
        dag.example_split_config(configs.PipelineOptions(train_buckets=options.train_buckets + 1)),
    )
    base = (["/data/span-3/a.csv"], ["f" * 64], 0, rule, "s" * 64, 1024, "code")
    key = example_gen.span_examples_key(*base)
    # Where the data root is does not count; the span folder does (it seeds the example order).
    assert example_gen.span_examples_key(["/elsewhere/span-3/a.csv"], *base[1:]) == key
    changed = [
        (["/data/span-4/a.csv"], *base[1:]),
        (base[0], ["e" * 64], *base[2:]),
        (*base[:2], 1, *base[3:]),
        (*base[:3], other_rule, *base[4:]),
        (*base[:4], "t" * 64, *base[5:]),
        (*base[:5], 2048, base[6]),
        (*base[:6], "other code"),
    ]
    assert len({example_gen.span_examples_key(*arguments) for arguments in changed} | {key}) == len(changed) + 1
