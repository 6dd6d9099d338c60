"""The Evaluators' metrics, counted in one pass over each trip.

TFMA's own ExampleCount, AUC, BinaryAccuracy, Precision, Recall, MeanLabel and MeanPrediction
each add every trip to every slice in a combiner of their own, and three of those combiners
unpack the trip's label, prediction and weight again (`to_label_prediction_example_weight`, a
third of the Evaluator's time). Here one combiner per model unpacks each trip once and keeps
what all seven need: the count of trips, AUC's calibration histogram, the confusion counts at
0.5 and the sums of labels, predictions and weights. The metrics keep TFMA's names, definitions
and thresholds:

- `OnePassExampleCount` is the number of trips, as TFMA's unweighted ExampleCount (weighted
  counts are refused);
- `OnePassAUC` is TFMA's AUC, its curve and summation computed by TFMA from a histogram this
  combiner builds bucket for bucket as TFMA's calibration histogram does; the confusion matrices
  at its 10,000 thresholds are read off the histogram with numpy (`matrices_from_histogram`),
  where TFMA loops over the thresholds in Python for each slice and model;
- `OnePassBinaryAccuracy`, `OnePassPrecision` and `OnePassRecall` count a trip as predicted
  positive when its prediction is above 0.5, as TFMA's confusion matrices do (not from the
  histogram, whose buckets are 0.0001 wide and would blur the threshold);
- `OnePassMeanLabel` and `OnePassMeanPrediction` are the weighted sums over the weight.

`tests/integration/test_eval_metrics.py` runs TFMA on the same trips with its own metrics and
with these, and compares every value on every slice.
"""
import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration,
    calibration_histogram,
    confusion_matrix_metrics,
    example_count,
    metric_types,
    metric_util,
)

# The confusion counts' threshold: TFMA's default for BinaryAccuracy, Precision and Recall.
THRESHOLD = 0.5
_COUNTS_NAME = "_taxi_trip_counts"


@dataclasses.dataclass
class TripCounts:
    """The number of trips, and weighted confusion counts at `THRESHOLD` and weighted sums, over
    one slice's trips (the sums are the histogram's, added up when the pass ends)."""

    trips: float = 0.0
    true_positives: float = 0.0
    false_positives: float = 0.0
    true_negatives: float = 0.0
    false_negatives: float = 0.0
    labels: float = 0.0
    predictions: float = 0.0
    weights: float = 0.0

    def merge(self, other: "TripCounts") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class _Accumulator:
    """A calibration histogram (bucket -> [weighted labels, weighted predictions, weight]) and
    the counts."""

    __slots__ = ("buckets", "counts")

    def __init__(self):
        self.buckets: Dict[int, List[float]] = {}
        self.counts = TripCounts()


