"""A gate between data validation and training: anomalies stop the run before Transform.

ExampleValidator reports anomalies but does not stop anything by itself. This component
reads its report and fails when there is any anomaly, and Transform (hence Trainer,
Evaluator, Pusher) runs after it, so refused data never reaches a model or the serving
directory.
"""
from typing import List

from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import anomalies_pb2

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
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """Fails the run when ExampleValidator found any anomaly in any split."""
    found = read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if found:
        raise DataAnomaliesError("the data does not match the schema:\n  " + "\n  ".join(found))
