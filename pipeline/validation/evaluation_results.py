"""Reading an Evaluator's output: metrics of one slice, and threshold failures in words.

The ModelGate judges with these and the tools that report a run (`pipeline.ops`) show the
same words, so a refusal reads the same in the run summary, the report and lineage.
"""
from typing import Dict, List, Tuple

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.writers import eval_config_writer


def slice_text(slice_key) -> str:
    """A TFMA slice key in words: "payment_type=Credit Card"; "" for the whole evaluation."""
    parts = []
    for single in slice_key.single_slice_keys:
        value = single.bytes_value.decode() if single.bytes_value else (single.int64_value if single.HasField("int64_value") else single.float_value)
        parts.append(f"{single.column}={value}")
    return ", ".join(parts)


def describe_failure(failure, slice_words: str = "", where: str = "") -> str:
    """Says in words which threshold a metric missed and by how much (a TFMA validation failure)."""
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    prefix = " ".join(part for part in (where, f"[{slice_words}]" if slice_words else "") if part)
    prefix = f"{prefix}: " if prefix else ""
    if failure.metric_key.is_diff:
        allowed = -threshold.change_threshold.absolute.value
        return f"{prefix}{name} is {-value:.4f} lower than the serving model's (allowed drop: {allowed:.4f})"
    return f"{prefix}{name} {value:.4f} is below the required {threshold.value_threshold.lower_bound.value:.4f}"


def validation_failures(evaluation_uri: str, where: str = "") -> Tuple[bool, List[str]]:
    """(whether TFMA's validation passed, each failure in words) of an Evaluator output."""
    validation = tfma.load_validation_result(evaluation_uri)
    failures = [
        describe_failure(failure, slice_text(per_slice.slice_key), where)
        for per_slice in validation.metric_validations_per_slice
        for failure in per_slice.failures
    ]
    failures += [
        f"{where + ': ' if where else ''}no metrics for the gated slice {json_format.MessageToJson(spec, indent=None)}"
        for spec in validation.missing_slices
    ]
    if validation.missing_thresholds:
        failures.append(f"{where + ': ' if where else ''}TFMA judged no threshold (the eval config's thresholds did not apply)")
    if not validation.validation_ok and not failures:
        failures.append(f"{where + ': ' if where else ''}TFMA's validation failed without naming a threshold: {validation}")
    return bool(validation.validation_ok), failures


def slice_metrics(evaluation_uri: str, wanted: str = "") -> Dict[str, Dict[str, float]]:
    """{"candidate": {metric: value}, "baseline": {...}} of one slice of an evaluation (by its
    text, e.g. "payment_type=Credit Card"; "" is the whole, unsliced evaluation)."""
    found: Dict[str, Dict[str, float]] = {"candidate": {}, "baseline": {}}
    for metrics in tfma.load_metrics(evaluation_uri):
        if slice_text(metrics.slice_key) != wanted:
            continue
        for item in metrics.metric_keys_and_values:
            if item.key.is_diff or not item.value.HasField("double_value"):
                continue
            role = "baseline" if item.key.model_name == "baseline" else "candidate"
            found[role][item.key.name] = item.value.double_value.value
    return found


def baseline_was_scored(evaluation_uri: str) -> bool:
    """Whether the Evaluator scored a baseline model beside the candidate (its stored EvalConfig
    names one: a model was serving when it ran)."""
    eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
    return any(spec.is_baseline for spec in eval_config.model_specs)
