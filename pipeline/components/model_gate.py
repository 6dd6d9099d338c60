"""ModelGate: the one blessing the Pusher reads, from the Evaluators' verdicts and trivial baselines.

The candidate is blessed when the whole eval split's Evaluator blessed it (floors,
no-regression against the serving model, the card-paid slice), the newest span's Evaluator
blessed it (no worse than the serving model on the traffic it serves next; a one-span window's
eval split is that traffic, and its Evaluator's metrics are judged against these limits
here), and it beats both trivial baselines of the same eval trips (the majority class and the
best single-feature rule, computed beside the Trainer by `pipeline.components.trivial_baselines`)
by the configured margins (`pipeline.configs.BlessingThresholds`). The output ModelBlessing
carries `blessed` and the model's id, as TFX's Evaluator writes them, and a report
(GATE_REPORT_FILE) with every number and every reason, which the run summary shows.
"""
import json
import logging
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from modules import features
from pipeline import configs
from pipeline.components import artifacts
from pipeline.validation.evaluation_results import baseline_was_scored, slice_metrics, validation_failures

logger = logging.getLogger(__name__)

CARD_SLICE_TEXT = f"{features.PAYMENT_TYPE_KEY}={features.CARD_PAYMENT}"
# The output the Pusher reads (artifacts.GATE_BLESSING_KEY). Not "blessing": TFX's legacy launcher
# (Airflow) names artifacts by output key and run, and the Evaluator's "blessing" is of that type.
# What TFX's Evaluator records on its ModelBlessing, read by the Pusher and the resolvers.
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_PROPERTY = "current_model"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"


def judge_baselines(candidate: Dict[str, float], baselines: Dict[str, Any], thresholds: configs.BlessingThresholds) -> List[str]:
    """The reasons a candidate does not beat the trivial baselines by the margins ([] when it does)."""
    reasons = []
    auc, accuracy = candidate.get("auc"), candidate.get("binary_accuracy")
    needed_auc = baselines["best_single_feature_auc"] + thresholds.min_auc_over_single_feature
    # `not >=` so that a NaN metric fails as well.
    if auc is None or not auc >= needed_auc:
        reasons.append(
            f"auc {auc if auc is None else format(auc, '.4f')} does not beat the best single-feature rule "
            f"({baselines['best_single_feature']}, AUC {baselines['best_single_feature_auc']:.4f}) "
            f"by {thresholds.min_auc_over_single_feature:g}: needs {needed_auc:.4f}"
        )
    needed_accuracy = baselines["majority_accuracy"] + thresholds.min_accuracy_over_majority
    if accuracy is None or not accuracy >= needed_accuracy:
        reasons.append(
            f"binary_accuracy {accuracy if accuracy is None else format(accuracy, '.4f')} does not beat always answering "
            f"{baselines['majority_class']} (accuracy {baselines['majority_accuracy']:.4f}) by "
            f"{thresholds.min_accuracy_over_majority:g}: needs {needed_accuracy:.4f}"
        )
    return reasons


def judge_newest_span(
    metrics: Dict[str, Dict[str, float]], thresholds: configs.BlessingThresholds, baseline_scored: bool
) -> List[str]:
    """The newest-span limits judged on metrics of the newest span's eval trips (`slice_metrics`
    of the whole evaluation), in the words TFMA's failures are reported in ([] when they hold).

    As the newest-span Evaluator's configuration says (`pipeline.eval_config`): at least one
    trip, and, when the Evaluator scored a serving model (`baseline_scored`), AUC and accuracy
    no lower than its by more than the allowed drops. A metric that was not computed fails.
    """
    where = "newest span"
    count = metrics["candidate"].get("example_count")
    if count is None or not count >= 1:
        return [f"{where}: example_count {count} is below the required 1.0000"]
    if not baseline_scored:  # nothing serves yet: no drop to judge, as TFX drops change thresholds
        return []
    reasons = []
    for name, allowed in (
        ("auc", thresholds.newest_span_max_auc_drop),
        ("binary_accuracy", thresholds.newest_span_max_binary_accuracy_drop),
    ):
        candidate, serving = metrics["candidate"].get(name), metrics["baseline"].get(name)
        if candidate is None or serving is None:
            reasons.append(f"{where}: {name} of the candidate or of the serving model was not computed")
        # `not >=` so that a NaN metric fails as well.
        elif not candidate - serving >= -allowed:
            reasons.append(f"{where}: {name} is {serving - candidate:.4f} lower than the serving model's (allowed drop: {allowed:.4f})")
    return reasons


@component
def ModelGate(
    model: InputArtifact[standard_artifacts.Model],
    baselines: InputArtifact[artifacts.TrivialBaselineScores],
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    model_blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    thresholds: Parameter[str],
    newest_span_evaluation: InputArtifact[standard_artifacts.ModelEvaluation] = None,
    newest_span_is_window: Parameter[int] = 0,
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Blesses the candidate only when both Evaluators did and it beats the trivial baselines
    (see the module docstring); `thresholds` is `BlessingThresholds` as JSON. With
    `newest_span_is_window` (a one-span window, which has no second Evaluator) the newest-span
    limits are judged on `evaluation`, whose eval trips are the newest span's."""
    del code_fingerprint  # part of the cache key only
    limits = configs.BlessingThresholds(**json.loads(thresholds))
    tf.io.gfile.makedirs(model_blessing.uri)
    trivial = artifacts.read_baselines(baselines.uri)
    window_ok, window_failures = validation_failures(evaluation.uri)
    window = slice_metrics(evaluation.uri)
    if newest_span_evaluation is not None:
        newest_ok, newest_failures = validation_failures(newest_span_evaluation.uri, "newest span")
        newest = slice_metrics(newest_span_evaluation.uri)
    elif newest_span_is_window:
        newest = {**window, "same_trips_as_window": True}
        newest_failures = judge_newest_span(newest, limits, baseline_was_scored(evaluation.uri))
        newest_ok = not newest_failures
    else:  # PipelineOptions.newest_span_check is off (Airflow); the report says so
        newest_ok, newest_failures, newest = True, [], {"candidate": {}, "baseline": {}, "not_checked": True}
    baseline_failures = judge_baselines(window["candidate"], trivial, limits)
    blessed = window_ok and newest_ok and not baseline_failures
    report = {
        "blessed": blessed,
        "failures": window_failures + newest_failures + baseline_failures,
        "trivial_baselines": trivial,
        "window": window,
        "newest_span": newest,
        "card_slice": slice_metrics(evaluation.uri, CARD_SLICE_TEXT),
        "thresholds": json.loads(thresholds),
    }
    with tf.io.gfile.GFile(os.path.join(model_blessing.uri, artifacts.GATE_REPORT_FILE), "w") as report_file:
        json.dump(report, report_file, indent=1, sort_keys=True)
    with tf.io.gfile.GFile(os.path.join(model_blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as marker:
        marker.write("")
    model_blessing.set_int_custom_property(BLESSED_PROPERTY, int(blessed))
    model_blessing.set_string_custom_property(CURRENT_MODEL_PROPERTY, model.uri)
    model_blessing.set_int_custom_property(CURRENT_MODEL_ID_PROPERTY, model.id)
    for line in report["failures"]:
        logger.warning("not blessed: %s", line)
