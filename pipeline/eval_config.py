"""The Evaluator's configuration: metrics, slices and the blessing thresholds."""
from typing import List

import tensorflow_model_analysis as tfma

from modules import features, signatures
from pipeline import configs


def make_eval_config(thresholds: configs.BlessingThresholds) -> tfma.EvalConfig:
    """Returns the Evaluator's configuration: metrics, slices and blessing thresholds.

    The model is called through its tf.Example signature; the label comes from the model's
    Transform signature, since it is computed from `tips` and `fare`.
    """
    def overall_threshold(lower_bound: float, max_drop: float) -> List[tfma.PerSliceMetricThreshold]:
        # Blessing looks at the whole evaluation set; slices are reported, not gated (a slice
        # such as "payment_type=Cash" has almost no positive example, so its AUC says little).
        return [
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec()],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}
                    ),
                ),
            )
        ]

    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=signatures.SERVING_TF_EXAMPLE,
                preprocessing_function_names=[signatures.TRANSFORM_FEATURES],
                label_key=features.LABEL_KEY,
                prediction_key=signatures.PROBABILITY_OUTPUT,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURE_KEYS],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        per_slice_thresholds=overall_threshold(thresholds.min_auc, thresholds.max_auc_drop),
                    ),
                    tfma.MetricConfig(
                        class_name="BinaryAccuracy",
                        per_slice_thresholds=overall_threshold(
                            thresholds.min_binary_accuracy, thresholds.max_binary_accuracy_drop
                        ),
                    ),
                    tfma.MetricConfig(class_name="Precision"),
                    tfma.MetricConfig(class_name="Recall"),
                    tfma.MetricConfig(class_name="MeanLabel"),
                    tfma.MetricConfig(class_name="MeanPrediction"),
                ]
            )
        ],
    )
