"""Drift between spans: the newest span of the window against the one before it.

TFDV's drift comparators (L-infinity distance for categorical columns, Jensen-Shannon
divergence for numeric ones) score every compared column on every run, so a trend can be
followed even below the thresholds. Beyond a threshold the run stops before training or goes
on with a warning, as `pipeline.configs.DriftConfig.on_drift` says.
"""
import copy
import dataclasses
import json
import logging
import os
from typing import Dict, Iterable, List, Optional

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from pipeline import configs
from pipeline.span_example_gen import files_by_span

logger = logging.getLogger(__name__)

REPORT_FILE = "drift.json"
# Custom properties of the DriftReport artifact.
DRIFTED_FEATURES_PROPERTY = "drifted_features"
COMPARED_SPANS_PROPERTY = "compared_spans"


class DriftReport(Artifact):
    """Drift scores of the newest span against the previous one (a JSON file, REPORT_FILE)."""

    # "<namespace>.<Name>", the form the Vertex (KFP v2) compiler requires of custom types.
    TYPE_NAME = "taxi.DriftReport"


class DataDriftError(RuntimeError):
    """The newest span drifted beyond a threshold; the message names features and scores."""


_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon",
}


def with_comparators(
    schema: schema_pb2.Schema,
    thresholds: configs.DriftConfig,
    comparator: str = "drift",
    only: Optional[Iterable[str]] = None,
) -> schema_pb2.Schema:
    """Returns a copy of `schema` with TFDV comparators on its columns.

    Args:
        schema: The curated schema.
        thresholds: Per-column thresholds; `thresholds.ignored` columns get none.
        comparator: "drift" (between spans) or "skew" (training against serving).
        only: Put comparators on these columns only (default: every column).
    """
    schema = copy.deepcopy(schema)
    for feature in schema.feature:
        if feature.name in thresholds.ignored or (only is not None and feature.name not in only):
            continue
        categorical = feature.type == schema_pb2.BYTES or feature.int_domain.is_categorical
        threshold = thresholds.threshold_for(feature.name, categorical)
        feature_comparator = getattr(feature, f"{comparator}_comparator")
        if categorical:
            feature_comparator.infinity_norm.threshold = threshold
        else:
            feature_comparator.jensen_shannon_divergence.threshold = threshold
    return schema


def scores_of(anomalies: anomalies_pb2.Anomalies, comparator: str = "drift", flag: str = "drifted") -> List[Dict[str, object]]:
    """Lists TFDV's drift or skew measurements: feature, measure, score, threshold and `flag`
    (True when the score is over the threshold), highest score first."""
    scores = [
        {
            "feature": ".".join(info.path.step),
            "measure": _MEASURE_NAMES.get(measurement.type, str(measurement.type)),
            "score": round(measurement.value, 4),
            "threshold": measurement.threshold,
            flag: measurement.value > measurement.threshold,
        }
        for info in anomalies.drift_skew_info
        for measurement in getattr(info, f"{comparator}_measurements")
    ]
    return sorted(scores, key=lambda score: -score["score"])


def _span_statistics(span_dir: str, schema: schema_pb2.Schema):
    options = tfdv.StatsOptions(
        schema=schema, infer_type_from_schema=True, num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS
    )
    return tfdv.generate_statistics_from_csv(data_location=os.path.join(span_dir, "*.csv"), stats_options=options)


def compare_spans(
    previous_span_dir: str, newest_span_dir: str, schema: schema_pb2.Schema, drift: configs.DriftConfig
) -> List[Dict[str, object]]:
    """Scores every compared column of the newest span folder against the previous one.

    Returns:
        One dict per column: feature, measure ("L-infinity" or "Jensen-Shannon"), score,
        threshold, drifted (score above threshold), highest score first.
    """
    previous = _span_statistics(previous_span_dir, schema)
    newest = _span_statistics(newest_span_dir, schema)
    anomalies = tfdv.validate_statistics(newest, with_comparators(schema, drift), previous_statistics=previous)
    return scores_of(anomalies)


def describe(scores: List[Dict[str, object]]) -> str:
    """One line per drifted column: feature, measure, score against threshold."""
    return "; ".join(
        f"{s['feature']} {s['measure']} {s['score']:.3f} > {s['threshold']}" for s in scores if s["drifted"]
    )


@tfx.dsl.components.component
def SpanDriftCheck(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    drift_report: tfx.dsl.components.OutputArtifact[DriftReport],
    drift_config: tfx.dsl.components.Parameter[str],
) -> None:
    """Scores drift of the newest span against the previous one and records every score.

    `drift_config` is `pipeline.configs.DriftConfig` as JSON (see `drift_config_json`). The
    decision (stop or warn) is the DataGate's, so the report is kept even for a stopped run.
    """
    drift = configs.DriftConfig(**json.loads(drift_config))
    span_dirs = {span: os.path.dirname(paths[0]) for span, paths in files_by_span(examples).items()}
    report = {"compared_spans": None, "scores": [], "on_drift": drift.on_drift}
    if len(span_dirs) >= 2:
        previous_span, newest_span = sorted(span_dirs)[-2:]
        schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, "schema.pbtxt"))
        report["compared_spans"] = [previous_span, newest_span]
        try:
            report["scores"] = compare_spans(span_dirs[previous_span], span_dirs[newest_span], schema_proto, drift)
        except Exception as error:  # noqa: BLE001 - data that breaks the schema is the gate's to report
            logger.warning("drift not computed: %s", error)
            report["error"] = f"{type(error).__name__}: {error}"
        drift_report.set_string_custom_property(COMPARED_SPANS_PROPERTY, f"{previous_span},{newest_span}")
    drifted = [score["feature"] for score in report["scores"] if score["drifted"]]
    drift_report.set_string_custom_property(DRIFTED_FEATURES_PROPERTY, ",".join(drifted))
    with tf.io.gfile.GFile(os.path.join(drift_report.uri, REPORT_FILE), "w") as report_file:
        json.dump(report, report_file, indent=2)


def drift_message(report: dict) -> str:
    """Says which span drifted from which, naming each drifted feature with score and threshold."""
    previous, newest = report["compared_spans"]
    return f"span {newest} drifted from span {previous}: {describe(report['scores'])}"


def drift_config_json(drift: configs.DriftConfig) -> str:
    """Serializes a DriftConfig for the SpanDriftCheck component's parameter."""
    return json.dumps({**dataclasses.asdict(drift), "ignored": list(drift.ignored)}, sort_keys=True)


def read_report(uri: str) -> dict:
    """Reads the JSON report of a DriftReport artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, REPORT_FILE)) as report_file:
        return json.load(report_file)
