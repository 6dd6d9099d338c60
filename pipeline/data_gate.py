"""A gate between data validation and training: the data checks' verdicts stop the run.

ExampleValidator reports anomalies, SpanDriftCheck drift scores and ExternalFeatureCheck
both for the columns joined from external tables, but none stops anything by itself. This
component reads the reports and fails on any schema anomaly, and on drift over a threshold
when the drift policy is "stop" (with "warn" it logs a loud warning). Transform (hence Trainer, Evaluator, Pusher) runs after it, so refused data
never reaches a model or the serving directory.
"""
import logging
from typing import List

from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import anomalies_pb2

from pipeline import configs
from pipeline import external_check
from pipeline.drift import DataDriftError, DriftReport, drift_message, read_report

logger = logging.getLogger(__name__)

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The data broke the schema; the message names every feature and problem."""


def read_anomalies(anomalies_uri: str, split_names: List[str]) -> List[str]:
    """Returns one line per anomaly in an ExampleAnomalies artifact: split, feature, problem."""
    lines = []
    for split in split_names:
        path = f"{anomalies_uri}/Split-{split}/{ANOMALIES_FILE}"
        report = anomalies_pb2.Anomalies()
        report.ParseFromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(report.anomaly_info.items()):
            lines.append(f"{split}: feature {feature!r}: {info.short_description}: {info.description}")
        if report.HasField("dataset_anomaly_info"):
            info = report.dataset_anomaly_info
            lines.append(f"{split}: dataset: {info.short_description}: {info.description}")
    return lines


@tfx.dsl.components.component
def DataGate(
    anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
    drift_report: tfx.dsl.components.InputArtifact[DriftReport],
    external_report: tfx.dsl.components.InputArtifact[external_check.ExternalFeatureReport],
) -> None:
    """Fails the run on any schema anomaly, or on drift when the drift policy says stop."""
    found = read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if found:
        raise DataAnomaliesError("the data does not match the schema:\n  " + "\n  ".join(found))
    joined = external_check.read_report(external_report.uri)
    found = external_check.refusals(joined)
    if found:
        raise DataAnomaliesError("the columns joined from external tables do not match their schema:\n  " + "\n  ".join(found))
    report = read_report(drift_report.uri)
    messages = []
    if any(score["drifted"] for score in report["scores"]):
        messages.append(drift_message(report))
    messages += [f"joined column {line}" for line in external_check.drifted(joined)]
    if messages:
        if report["on_drift"] == configs.DRIFT_STOP:
            raise DataDriftError("; ".join(messages))
        logger.warning("DRIFT (policy: warn, training goes on): %s", "; ".join(messages))
