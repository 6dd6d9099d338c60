"""The real ExampleGen and StatisticsGen (LocalDagRunner) on CSV spans with empty cells."""
import collections
import hashlib
import json

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import v1 as tfx

from pipeline import component_ids, configs, dag
from pipeline.components.artifacts import SPAN_FILES_PROPERTY, SPANS_PROPERTY
from pipeline.ops import run_summary
from pipeline.spans import file_sha256
from pipeline.validation import span_rows
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


def test_the_shipped_spans_land_in_the_splits_the_row_reader_gave_them(tmp_path):
    spans = [1, 2, 3, 4]
    examples = _run(DATA_ROOT, tmp_path, spans, with_statistics=False)
    expected = _row_reader_splits(spans)
    for split, counts in expected.items():
        pattern = f"{examples.uri}/Split-{split}/*.gz"
        # The records themselves are the deterministic bytes, not just the same examples.
        written = collections.Counter(
            record.numpy() for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
        )
        assert written == counts, f"split {split}: {sum(written.values())} examples, the row reader's split has {sum(counts.values())}"
    assert sum(expected[configs.EVAL_SPLIT].values()) == 2988  # docs/data_checks.md: the eval split since absent cells
    properties = examples.custom_properties
    assert properties[SPANS_PROPERTY].string_value == "1,2,3,4"
    recorded = json.loads(properties[SPAN_FILES_PROPERTY].string_value)
    assert recorded == {str(DATA_ROOT / f"span-{span}" / "data.csv"): file_sha256(str(DATA_ROOT / f"span-{span}" / "data.csv")) for span in spans}