class _TripMetricsCombiner(beam.CombineFn):
    """Adds each trip once to the histogram and the counts of one model's output."""

    def __init__(self, histogram_key: metric_types.PlotKey, counts_key: metric_types.MetricKey, eval_config, aggregation_type, class_weights, example_weighted: bool):
        self._histogram_key = histogram_key
        self._counts_key = counts_key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted
        self._num_buckets = calibration_histogram.DEFAULT_NUM_BUCKETS
        # The shortcut of `_plain_trip` applies only where TFMA would do nothing more than look the
        # trip's label and prediction up: no output name, sub key, aggregation, class or example weights.
        self._plain = not (
            counts_key.output_name or counts_key.sub_key or aggregation_type or class_weights or example_weighted
        )
        self._label_key = _label_key(eval_config, counts_key.model_name)

    def _bucket(self, prediction: float) -> int:
        # TFMA's buckets over [0, 1]: 0 below, num_buckets + 1 at or above 1, truncated between.
        index = prediction * self._num_buckets + 1
        if index < 0:
            return 0
        if index >= self._num_buckets + 1:
            return self._num_buckets + 1
        return int(index)

    def create_accumulator(self) -> _Accumulator:
        return _Accumulator()

    def _plain_trip(self, element: metric_types.StandardMetricInputs) -> Optional[Tuple[float, float]]:
        """The trip's label and prediction, when it holds one of each, the label 0 or 1, where
        TFMA keeps them (by model name with several models); None for anything else, which
        `_trip_parts` leaves to TFMA. TFMA would yield them with weight 1."""
        if not self._plain:
            return None
        model_name = self._counts_key.model_name
        label = element.label
        prediction = element.prediction
        if isinstance(label, Mapping):
            if not model_name or self._label_key in label:
                return None
            label = label.get(model_name)
        if model_name:
            if not isinstance(prediction, Mapping):
                return None
            prediction = prediction.get(model_name)
        if not (isinstance(label, np.ndarray) and isinstance(prediction, np.ndarray)):
            return None
        if label.size != 1 or prediction.size != 1 or label.dtype.kind not in "iuf" or prediction.dtype.kind != "f":
            return None
        label_value = float(label.item())
        if label_value not in (0.0, 1.0):
            return None
        return label_value, float(prediction.item())

    def _trip_parts(self, element: metric_types.StandardMetricInputs) -> Iterable[Tuple[float, float, float]]:
        """(label, prediction, weight) of each part of a trip, as TFMA's
        `to_label_prediction_example_weight` yields them with fractional labels: a trip is split
        into a label-0 and a label-1 part weighted by its label, and a part of weight 0 is not
        yielded. A plain trip (one label of 0 or 1, one prediction) is read directly: TFMA's
        function took 15 % of the Evaluator's time on it."""
        plain = self._plain_trip(element)
        if plain is not None:
            return ((plain[0], plain[1], 1.0),)
        return (
            (float(label), float(prediction), float(weight))
            for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element,
                eval_config=self._eval_config,
                model_name=self._counts_key.model_name,
                output_name=self._counts_key.output_name,
                sub_key=self._counts_key.sub_key,
                fractional_labels=True,
                flatten=True,
                aggregation_type=self._aggregation_type,
                class_weights=self._class_weights,
                example_weighted=self._example_weighted,
            )
        )

    def add_input(self, accumulator: _Accumulator, element: metric_types.StandardMetricInputs) -> _Accumulator:
        counts = accumulator.counts
        buckets = accumulator.buckets
        counts.trips += 1
        for label, prediction, weight in self._trip_parts(element):
            weighted_label = label * weight
            weighted_prediction = prediction * weight
            index = self._bucket(prediction)
            bucket = buckets.get(index)
            if bucket is None:
                buckets[index] = [weighted_label, weighted_prediction, weight]
            else:
                bucket[0] += weighted_label
                bucket[1] += weighted_prediction
                bucket[2] += weight
            if label == 1.0:
                if prediction > THRESHOLD:
                    counts.true_positives += weight
                else:
                    counts.false_negatives += weight
            elif prediction > THRESHOLD:
                counts.false_positives += weight
            else:
                counts.true_negatives += weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Accumulator]) -> _Accumulator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            for index, (labels, predictions, weights) in accumulator.buckets.items():
                bucket = result.buckets.setdefault(index, [0.0, 0.0, 0.0])
                bucket[0] += labels
                bucket[1] += predictions
                bucket[2] += weights
            result.counts.merge(accumulator.counts)
        return result

    def extract_output(self, accumulator: _Accumulator) -> Dict[Any, Any]:
        histogram = [
            calibration_histogram.Bucket(index, labels, predictions, weights)
            for index, (labels, predictions, weights) in sorted(accumulator.buckets.items())
        ]
        counts = dataclasses.replace(
            accumulator.counts,
            labels=sum(bucket.weighted_labels for bucket in histogram),
            predictions=sum(bucket.weighted_predictions for bucket in histogram),
            weights=sum(bucket.weighted_examples for bucket in histogram),
        )
        return {self._histogram_key: histogram, self._counts_key: counts}


def _label_key(eval_config, model_name: str) -> str:
    """The label key of the model spec TFMA would read for `model_name` ("" when none)."""
    specs = eval_config.model_specs if eval_config else []
    for spec in specs:
        if (spec.name if len(specs) > 1 else "") == model_name:
            return spec.label_key
    return ""


