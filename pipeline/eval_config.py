"""The Evaluators' configurations: metrics, slices and the thresholds TFMA judges.

Two Evaluators score each candidate against the serving model (`pipeline.dag`): one on the whole
eval split (floors, no-regression, the card-paid slice), one on the newest span's eval trips
(no-regression only). `pipeline.components.model_gate` combines their verdicts with the trivial
baselines into the blessing the Pusher reads. The metrics are TFMA's, counted in one pass over
each trip (`pipeline.eval_metrics`).
"""
from typing import List, Optional

import tensorflow_model_analysis as tfma

from modules import features, signatures
from pipeline import configs, eval_metrics

# The card-paid slice the Evaluator gates (see features.CARD_PAYMENT).
CARD_SLICE = tfma.SlicingSpec(feature_values={features.PAYMENT_TYPE_KEY: features.CARD_PAYMENT})


def _threshold(
    slicing_spec: tfma.SlicingSpec, lower_bound: Optional[float], max_drop: float
) -> tfma.PerSliceMetricThreshold:
    """A floor (when `lower_bound` is set) and a largest drop against the serving model, on one slice."""
    threshold = tfma.MetricThreshold(
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}
        )
    )
    if lower_bound is not None:
        threshold.value_threshold.CopyFrom(tfma.GenericValueThreshold(lower_bound={"value": lower_bound}))
    return tfma.PerSliceMetricThreshold(slicing_specs=[slicing_spec], threshold=threshold)


def _model_specs() -> List[tfma.ModelSpec]:
    # The model is called through its tf.Example signature; the label comes from the model's
    # label signature (Transform's label alone), since it is computed from `tips` and `fare`.
    # The Evaluators' executor reads it through `transform_features` when a model lacks it
    # (`pipeline.components.evaluator`).
    return [
        tfma.ModelSpec(
            signature_name=signatures.SERVING_TF_EXAMPLE,
            preprocessing_function_names=[signatures.TRANSFORM_LABEL],
            label_key=features.LABEL_KEY,
            prediction_key=signatures.PROBABILITY_OUTPUT,
        )
    ]


def _metric(class_name: str, **thresholds) -> tfma.MetricConfig:
    """One of `pipeline.eval_metrics`' metrics: TFMA's, counted in one pass over each trip."""
    return tfma.MetricConfig(class_name=class_name, module=eval_metrics.__name__, **thresholds)


def _reported_metrics() -> List[tfma.MetricConfig]:
    return [_metric(name) for name in ("OnePassPrecision", "OnePassRecall", "OnePassMeanLabel", "OnePassMeanPrediction")]


def make_eval_config(thresholds: configs.BlessingThresholds) -> tfma.EvalConfig:
    """Returns the whole eval split's configuration: metrics by slice, and the thresholds.

    Floors and no-regression hold on the whole split; on the card-paid slice too. Other slices
    are reported, not gated (a slice such as "payment_type=Cash" has almost no positive
    example, so its AUC says little).
    """
    overall = tfma.SlicingSpec()
    return tfma.EvalConfig(
        model_specs=_model_specs(),
        slicing_specs=[overall] + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURE_KEYS],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    _metric("OnePassExampleCount"),
                    _metric(
                        "OnePassAUC",
                        per_slice_thresholds=[
                            _threshold(overall, thresholds.min_auc, thresholds.max_auc_drop),
                            _threshold(CARD_SLICE, thresholds.card_min_auc, thresholds.card_max_auc_drop),
                        ],
                    ),
                    _metric(
                        "OnePassBinaryAccuracy",
                        per_slice_thresholds=[
                            _threshold(overall, thresholds.min_binary_accuracy, thresholds.max_binary_accuracy_drop)
                        ],
                    ),
                    *_reported_metrics(),
                ]
            )
        ],
    )


def make_newest_span_eval_config(thresholds: configs.BlessingThresholds) -> tfma.EvalConfig:
    """Returns the newest span's configuration: overall metrics, no worse than the serving model."""
    overall = tfma.SlicingSpec()
    return tfma.EvalConfig(
        model_specs=_model_specs(),
        slicing_specs=[overall],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    # Without a serving model TFX drops the change thresholds; this one always
                    # stands: a newest span without eval trips cannot be judged, and is not passed.
                    _metric(
                        "OnePassExampleCount",
                        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 1})),
                    ),
                    _metric(
                        "OnePassAUC",
                        per_slice_thresholds=[_threshold(overall, None, thresholds.newest_span_max_auc_drop)],
                    ),
                    _metric(
                        "OnePassBinaryAccuracy",
                        per_slice_thresholds=[
                            _threshold(overall, None, thresholds.newest_span_max_binary_accuracy_drop)
                        ],
                    ),
                    *_reported_metrics(),
                ]
            )
        ],
    )
