"""The custom artifact types of the project's components, the properties they record, and
the readers that open what a component wrote.

Tools that read a finished run (`pipeline.ops`) import this file, not the components, so
they do not load the components' libraries (TFMA, Beam) to read a report.
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx.types.artifact import Artifact
from tfx.utils import io_utils

from modules import external
from pipeline.spans import span_of_folder
from pipeline.validation import acceptance, span_rows
from pipeline.validation.comparators import anomaly_kind

# ---------------------------------------------------------------------------------------------
# Examples (pipeline.components.example_gen)

# Custom properties set on the Examples artifact, read by lineage and reports.
# The ModelGate's report, in its ModelBlessing (pipeline.components.model_gate), and the key of
# that output.
GATE_REPORT_FILE = "gate.json"
GATE_BLESSING_KEY = "model_blessing"
SPANS_PROPERTY = "spans"
SPAN_FILES_PROPERTY = "span_files"
# span -> input split -> {key, reused}: the kept span examples (configs.SPAN_EXAMPLES_FOLDER)
# whose files the artifact holds, as SPAN_STATISTICS_PROPERTY records statistics.
SPAN_EXAMPLES_PROPERTY = "span_examples"
# The folder of those kept span examples, where Transform reads each span's files as a dataset
# of its own (`pipeline.components.enriching_transform`).
SPAN_EXAMPLES_DIR_PROPERTY = "span_examples_dir"


def files_by_span(examples: Any) -> Dict[int, List[str]]:
    """The CSV files an Examples artifact was made from, by span, spans ascending.

    Args:
        examples: An Examples artifact of this ExampleGen (it records SPAN_FILES_PROPERTY).

    Returns:
        Span number -> file paths, in the recorded order.
    """
    return files_by_span_json(examples.get_string_custom_property(SPAN_FILES_PROPERTY))


def span_fingerprints(recorded_json: str) -> Dict[int, Dict[str, str]]:
    """Span -> {path: SHA-256} from the SPAN_FILES_PROPERTY JSON of an Examples artifact."""
    recorded = json.loads(recorded_json or "{}")
    return {span: {path: recorded[path] for path in paths} for span, paths in files_by_span_json(recorded_json).items()}


def files_by_span_json(recorded_json: str) -> Dict[int, List[str]]:
    """`files_by_span` from the SPAN_FILES_PROPERTY JSON of an Examples artifact."""
    by_span: Dict[int, List[str]] = {}
    for path in json.loads(recorded_json or "{}"):
        by_span.setdefault(span_of_folder(os.path.basename(os.path.dirname(path))), []).append(path)
    return dict(sorted(by_span.items()))


def read_trips(examples_uri: str, split: str, limit: Optional[int] = None) -> List[Dict[str, object]]:
    """Reads up to `limit` raw trips (feature -> value or None; all when `limit` is None) from
    an Examples artifact split."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [span_rows.from_example(tf.train.Example.FromString(record.numpy())) for record in (records if limit is None else records.take(limit))]


def read_serialized_examples(examples_uri: str, split: str, limit: int) -> List[bytes]:
    """The first `limit` serialized tf.Examples of an Examples artifact split, as stored."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)]


# ---------------------------------------------------------------------------------------------
# ExampleAnomalies (TFX's ExampleValidator, judged by pipeline.components.data_gate)

ANOMALIES_FILE = "SchemaDiff.pb"


def read_anomalies(anomalies_uri: str, split_names: List[str]) -> List[acceptance.Problem]:
    """Returns the anomalies of an ExampleAnomalies artifact as problems (`pipeline.validation.acceptance`),
    one per split and feature; `text` names split, feature and problem."""
    found = []
    for split in split_names:
        path = f"{anomalies_uri}/Split-{split}/{ANOMALIES_FILE}"
        report = anomalies_pb2.Anomalies()
        report.ParseFromString(io_utils.read_bytes_file(path))
        infos = sorted(report.anomaly_info.items())
        if report.HasField("dataset_anomaly_info"):
            infos.append(("(dataset)", report.dataset_anomaly_info))
        for feature, info in infos:
            found.append(
                {
                    "check": acceptance.SCHEMA_CHECK,
                    "scope": acceptance.WINDOW_SCOPE,
                    "feature": feature,
                    "kind": anomaly_kind(info),
                    "text": f"{split}: feature {feature!r}: {info.short_description}: {info.description}",
                }
            )
    return found


# ---------------------------------------------------------------------------------------------
# DriftReport (pipeline.components.drift_check)

DRIFT_REPORT_FILE = "drift.json"

# TFDV statistics of the checked span and of the reference, in the DriftReport's folder.
NEWEST_STATISTICS_FILE = "newest_span_statistics.pb"
REFERENCE_STATISTICS_FILE = "reference_statistics.pb"

# Custom properties of the DriftReport artifact.
DRIFTED_FEATURES_PROPERTY = "drifted_features"
CHECKED_SPAN_PROPERTY = "checked_span"
REFERENCE_SPANS_PROPERTY = "reference_spans"


# Custom property of StatisticsGen's output (pipeline.components.window_statistics): span -> split
# -> {key, reused}, the kept span statistics (configs.SPAN_STATISTICS_FOLDER) it merged, as the
# drift report records them.
SPAN_STATISTICS_PROPERTY = "span_statistics"


def recorded_span_statistics_keys(recorded: Dict[str, Dict[str, dict]]) -> List[str]:
    """The keys of kept span statistics in a SPAN_STATISTICS_PROPERTY value (parsed) or a drift
    report's "span_statistics": span -> part -> {key, reused}."""
    return sorted({entry["key"] for by_part in recorded.values() for entry in by_part.values()})