def _trip_pass(eval_config, model_name: str, output_name: str, sub_key, aggregation_type, class_weights, example_weighted: bool) -> metric_types.MetricComputation:
    """The one pass of a model's output. Every metric here asks for it with the same keys, so
    TFMA runs it once (it keeps one of equal computations)."""
    # The key TFMA's AUC reads its histogram by.
    histogram_key = calibration_histogram.calibration_histogram(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )[0].keys[0]
    counts_key = metric_types.MetricKey(
        name=_COUNTS_NAME, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted
    )
    return metric_types.MetricComputation(
        keys=[histogram_key, counts_key],
        preprocessors=None,
        combiner=_TripMetricsCombiner(histogram_key, counts_key, eval_config, aggregation_type, class_weights, example_weighted),
    )


# TFMA's margin around the thresholds when it reads confusion matrices off a histogram.
_EPSILON = 1e-7


def matrices_from_histogram(thresholds: Sequence[float], histogram: calibration_histogram.Histogram) -> binary_confusion_matrices.Matrices:
    """The confusion matrices at `thresholds` of a calibration histogram (sorted by bucket, TFMA's
    default buckets), as TFMA's binary confusion matrices computation reads them off it (`rebin`,
    then `_histogram_to_binary_confusion_matrices`), in numpy: the same additions in the same
    order, so the same floats.

    Args:
        thresholds: Ascending, not a single negative threshold (TFMA reads that case otherwise).
        histogram: The calibration histogram.
    """
    rebin_thresholds = [t + _EPSILON if t != 0 else t for t in thresholds]
    if thresholds[0] >= 0:
        rebin_thresholds = [-_EPSILON] + rebin_thresholds
    if thresholds[-1] < 1.0:
        rebin_thresholds = rebin_thresholds + [1.0 + _EPSILON]
    # rebin: each bucket's left edge, -inf and +inf for the catch-all buckets, goes to the last
    # threshold at or below it; the sums start at 0.0 and add the buckets in order, as TFMA does.
    num_buckets = calibration_histogram.DEFAULT_NUM_BUCKETS
    ids = np.array([bucket.bucket_id for bucket in histogram], dtype=np.int64)
    # TFMA's edge, (id - 1) / num_buckets * (right - left) + left with its default range [0, 1]:
    # the same float operations, so the same edges.
    edges = (ids - 1) / num_buckets * (1.0 - 0.0) + 0.0
    edges[ids == 0] = -np.inf
    edges[ids >= num_buckets + 1] = np.inf
    interval = np.searchsorted(np.array(rebin_thresholds[1:]), edges, side="right")
    size = len(rebin_thresholds)
    labels = np.bincount(interval, weights=[bucket.weighted_labels for bucket in histogram], minlength=size)
    examples = np.bincount(interval, weights=[bucket.weighted_examples for bucket in histogram], minlength=size)
    positives, negatives = labels, examples - labels
    # tp, fp: the sums at or above each interval, added from the top; tn, fn: below, from 0.0.
    tp = np.cumsum(positives[::-1])[::-1].tolist()
    fp = np.cumsum(negatives[::-1])[::-1].tolist()
    tn = [0.0] + np.cumsum(negatives[:-1]).tolist()
    fn = [0.0] + np.cumsum(positives[:-1]).tolist()
    offset = 1 if (thresholds[0] >= 0 or len(thresholds) == 1) and size > 1 else 0
    tp, fp, tn, fn = (values[offset : offset + len(thresholds)] for values in (tp, fp, tn, fn))
    for index, threshold in enumerate(thresholds):
        if threshold >= 1.0 + _EPSILON:
            tp[index] = 0.0
            fp[index] = 0.0
            fn[index] = tp[0]
            tn[index] = fp[0]
    return binary_confusion_matrices.Matrices(list(thresholds), tp, tn, fp, fn)


