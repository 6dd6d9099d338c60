"""The one-pass metrics (`pipeline.eval_metrics`) against TFMA's own classes: TFMA's Beam
evaluation of the same trips gives the same value for every metric on every slice, the
pipeline's configuration runs one combiner per model where TFMA's classes run four, and the
confusion matrices read off the histogram with numpy are TFMA's to the bit."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import binary_confusion_matrices, calibration_histogram, metric_specs

from modules import features, signatures
from pipeline import configs, eval_metrics
from pipeline.eval_config import make_eval_config


def _trips(count: int = 4000) -> pd.DataFrame:
    draw = np.random.default_rng(7)
    label = draw.integers(0, 2, count).astype(float)
    prediction = np.clip(draw.normal(0.3 + 0.35 * label, 0.25), 0.0, 1.0)
    # The edges: at the threshold (not positive), just above it inside the histogram bucket that
    # starts at 0.5, and both ends of the histogram.
    prediction[:25] = 0.5
    prediction[25:50] = 0.50004
    prediction[50:60] = 0.0
    prediction[60:70] = 1.0
    payment = draw.choice(["Cash", "Credit Card", "No Charge"], count)
    # A slice whose trips are all negative: recall and the AUC have no value there.
    label[payment == "No Charge"] = 0.0
    return pd.DataFrame({"label": label, "prediction": prediction, "payment_type": payment, "hour": draw.integers(0, 24, count)})


def _config(class_names, module: str = "") -> tfma.EvalConfig:
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["payment_type"]), tfma.SlicingSpec(feature_keys=["hour"])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=name, module=module) for name in class_names]
            )
        ],
    )


def _values(result) -> dict:
    values = {}
    for slice_key, by_output in result.slicing_metrics:
        for name, value in by_output[""][""].items():
            values[(slice_key, name)] = float(value["doubleValue"])
    return values


def test_every_metric_on_every_slice_is_tfmas_value():
    trips = _trips()
    tfma_values = _values(tfma.analyze_raw_data(trips, _config(eval_metrics.TFMA_CLASSES.values())))
    one_pass_values = _values(tfma.analyze_raw_data(trips, _config(eval_metrics.TFMA_CLASSES, eval_metrics.__name__)))
    assert set(one_pass_values) == set(tfma_values)
    names = {name for _, name in tfma_values}
    assert names == {"example_count", "auc", "binary_accuracy", "precision", "recall", "mean_label", "mean_prediction"}
    # 3 payment types, 24 hours and the whole split.
    assert len({slice_key for slice_key, _ in tfma_values}) == 28
    no_value = [key for key, value in tfma_values.items() if math.isnan(value)]
    assert ((("payment_type", "No Charge"),), "recall") in no_value
    for key, expected in tfma_values.items():
        if math.isnan(expected):
            assert math.isnan(one_pass_values[key]), key
        else:
            # Only the order of the sums may differ (TFMA's own runs differ by about 1e-10).
            assert one_pass_values[key] == pytest.approx(expected, rel=1e-9, abs=1e-9), key


def test_the_pipelines_config_runs_one_pass_per_model():
    def combiners(eval_config: tfma.EvalConfig) -> list:
        eval_config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=True)
        computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config)
        # TFMA computes each distinct combiner computation once.
        unique = {computation for computation in computations if hasattr(computation, "combiner")}
        return sorted(type(computation.combiner).__name__ for computation in unique)

    one_pass = make_eval_config(configs.BlessingThresholds())
    by_tfma = eval_metrics.with_tfma_classes(one_pass)
    # Candidate and baseline: the one pass each, against four combiners each (ExampleCount, the
    # calibration histogram, the confusion matrices at 0.5 and the weighted sums).
    assert combiners(one_pass) == ["_TripMetricsCombiner"] * 2
    assert len(combiners(by_tfma)) == 8
    assert "_ExampleCountCombiner" in combiners(by_tfma)


def test_a_weighted_example_count_is_refused():
    count = eval_metrics.OnePassExampleCount()
    with pytest.raises(ValueError, match="example_count counts trips unweighted"):
        count.computations(eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec()]), example_weighted=True)


def test_an_auc_that_tfma_counts_without_the_histogram_is_refused():
    # A few explicit thresholds: TFMA counts confusion matrices trip by trip, not the histogram.
    auc = eval_metrics.OnePassAUC(thresholds=[0.25, 0.75])
    with pytest.raises(ValueError, match="TFMA's default AUC only"):
        auc.computations(eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec()]))


def _trip_combiners(has_baseline: bool) -> list:
    eval_config = tfma.utils.update_eval_config_with_defaults(make_eval_config(configs.BlessingThresholds()), has_baseline=has_baseline, rubber_stamp=not has_baseline)
    computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config)
    # Each metric asks for the one pass; one combiner per model is enough here.
    found = {
        computation.combiner._counts_key.model_name: computation.combiner
        for computation in computations
        if isinstance(getattr(computation, "combiner", None), eval_metrics._TripMetricsCombiner)
    }
    return [found[name] for name in sorted(found)]


def _tfma_parts(combiner, element) -> list:
    parts = tfma.metrics.metric_util.to_label_prediction_example_weight(
        element,
        eval_config=combiner._eval_config,
        model_name=combiner._counts_key.model_name,
        fractional_labels=True,
        flatten=True,
    )
    return [(float(label), float(prediction), float(weight)) for label, prediction, weight in parts]


def _inputs(label, prediction, weight=None) -> tfma.metrics.StandardMetricInputs:
    return tfma.metrics.StandardMetricInputs(labels=label, predictions=prediction, example_weights=weight)


def test_a_trip_is_unpacked_as_tfma_unpacks_it():
    (alone,) = _trip_combiners(has_baseline=False)
    baseline, candidate = _trip_combiners(has_baseline=True)
    assert [combiner._counts_key.model_name for combiner in (baseline, candidate)] == ["baseline", "candidate"]

    def by_model(value, other):
        return {"candidate": value, "baseline": other}

    one = np.array([1])
    # (combiner, trip, whether it is read directly rather than by TFMA's function)
    cases = [
        (alone, _inputs(np.array([0]), np.array([0.25], np.float32)), True),
        (alone, _inputs(np.array([1.0]), np.array([0.5])), True),
        (alone, _inputs(np.array([[1]]), np.array([[0.75]], np.float32)), True),
        (alone, _inputs(np.array([1.0]), np.array([1.5])), True),
        (candidate, _inputs(by_model(one, np.array([0])), by_model(np.array([0.9], np.float32), np.array([0.1], np.float32))), True),
        (baseline, _inputs(by_model(one, np.array([0])), by_model(np.array([0.9], np.float32), np.array([0.1], np.float32))), True),
        # The label shared by both models, as TFMA keeps it when it is not computed per model.
        (baseline, _inputs(one, by_model(np.array([0.9]), np.array([0.1]))), True),
        # Left to TFMA: a fractional label (two parts), an output dict, a label by its key, a weight
        # of 0 on one part, several values.
        (alone, _inputs(np.array([0.25]), np.array([0.5])), False),
        (alone, _inputs(np.array([1]), {signatures.PROBABILITY_OUTPUT: np.array([0.25])}), False),
        (alone, _inputs({features.LABEL_KEY: np.array([1])}, np.array([0.25])), False),
        (alone, _inputs(np.array([0.0]), np.array([0.25])), True),
        (alone, _inputs(np.array([0, 1]), np.array([0.25, 0.75])), False),
    ]
    for combiner, element, plain in cases:
        assert (combiner._plain_trip(element) is not None) == plain, element
        assert list(combiner._trip_parts(element)) == _tfma_parts(combiner, element), element
    # A label TFMA refuses is refused here too.
    for label in (np.array([2]), np.array([-1.0])):
        assert alone._plain_trip(_inputs(label, np.array([0.5]))) is None
        with pytest.raises(ValueError, match="within"):
            list(alone._trip_parts(_inputs(label, np.array([0.5]))))


def _tfma_matrices(thresholds, histogram):
    """TFMA's own reading of confusion matrices off a histogram: the result of its binary
    confusion matrices computation with `use_histogram`, as OnePassAUC would run it."""
    histogram_pass, derived = binary_confusion_matrices.binary_confusion_matrices(thresholds=thresholds, use_histogram=True)
    (matrices,) = derived.result({histogram_pass.keys[-1]: histogram}).values()
    return matrices


@pytest.mark.parametrize(
    "thresholds",
    [
        binary_confusion_matrices._interpolated_thresholds(binary_confusion_matrices.DEFAULT_NUM_THRESHOLDS),
        [0.5],
        [0.0, 0.25, 0.5, 1.0],
        [0.1, 0.9, 1.0 + 1e-7, 2.0],
        [-0.5, 0.3],
    ],
)
def test_the_matrices_read_with_numpy_are_tfmas_to_the_bit(thresholds):
    draw = np.random.default_rng(11)
    for buckets in (1, 2, 50, 3000, calibration_histogram.DEFAULT_NUM_BUCKETS + 2):
        # Both catch-all buckets (0: below 0, 10,001: at or above 1) are among the possible ids.
        ids = np.sort(draw.choice(calibration_histogram.DEFAULT_NUM_BUCKETS + 2, buckets, replace=False))
        histogram = [
            calibration_histogram.Bucket(int(index), float(draw.random() * 5), float(draw.random()), float(draw.random() * 7 + 1))
            for index in ids
        ]
        assert eval_metrics.matrices_from_histogram(thresholds, histogram) == _tfma_matrices(thresholds, histogram), buckets


def test_the_auc_reads_its_matrices_with_numpy():
    computations = eval_metrics.OnePassAUC().computations(eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec()]))
    numpy_results = [c.result for c in computations if isinstance(getattr(c, "result", None), eval_metrics._MatricesOfHistogram)]
    (result,) = numpy_results
    assert result.thresholds == binary_confusion_matrices._interpolated_thresholds(binary_confusion_matrices.DEFAULT_NUM_THRESHOLDS)