class DriftReport(Artifact):
    """The newest span's schema anomalies and drift scores against the reference (DRIFT_REPORT_FILE)."""

    # "<namespace>.<Name>", the form the Vertex (KFP v2) compiler requires of custom types.
    TYPE_NAME = "taxi.DriftReport"


def read_drift_report(uri: str) -> dict:
    """Reads the JSON report of a DriftReport artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, DRIFT_REPORT_FILE)) as report_file:
        return json.load(report_file)


def read_drift_statistics(uri: str, name: str = NEWEST_STATISTICS_FILE) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Reads one of the statistics files of a DriftReport artifact."""
    import tensorflow_data_validation as tfdv  # only a reader of statistics pays for TFDV

    return tfdv.load_stats_binary(os.path.join(uri, name))


# ---------------------------------------------------------------------------------------------
# ExternalTables (pipeline.components.external_table_gen) and ExternalFeatureReport
# (pipeline.components.external_check)

# Custom property of the ExternalTables artifact: per table, source URI, SHA-256, rows, keys.
TABLES_PROPERTY = "tables"


class ExternalTables(Artifact):
    """Snapshots of the external tables a run used: one `<name>.csv` per table."""

    TYPE_NAME = "taxi.ExternalTables"

# The input of EnrichingTransform that takes ExternalTableGen's output.
EXTERNAL_TABLES_KEY = "external_tables"


def table_file(artifact_uri: str, name: str) -> str:
    """The file of table `name` inside an ExternalTables artifact."""
    return os.path.join(artifact_uri, f"{name}.csv")


def table_records(artifact: ExternalTables) -> Dict[str, dict]:
    """What the artifact records per table: source_uri, sha256, rows, first_key, last_key."""
    return json.loads(artifact.get_string_custom_property(TABLES_PROPERTY) or "{}")


def load_tables(artifact_uri: str, names: Sequence[str]) -> Dict[str, external.ExternalTable]:
    """Reads and validates the named tables of an ExternalTables artifact.

    Args:
        artifact_uri: The artifact's folder.
        names: Tables to read, e.g. `table_records(artifact)`'s keys.

    Returns:
        Table name -> table.

    Raises:
        modules.external.ExternalTableError: when a snapshot is malformed.
    """
    return {name: external.read_table(table_file(artifact_uri, name), external.TABLES[name]) for name in names}


EXTERNAL_REPORT_FILE = "external_features.json"


class ExternalFeatureReport(Artifact):
    """Per table: trips matched per span, schema anomalies and drift scores (EXTERNAL_REPORT_FILE)."""

    TYPE_NAME = "taxi.ExternalFeatureReport"


def read_external_report(uri: str) -> dict:
    """Reads the JSON report of an ExternalFeatureReport artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, EXTERNAL_REPORT_FILE)) as report_file:
        return json.load(report_file)


def refusals(report: dict) -> List[str]:
    """Every anomaly line of the report, over all tables."""
    return [line for checked in report["tables"].values() for line in checked["anomalies"]]


def drifted(report: dict) -> List[str]:
    """One line per drifted joined column: table, feature, measure, score against threshold."""
    return [
        f"{name}.{score['feature']} {score['measure']} {score['score']:.3f} > {score['threshold']} "
        f"(span {checked['compared_spans'][1]} against span {checked['compared_spans'][0]})"
        for name, checked in report["tables"].items()
        for score in checked["scores"]
        if score["drifted"]
    ]


# ---------------------------------------------------------------------------------------------
# TrivialBaselineScores (pipeline.components.trivial_baselines), read by the ModelGate

BASELINES_FILE = "baselines.json"
# Custom properties of the TrivialBaselineScores artifact: the headline numbers of BASELINES_FILE.
BEST_SINGLE_FEATURE_PROPERTY = "best_single_feature"
BEST_SINGLE_FEATURE_AUC_PROPERTY = "best_single_feature_auc"
MAJORITY_ACCURACY_PROPERTY = "majority_accuracy"


class TrivialBaselineScores(Artifact):
    """What the majority class and the best single-feature rule score on the eval split (BASELINES_FILE)."""

    TYPE_NAME = "taxi.TrivialBaselineScores"


def read_baselines(uri: str) -> Dict[str, Any]:
    """The baselines a TrivialBaselines step wrote into its artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, BASELINES_FILE)) as baselines_file:
        return json.load(baselines_file)


# ---------------------------------------------------------------------------------------------
# InfraBlessing (pipeline.components.serving_check) and PushedModel (pipeline.components.pusher)

# Custom properties of the InfraBlessing artifact; `blessed` is what TFX's Pusher reads.
BLESSED_PROPERTY = "blessed"
DETAIL_PROPERTY = "detail"
# TFX's flag on an InfraBlessing that holds a stamped model (its Pusher reads the same name).
HAS_MODEL_PROPERTY = "has_model"

# Custom property of the PushedModel artifact when nothing was pushed on purpose.
NOT_PUSHED_REASON_PROPERTY = "not_pushed_reason"


def read_gate_report(blessing_uri: str) -> Dict[str, Any]:
    """The report a ModelGate wrote into its ModelBlessing."""
    with tf.io.gfile.GFile(os.path.join(blessing_uri, GATE_REPORT_FILE)) as report_file:
        return json.load(report_file)