class _MatricesOfHistogram:
    """A derived computation's result: the confusion matrices at `thresholds` of the histogram
    under `histogram_key` (`matrices_from_histogram`), under `matrices_key`."""

    def __init__(self, thresholds: Sequence[float], histogram_key: metric_types.MetricKey, matrices_key: metric_types.MetricKey):
        self.thresholds = list(thresholds)
        self.histogram_key = histogram_key
        self.matrices_key = matrices_key

    def __call__(self, metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, Any]:
        return {self.matrices_key: matrices_from_histogram(self.thresholds, metrics[self.histogram_key])}


def _free_variables(function: Any) -> Dict[str, Any]:
    """The variables a nested function closes over, by name ({} for anything else)."""
    code = getattr(function, "__code__", None)
    cells = getattr(function, "__closure__", None) or ()
    if code is None:
        return {}
    found = {}
    for name, cell in zip(code.co_freevars, cells):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # a cell not yet filled
            continue
    return found


def _numpy_matrices(computation: Any, histogram_keys: Sequence[metric_types.MetricKey]) -> Any:
    """TFMA's derived computation of binary confusion matrices from one of `histogram_keys`,
    with its result computed by `_MatricesOfHistogram`; any other computation as it is. TFMA's
    thresholds and keys are read from its own result function, so they are TFMA's."""
    if not isinstance(computation, metric_types.DerivedMetricComputation):
        return computation
    free = _free_variables(computation.result)
    thresholds = free.get("thresholds")
    if not (
        free.get("use_histogram") is True
        and free.get("input_metric_key") in histogram_keys
        and list(computation.keys) == [free.get("matrices_key")]
        and thresholds
        and not (len(thresholds) == 1 and thresholds[0] < 0)
    ):
        return computation
    return metric_types.DerivedMetricComputation(
        keys=list(computation.keys), result=_MatricesOfHistogram(thresholds, free["input_metric_key"], free["matrices_key"])
    )


class OnePassAUC(confusion_matrix_metrics.AUC):
    """TFMA's AUC (by default ROC, 10,000 thresholds, interpolated), on the histogram of the one
    pass, its confusion matrices read off that histogram with numpy. Settings with which TFMA
    would not read the default histogram are refused."""

    def computations(self, eval_config=None, schema=None, model_names=None, output_names=None, sub_keys=None, aggregation_type=None, class_weights=None, example_weighted=False, query_key=None):
        computations = super().computations(
            eval_config=eval_config,
            schema=schema,
            model_names=model_names,
            output_names=output_names,
            sub_keys=sub_keys,
            aggregation_type=aggregation_type,
            class_weights=class_weights,
            example_weighted=example_weighted,
            query_key=query_key,
        )
        shared = []
        for computation in computations:
            if not isinstance(computation, metric_types.MetricComputation):
                shared.append(computation)
                continue
            key = computation.keys[0]
            trip_pass = _trip_pass(eval_config, key.model_name, key.output_name, key.sub_key, aggregation_type, class_weights, example_weighted)
            if list(computation.keys) != trip_pass.keys[:1] or computation.preprocessors:
                # TFMA would count this AUC otherwise (a few explicit thresholds, a preprocessor):
                # refused, not silently computed from another count.
                raise ValueError(f"OnePassAUC computes TFMA's default AUC only, from its calibration histogram; it was asked for {computation.keys}")
            shared.append(trip_pass)
        histogram_keys = [computation.keys[0] for computation in shared if isinstance(computation, metric_types.MetricComputation)]
        return [_numpy_matrices(computation, histogram_keys) for computation in shared]


def _counts_metric(name: str, value_of, unweighted_only: bool = False) -> Any:
    """A `create_computations_fn` for TFMA: the one pass, and `value_of(counts)` as `name`;
    with `unweighted_only`, example-weighted computations are refused."""

    def create(name: str = name, eval_config=None, model_name: str = "", output_name: str = "", sub_key=None, aggregation_type=None, class_weights=None, example_weighted: bool = False) -> metric_types.MetricComputations:
        if unweighted_only and example_weighted:
            raise ValueError(f"{name} counts trips unweighted, as TFMA's ExampleCount without example weights; it was asked for an example-weighted count")
        trip_pass = _trip_pass(eval_config, model_name, output_name, sub_key, aggregation_type, class_weights, example_weighted)
        counts_key = trip_pass.keys[1]
        key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted)

        def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
            return {key: value_of(metrics[counts_key])}

        return [trip_pass, metric_types.DerivedMetricComputation(keys=[key], result=result)]

    return metric_util.merge_per_key_computations(create)


