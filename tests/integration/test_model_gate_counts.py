"""The ModelGate's Beam count of the transformed trips, against a per-trip count in plain Python."""
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from modules import features
from pipeline import configs
from pipeline.components.model_gate import baselines_from_counts, compute_baselines

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


def _artifact(tmp_path, examples_by_split, files_per_split=3):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "transformed")
    artifact.split_names = '["train", "eval"]'
    for split, examples in examples_by_split.items():
        folder = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(folder)
        for index in range(files_per_split):
            with tf.io.TFRecordWriter(os.path.join(folder, f"part-{index}.gz"), options="GZIP") as writer:
                for example in examples[index::files_per_split]:
                    writer.write(example.SerializeToString())
    return artifact


def test_the_beam_count_equals_a_count_trip_by_trip(tmp_path):
    rng = np.random.default_rng(3)
    # More trips than one batch holds, so batches are summed across bundles and files.
    examples = {configs.TRAIN_SPLIT: [_example(rng) for _ in range(40_000)], configs.EVAL_SPLIT: [_example(rng) for _ in range(9_000)]}
    expected = _python_counts(examples)
    report = str(tmp_path / "baselines")
    got = compute_baselines(_artifact(tmp_path, examples), beam.Pipeline(), report)
    assert got == baselines_from_counts(expected)
    assert set(got["single_feature_auc"]) == {"trip_start_hour_xf", "payment_type_xf", "company_xf"}
    assert got["eval_trips"] == 9_000
    assert not tf.io.gfile.glob(report + ".counts-*")  # the shards are read and removed


def test_a_trip_without_its_label_fails_the_count(tmp_path):
    rng = np.random.default_rng(4)
    eval_examples = [_example(rng) for _ in range(50)]
    del eval_examples[17].features.feature[LABEL]
    examples = {configs.TRAIN_SPLIT: [_example(rng) for _ in range(50)], configs.EVAL_SPLIT: eval_examples}
    with pytest.raises(Exception, match=f"a transformed trip has 0 values of the label '{LABEL}'"):
        compute_baselines(_artifact(tmp_path, examples, files_per_split=1), beam.Pipeline(), str(tmp_path / "baselines"))
