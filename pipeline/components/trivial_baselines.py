"""TrivialBaselines: what a model that learned nothing would score on the eval split.

Fixed floors mean little on their own: on data where two thirds of trips are cash and carry
no recorded tip, the rule "payment_type is Credit Card" already scores AUC 0.93. So this step
computes, in Beam, on the very eval trips the Evaluator scores (the eval split's raw trips put
through the Transform graph, so the label and the features are the model's own):

- the majority-class accuracy: always answer the class most trips in the train split have;
- the best single-feature rule's AUC: for each of the model's discrete inputs (vocabulary ids,
  quantile and coordinate buckets, hour, day, month, the joined calendar columns), score each
  trip with the share of big tippers among train trips with the same value; the highest eval
  AUC of these lookup tables.

The baselines depend on the examples and the Transform graph only, not on the model, so the
step runs beside the Trainer and the ModelGate (`pipeline.components.model_gate`) reads them.
Its output (`artifacts.TrivialBaselineScores`) holds BASELINES_FILE and records the headline
numbers as custom properties.
"""
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
import tensorflow_transform as tft
from apache_beam.utils import shared as beam_shared
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from modules import features
from pipeline import configs
from pipeline.components import artifacts

# Counts per (split, feature, value): [trips, big tippers].
_Counts = Dict[Tuple[str, str, int], List[int]]

# Trips read, transformed and counted at once: enough that numpy, not Python, carries the cost.
_BATCH = 16384


class _LoadedGraph:
    """The Transform graph's parse-and-transform function, shared by the DoFns of one process."""

    def __init__(self, transform_graph_uri: str):
        output = tft.TFTransformOutput(transform_graph_uri)
        layer, spec = output.transform_features_layer(), output.raw_feature_spec()
        self.transform = tf.function(
            lambda serialized: layer(tf.io.parse_example(serialized, spec)),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )


class _ReadBatches(beam.DoFn):
    """Reads one TFRecord file of serialized trips (gzipped where its name ends in ".gz", as
    ExampleGen writes them) in batches of `_BATCH`, with TensorFlow's record reader.

    Beam's `ReadFromTFRecord` reads each record in Python, checksum included, and makes it an
    element of its own, which a batching step then gathers again: that was about 44 % of the
    step's time at 200,000 trips (docs/scale.md). Here a file is one element, so the files are
    what the runner spreads over its workers (ExampleGen writes one per range of its input).
    TensorFlow's record iterator keeps the run's peak memory where it was; a `tf.data` pipeline
    in its place raised it by 85-135 MiB at 1,000,000 trips.
    """

    def process(self, path: str) -> Iterable[List[bytes]]:
        options = tf.io.TFRecordOptions(compression_type="GZIP" if path.endswith(".gz") else "")
        batch: List[bytes] = []
        for record in tf.compat.v1.io.tf_record_iterator(path, options):
            batch.append(record)
            if len(batch) == _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


class _TransformBatch(beam.DoFn):
    """Puts a (split, batch of raw serialized trips) through the Transform graph; yields the
    split and the integer outputs as an Arrow RecordBatch of one list column per output (one
    list per trip). Float outputs are left out: the count never reads them.

    The raw trips are parsed with the graph's own raw feature spec and transformed by its
    Keras layer in one TensorFlow call per batch, as the Trainer and the serving signatures do.
    Each split has its own instance, so the reads, the transform and the count of a split fuse
    into one stage that streams (with a Flatten of the two splits before the transform, the
    step's peak was 3,462 MiB at 1,000,000 trips, against 1,688 MiB now). The instances
    share one loaded graph per process (`shared`, Beam's `Shared`), so it is loaded once.
    """

    def __init__(self, transform_graph_uri: str, shared: beam_shared.Shared):
        self._transform_graph_uri = transform_graph_uri
        self._shared = shared
        self._transform = None

    def setup(self) -> None:
        uri = self._transform_graph_uri
        self._transform = self._shared.acquire(lambda: _LoadedGraph(uri)).transform

    def process(self, split_and_batch: Tuple[str, List[bytes]]) -> Iterable[Tuple[str, pa.RecordBatch]]:
        split, serialized = split_and_batch
        outputs = self._transform(tf.constant(serialized))
        names = sorted(name for name, tensor in outputs.items() if tensor.dtype.is_integer)
        yield split, pa.RecordBatch.from_arrays([_as_lists(name, outputs[name]) for name in names], names)


