"""A gate between data validation and training: the data checks' verdicts stop the run.

ExampleValidator reports the window's schema anomalies, SpanDriftCheck the newest span's own
anomalies and its drift, and ExternalFeatureCheck both for the columns joined from external
tables; none stops anything by itself. This component reads the reports and fails on any
schema anomaly, and on drift over a threshold when the drift policy is "stop" (with "warn"
it logs a loud warning), except what an owner accepted for that span with
`python -m pipeline.accept` (`pipeline.validation.acceptance`). Transform (hence Trainer, Evaluator,
Pusher) runs after it, so refused data never reaches a model or the serving directory.
"""
import logging
from typing import Dict, List, Optional

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from pipeline import configs
from pipeline.components import artifacts
from pipeline.components.artifacts import SPAN_FILES_PROPERTY, DriftReport, read_anomalies, read_drift_report, span_fingerprints
from pipeline.spans import spans_text
from pipeline.validation import acceptance

logger = logging.getLogger(__name__)


class DataDriftError(RuntimeError):
    """The newest span drifted beyond a threshold; the message names features and scores."""

    def __init__(self, message: str, span: Optional[int] = None):
        super().__init__(message)
        self.span = span


class DataAnomaliesError(RuntimeError):
    """The data broke the schema; the message names every feature and problem."""

    def __init__(self, message: str, span: Optional[int] = None):
        super().__init__(message)
        self.span = span


def judge(
    window_anomalies: List[acceptance.Problem],
    drift_report: dict,
    joined_report: dict,
    acceptances: List[acceptance.SpanAcceptance],
    span_files: dict,
) -> List[str]:
    """Decides on one run's reports; returns the warnings to log.

    Raises:
        DataAnomaliesError: on a schema anomaly or a joined-column anomaly no acceptance covers.
        DataDriftError: on drift no acceptance covers, when the policy is "stop".
    """
    span = drift_report["checked_span"]
    valid, warnings = acceptance.valid_acceptances(acceptances, span_files)
    notes = []
    if not drift_report["reference_spans"]:
        notes.append(f"no drift judged: span {span} is the only span in the window")
    elif not any(score["judged"] for score in drift_report["scores"]):
        notes.append(f"no drift judged: every column of span {span} or of its reference has too few values")
    covered, refused = acceptance.split_covered(acceptance.collect_problems(window_anomalies, drift_report), valid)
    let_through: Dict[int, List[str]] = {}
    for problem, record in covered:
        let_through.setdefault(record.artifact_id, []).append(str(problem["text"]))
    refused_drift = [str(p["text"]) for p in refused if p["check"] == acceptance.DRIFT_CHECK]
    refused_anomalies = [str(p["text"]) for p in refused if p["check"] != acceptance.DRIFT_CHECK]
    # Acceptances that no longer apply are named in the refusal itself.
    stale = "".join(f"\n{note}" for note in warnings)
    how_to_accept = (
        f"{stale}\nIf span {span} is right after review, accept it on the record and run again: "
        f"{acceptance.accept_command(span)}"
    )
    for record in valid:
        texts = let_through.get(record.artifact_id)
        if texts:
            shown = "; ".join(texts[:3]) + (f"; and {len(texts) - 3} more" if len(texts) > 3 else "")
            warnings.append(
                f"span {record.span} accepted on record {record.artifact_id} by {record.accepted_by}: "
                f"{len(texts)} finding(s) let through: {shown}"
            )
    joined = artifacts.refusals(joined_report)
    if joined:
        raise DataAnomaliesError(
            "the columns joined from external tables do not match their schema:\n  " + "\n  ".join(joined), span
        )
    drift_text = ""
    if refused_drift:
        drift_text = f"span {span} drifted from spans {spans_text(drift_report['reference_spans'])}: " + "; ".join(refused_drift)
    # Drift of the joined columns is the table's to fix, like their anomalies: no acceptance covers it.
    joined_drift = artifacts.drifted(joined_report)
    if joined_drift and drift_report["on_drift"] == configs.DRIFT_STOP and not refused_anomalies:
        raise DataDriftError(
            "the columns joined from external tables drifted (an acceptance does not cover them; review the "
            "table, or stop judging the column in DriftConfig.ignored):\n  " + "\n  ".join(joined_drift)
            + (f"\nand {drift_text}" if drift_text else ""),
            span,
        )
    if joined_drift:
        warnings.append("DRIFT of joined columns (policy: warn, training goes on): " + "; ".join(joined_drift))
    if refused_anomalies:
        # Every finding in one message: the acceptance will record the drift too.
        also = f"\nand {drift_text}" if drift_text else ""
        raise DataAnomaliesError(
            "the data does not match the schema:\n  " + "\n  ".join(refused_anomalies) + also + how_to_accept, span
        )
    if drift_text:
        if drift_report["on_drift"] == configs.DRIFT_STOP:
            raise DataDriftError(drift_text + how_to_accept, span)
        warnings.append(f"DRIFT (policy: warn, training goes on): {drift_text}")
    return warnings + notes


@component
def DataGate(
    examples: InputArtifact[standard_artifacts.Examples],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    drift_report: InputArtifact[DriftReport],
    external_report: InputArtifact[artifacts.ExternalFeatureReport],
    accepted_spans: Parameter[str] = "[]",
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Fails the run on any schema anomaly, or on drift when the drift policy says stop, unless
    an acceptance in `accepted_spans` (`pipeline.validation.acceptance.acceptances_json`) covers it."""
    del code_fingerprint  # part of the cache key only
    span_files = span_fingerprints(examples.get_string_custom_property(SPAN_FILES_PROPERTY))
    warnings = judge(
        read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names)),
        read_drift_report(drift_report.uri),
        artifacts.read_external_report(external_report.uri),
        acceptance.acceptances_from_json(accepted_spans),
        span_files,
    )
    for line in warnings:
        logger.warning("%s", line)