def _ratio(numerator: float, denominator: float) -> float:
    # As TFMA: no value (NaN) without a positive denominator.
    return numerator / denominator if denominator > 0 else float("nan")


class _CountsMetric(metric_types.Metric):
    """A metric read off the one pass's counts: a subclass names its default key and its value."""

    DEFAULT_NAME = ""
    UNWEIGHTED_ONLY = False

    @staticmethod
    def value(counts: TripCounts) -> float:
        raise NotImplementedError

    def __init__(self, name: str = ""):
        name = name or self.DEFAULT_NAME
        super().__init__(_counts_metric(name, self.value, self.UNWEIGHTED_ONLY), name=name)


class OnePassExampleCount(_CountsMetric):
    """The number of trips (TFMA's unweighted ExampleCount)."""

    DEFAULT_NAME = example_count.EXAMPLE_COUNT_NAME
    UNWEIGHTED_ONLY = True

    @staticmethod
    def value(counts: TripCounts) -> float:
        return counts.trips

    @property
    def compute_confidence_interval(self) -> bool:
        # As TFMA's ExampleCount: a count has no sampling uncertainty to report.
        return False


class OnePassBinaryAccuracy(_CountsMetric):
    """(TP + TN) / all trips, a trip predicted positive above 0.5."""

    DEFAULT_NAME = confusion_matrix_metrics.BINARY_ACCURACY_NAME

    @staticmethod
    def value(counts: TripCounts) -> float:
        right = counts.true_positives + counts.true_negatives
        return _ratio(right, right + counts.false_positives + counts.false_negatives)


class OnePassPrecision(_CountsMetric):
    """TP / (TP + FP) at 0.5."""

    DEFAULT_NAME = confusion_matrix_metrics.PRECISION_NAME

    @staticmethod
    def value(counts: TripCounts) -> float:
        return _ratio(counts.true_positives, counts.true_positives + counts.false_positives)


class OnePassRecall(_CountsMetric):
    """TP / (TP + FN) at 0.5."""

    DEFAULT_NAME = confusion_matrix_metrics.RECALL_NAME

    @staticmethod
    def value(counts: TripCounts) -> float:
        return _ratio(counts.true_positives, counts.true_positives + counts.false_negatives)


class OnePassMeanLabel(_CountsMetric):
    """The weighted mean of the labels."""

    DEFAULT_NAME = calibration.MEAN_LABEL_NAME

    @staticmethod
    def value(counts: TripCounts) -> float:
        return _ratio(counts.labels, counts.weights)


class OnePassMeanPrediction(_CountsMetric):
    """The weighted mean of the predictions."""

    DEFAULT_NAME = calibration.MEAN_PREDICTION_NAME

    @staticmethod
    def value(counts: TripCounts) -> float:
        return _ratio(counts.predictions, counts.weights)


# Each metric class here, and TFMA's class whose value it gives.
TFMA_CLASSES = {
    OnePassExampleCount.__name__: "ExampleCount",
    OnePassAUC.__name__: "AUC",
    OnePassBinaryAccuracy.__name__: "BinaryAccuracy",
    OnePassPrecision.__name__: "Precision",
    OnePassRecall.__name__: "Recall",
    OnePassMeanLabel.__name__: "MeanLabel",
    OnePassMeanPrediction.__name__: "MeanPrediction",
}


def with_tfma_classes(eval_config):
    """A copy of a TFMA EvalConfig with each metric of this module replaced by TFMA's class of
    the same value, thresholds kept: what the test and the benchmark compare against."""
    import tensorflow_model_analysis as tfma

    copy = tfma.EvalConfig()
    copy.CopyFrom(eval_config)
    for spec in copy.metrics_specs:
        for metric in spec.metrics:
            if metric.module == __name__:
                metric.class_name = TFMA_CLASSES[metric.class_name]
                metric.module = ""
    return copy