def _as_lists(name: str, tensor: tf.Tensor) -> pa.ListArray:
    """A dense [trips] or [trips, n] tensor as a list column: each trip's values."""
    if not isinstance(tensor, tf.Tensor) or tensor.shape.rank not in (1, 2):
        raise ValueError(f"the Transform graph's output {name!r} is not a dense tensor of one row per trip: {tensor!r}")
    values = tensor.numpy()
    width = 1 if values.ndim == 1 else values.shape[1]
    offsets = np.arange(values.shape[0] + 1, dtype=np.int32) * width
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.reshape(-1)))


class _CountBatch(beam.DoFn):
    """Counts a (split, batch of transformed trips) per (split, feature, value): [trips, big
    tippers].

    The batch is an Arrow RecordBatch of list columns, counted with numpy, so the cost per
    trip is not a Python loop over its features. A trip's value of a feature is the first of
    its integer values; a trip without one is not counted for that feature. The split's totals
    are keyed by feature "" and value 0.
    """

    def process(self, split_and_batch: Tuple[str, pa.RecordBatch]) -> Iterable[Tuple[Tuple[str, str, int], Tuple[int, int]]]:
        split, batch = split_and_batch
        labels = _labels(batch)
        yield (split, "", 0), (len(labels), int(labels.sum()))
        for name, column in zip(batch.schema.names, batch.columns):
            if name == features.LABEL_KEY or not _is_integer_list(column.type):
                continue
            rows, values = _first_values(column)
            if not len(rows):
                continue
            distinct, position = np.unique(values, return_inverse=True)
            trips = np.bincount(position, minlength=len(distinct))
            positives = np.bincount(position, weights=labels[rows], minlength=len(distinct))
            for value, count, big in zip(distinct.tolist(), trips.tolist(), positives.tolist()):
                yield (split, name, value), (count, int(big))


def _is_integer_list(column_type: pa.DataType) -> bool:
    listed = pa.types.is_list(column_type) or pa.types.is_large_list(column_type)
    return listed and pa.types.is_integer(column_type.value_type)


def _first_values(column: pa.ListArray) -> Tuple[np.ndarray, np.ndarray]:
    """(rows that hold a value, each such row's first value) of a list column."""
    parents = np.asarray(pc.list_parent_indices(column))
    flat = np.asarray(pc.list_flatten(column))
    rows, first = np.unique(parents, return_index=True)
    return rows, flat[first]


def _labels(batch: pa.RecordBatch) -> np.ndarray:
    """The label of each trip of the batch; every trip must carry exactly one."""
    index = batch.schema.get_field_index(features.LABEL_KEY)
    column = batch.column(index) if index >= 0 else None
    if column is None or not _is_integer_list(column.type):
        raise ValueError(f"the Transform graph's outputs carry no integer label {features.LABEL_KEY!r}: no baseline can be computed")
    lengths = np.asarray(pc.fill_null(pc.list_value_length(column), 0))
    if (lengths != 1).any():
        row = int(np.flatnonzero(lengths != 1)[0])
        raise ValueError(
            f"a transformed trip has {int(lengths[row])} values of the label {features.LABEL_KEY!r} (one is needed): "
            "no baseline can be computed"
        )
    return np.asarray(pc.list_flatten(column)).astype(np.int64)


def _sum_pairs(pairs: Iterable[Tuple[int, int]]) -> Tuple[int, int]:
    trips = positives = 0
    for count, label in pairs:
        trips += count
        positives += label
    return trips, positives


def lookup_auc(train: Dict[int, List[int]], evaluation: Dict[int, List[int]], fallback_rate: float) -> Optional[float]:
    """The eval AUC of scoring each trip with the train share of big tippers for its value.

    Args:
        train: value -> [trips, big tippers] among train trips.
        evaluation: value -> [trips, big tippers] among eval trips.
        fallback_rate: The score of a value no train trip has (the train split's share).

    Returns:
        The AUC with ties counted half (as a rank statistic), or None when the eval trips hold
        only one class.
    """
    by_score: Dict[float, List[int]] = {}
    for value, (trips, positives) in evaluation.items():
        seen = train.get(value)
        score = seen[1] / seen[0] if seen else fallback_rate
        group = by_score.setdefault(score, [0, 0])
        group[0] += positives
        group[1] += trips - positives
    total_positives = sum(group[0] for group in by_score.values())
    total_negatives = sum(group[1] for group in by_score.values())
    if not total_positives or not total_negatives:
        return None
    area = 0.0
    negatives_below = 0
    for score in sorted(by_score):
        positives, negatives = by_score[score]
        area += positives * (negatives_below + 0.5 * negatives)
        negatives_below += negatives
    return area / (total_positives * total_negatives)


