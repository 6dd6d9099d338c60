"""The trivial baselines' count of the transformed trips, against a per-trip count in plain Python."""
import glob
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.types import standard_artifacts
from tfx_bsl.coders import example_coder

from modules import features
from pipeline import configs
from pipeline.components.trivial_baselines import _CountBatch, baselines_from_counts, compute_baselines

LABEL = features.LABEL_KEY


def _example(rng: np.random.Generator) -> tf.train.Example:
    """A transformed trip with the shapes the count must handle: one value, several values (the
    first counts), an empty value list and an absent feature (neither counts), and floats (never
    counted)."""
    example = tf.train.Example()
    feature = example.features.feature
    hour = int(rng.integers(0, 24))
    card = int(rng.integers(0, 2))
    feature[LABEL].int64_list.value.append(int(card and rng.random() < 0.6 or rng.random() < 0.05))
    feature["trip_start_hour_xf"].int64_list.value.append(hour)
    if rng.random() < 0.8:  # absent on a fifth of the trips
        feature["payment_type_xf"].int64_list.value.append(card)
    if rng.random() < 0.5:
        feature["company_xf"].int64_list.value.extend([int(rng.integers(0, 9)), 99])
    else:
        feature["company_xf"].int64_list.SetInParent()  # present, no value
    feature["fare_xf"].float_list.value.append(float(rng.normal()))
    return example


def _python_counts(examples_by_split):
    counts = {}
    for split, examples in examples_by_split.items():
        for example in examples:
            label = example.features.feature[LABEL].int64_list.value[0]
            keys = [(split, "", 0)]
            for name, value in example.features.feature.items():
                if name != LABEL and value.WhichOneof("kind") == "int64_list" and value.int64_list.value:
                    keys.append((split, name, int(value.int64_list.value[0])))
            for key in keys:
                pair = counts.setdefault(key, [0, 0])
                pair[0] += 1
                pair[1] += label
    return counts


def _record_batches(examples, per_batch=700):
    """The examples decoded into Arrow batches, as the ModelGate's transform step yields them."""
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    serialized = [example.SerializeToString() for example in examples]
    return [decoder.DecodeBatch(serialized[start : start + per_batch]) for start in range(0, len(serialized), per_batch)]


def _batch_counts(examples_by_split):
    counts = {}
    for split, examples in examples_by_split.items():
        count = _CountBatch()
        for batch in _record_batches(examples):
            for key, (trips, big) in count.process((split, batch)):
                pair = counts.setdefault(key, [0, 0])
                pair[0] += trips
                pair[1] += big
    return counts


def test_the_batch_count_equals_a_count_trip_by_trip():
    rng = np.random.default_rng(3)
    # Many batches per split, so the counts are summed across batches.
    examples = {configs.TRAIN_SPLIT: [_example(rng) for _ in range(40_000)], configs.EVAL_SPLIT: [_example(rng) for _ in range(9_000)]}
    expected = _python_counts(examples)
    assert _batch_counts(examples) == expected
    got = baselines_from_counts(expected)
    assert set(got["single_feature_auc"]) == {"trip_start_hour_xf", "payment_type_xf", "company_xf"}
    assert got["eval_trips"] == 9_000


def test_a_trip_without_its_label_fails_the_count():
    rng = np.random.default_rng(4)
    eval_examples = [_example(rng) for _ in range(50)]
    del eval_examples[17].features.feature[LABEL]
    with pytest.raises(ValueError, match=f"a transformed trip has 0 values of the label '{LABEL}'"):
        _batch_counts({configs.EVAL_SPLIT: eval_examples})


def _only(pattern: str) -> str:
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_the_beam_count_of_raw_trips_through_the_transform_graph(small_pipeline_run, tmp_path, monkeypatch):
    """compute_baselines on the run's raw examples and Transform graph, against each raw trip
    put through the same graph alone and counted in plain Python."""
    from pipeline.components import trivial_baselines

    loads = []

    class CountedGraph(trivial_baselines._LoadedGraph):
        def __init__(self, uri):
            loads.append(uri)
            super().__init__(uri)

    monkeypatch.setattr(trivial_baselines, "_LoadedGraph", CountedGraph)
    root = small_pipeline_run["output_dir"] / "pipeline_root"
    examples = standard_artifacts.Examples()
    examples.uri = _only(str(root / "CsvExampleGen" / "examples" / "*"))
    examples.split_names = '["train", "eval"]'
    graph = _only(str(root / "Transform" / "transform_graph" / "*"))
    output = tft.TFTransformOutput(graph)
    spec = output.raw_feature_spec()
    transformed_by_split = {}
    for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
        files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        assert len(files) > 1  # several files, so Beam sums the counts of several bundles
        trips = []
        for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            outputs = output.transform_raw_features(tf.io.parse_example(tf.reshape(serialized, [1]), spec))
            example = tf.train.Example()
            for name, value in outputs.items():
                if value.dtype == tf.int64:
                    example.features.feature[name].int64_list.value.append(int(tf.reshape(value, [-1])[0]))
            trips.append(example)
        transformed_by_split[split] = trips
    expected = _python_counts(transformed_by_split)
    report = str(tmp_path / "baselines")
    got = compute_baselines(examples, graph, beam.Pipeline(), report)
    assert got == baselines_from_counts(expected)
    assert got["eval_trips"] == len(transformed_by_split[configs.EVAL_SPLIT]) > 0
    assert features.transformed_name(features.PAYMENT_TYPE_KEY) in got["single_feature_auc"]
    assert not tf.io.gfile.glob(report + ".counts-*")  # the shards are read and removed
    # Each split has its own transform step, and both share one loaded graph.
    assert loads == [graph]


def test_split_files_written_without_compression_count_the_same(small_pipeline_run, tmp_path):
    """An Examples artifact whose files are plain TFRecords (another ExampleGen's, no ".gz")
    gives the same baselines as ExampleGen's gzipped files of the same trips."""
    root = small_pipeline_run["output_dir"] / "pipeline_root"
    gzipped = standard_artifacts.Examples()
    gzipped.uri = _only(str(root / "CsvExampleGen" / "examples" / "*"))
    gzipped.split_names = '["train", "eval"]'
    plain = standard_artifacts.Examples()
    plain.uri = str(tmp_path / "plain")
    plain.split_names = gzipped.split_names
    for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
        files = sorted(tf.io.gfile.glob(os.path.join(gzipped.uri, f"Split-{split}", "*")))
        assert files and all(path.endswith(".gz") for path in files)
        os.makedirs(os.path.join(plain.uri, f"Split-{split}"))
        for number, path in enumerate(files):
            with tf.io.TFRecordWriter(os.path.join(plain.uri, f"Split-{split}", f"data_tfrecord-{number:05d}")) as writer:
                for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                    writer.write(record.numpy())
    graph = _only(str(root / "Transform" / "transform_graph" / "*"))
    expected = compute_baselines(gzipped, graph, beam.Pipeline(), str(tmp_path / "gzipped"))
    assert compute_baselines(plain, graph, beam.Pipeline(), str(tmp_path / "plain_baselines")) == expected
    assert expected["eval_trips"] > 0