def baselines_from_counts(counts: _Counts) -> Dict[str, Any]:
    """The trivial baselines of the eval split from the per-value counts of both splits.

    Returns:
        {"eval_trips", "majority_class", "majority_accuracy", "best_single_feature",
        "best_single_feature_auc", "single_feature_auc": {feature: auc}}.

    Raises:
        ValueError: when a split has no trip, or the eval trips hold one class only (no AUC).
    """
    tables: Dict[str, Dict[str, Dict[int, List[int]]]] = {configs.TRAIN_SPLIT: {}, configs.EVAL_SPLIT: {}}
    totals: Dict[str, List[int]] = {}
    for (split, name, value), pair in counts.items():
        if not name:
            totals[split] = pair
        else:
            tables[split].setdefault(name, {})[value] = pair
    for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
        if not totals.get(split, [0])[0]:
            raise ValueError(f"the examples' {split} split has no trip: no baseline can be computed")
    train_trips, train_positives = totals[configs.TRAIN_SPLIT]
    eval_trips, eval_positives = totals[configs.EVAL_SPLIT]
    majority = 1 if train_positives * 2 > train_trips else 0
    majority_accuracy = (eval_positives if majority else eval_trips - eval_positives) / eval_trips
    fallback = train_positives / train_trips
    aucs = {
        name: lookup_auc(tables[configs.TRAIN_SPLIT].get(name, {}), table, fallback)
        for name, table in sorted(tables[configs.EVAL_SPLIT].items())
    }
    judged = {name: auc for name, auc in aucs.items() if auc is not None}
    if not judged:
        raise ValueError(f"the eval split's {eval_trips} trips hold one class only: AUC is undefined")
    best = max(judged, key=lambda name: judged[name])
    return {
        "eval_trips": eval_trips,
        "majority_class": majority,
        "majority_accuracy": majority_accuracy,
        "best_single_feature": best,
        "best_single_feature_auc": judged[best],
        "single_feature_auc": judged,
    }


def compute_baselines(
    examples: standard_artifacts.Examples, transform_graph_uri: str, pipeline: beam.Pipeline, work_path: str
) -> Dict[str, Any]:
    """Puts the train and eval trips of `examples` through the Transform graph, counts them per
    discrete value in Beam and returns the baselines (`baselines_from_counts`). The Beam job
    writes its counts to `<work_path>.counts-*`, read back and removed here."""
    counts_prefix = work_path + ".counts"
    with pipeline:
        per_split = []
        graph = beam_shared.Shared()
        for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
            files = sorted(tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
            # Read, transform and count a split's files in one fused stage, after the files are
            # spread over the workers; only the counts are flattened.
            per_split.append(
                pipeline
                | f"Files{split}" >> beam.Create(files)
                | f"Spread{split}" >> beam.Reshuffle()
                | f"Read{split}" >> beam.ParDo(_ReadBatches())
                | f"Tag{split}" >> beam.Map(lambda batch, split=split: (split, batch))
                | f"Transform{split}" >> beam.ParDo(_TransformBatch(transform_graph_uri, graph))
                | f"Count{split}" >> beam.ParDo(_CountBatch())
            )
        _ = (
            per_split
            | "Both" >> beam.Flatten()
            | "Sum" >> beam.CombinePerKey(_sum_pairs)
            | "Json" >> beam.Map(lambda item: json.dumps([list(item[0]), list(item[1])]))
            | "Write" >> beam.io.WriteToText(counts_prefix, shard_name_template="-SSSSS-of-NNNNN")
        )
    counts: _Counts = {}
    for path in tf.io.gfile.glob(counts_prefix + "-*"):
        with tf.io.gfile.GFile(path) as lines:
            for line in lines:
                key, pair = json.loads(line)
                counts[tuple(key)] = pair
        tf.io.gfile.remove(path)
    return baselines_from_counts(counts)


@component(use_beam=True)
def TrivialBaselines(
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    baselines: OutputArtifact[artifacts.TrivialBaselineScores],
    code_fingerprint: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Computes the eval split's trivial baselines (see the module docstring) into `baselines`."""
    del code_fingerprint  # part of the cache key only
    tf.io.gfile.makedirs(baselines.uri)
    scores = compute_baselines(examples, transform_graph.uri, beam_pipeline, os.path.join(baselines.uri, "baselines"))
    with tf.io.gfile.GFile(os.path.join(baselines.uri, artifacts.BASELINES_FILE), "w") as baselines_file:
        json.dump(scores, baselines_file, indent=1, sort_keys=True)
    baselines.set_string_custom_property(artifacts.BEST_SINGLE_FEATURE_PROPERTY, scores["best_single_feature"])
    baselines.set_float_custom_property(artifacts.BEST_SINGLE_FEATURE_AUC_PROPERTY, scores["best_single_feature_auc"])
    baselines.set_float_custom_property(artifacts.MAJORITY_ACCURACY_PROPERTY, scores["majority_accuracy"])
