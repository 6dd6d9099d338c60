"""Checks the joined external columns of every span like any other feature.

For each table and each span of the window, the joined columns' counts and statistics
(`pipeline.components.external_join`: computed in the component's Beam pipeline, once per
span and table, and kept from run to run) are validated against a schema made from the
table's spec (each value in its column's range, every trip matched). The newest span's joined
columns are also scored for drift against the previous span with the DriftConfig's
thresholds. Everything goes into a report; the DataGate decides, so the report is kept even
for a refused run.
"""
import json
import os
from typing import Dict, List, Optional

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.components.statistics_gen.stats_artifact_utils import BINARY_PB_BASENAME
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from modules import external
from pipeline import configs
from pipeline.components import external_join
from pipeline.components.artifacts import (
    EXTERNAL_REPORT_FILE,
    SPAN_FILES_PROPERTY,
    SPAN_STATISTICS_PROPERTY,
    ExternalFeatureReport,
    ExternalTables,
    load_tables,
    span_fingerprints,
    table_records,
)
from pipeline.components.curated_schema import SCHEMA_FILE_NAME
from pipeline.validation import span_statistics
from pipeline.validation.comparators import scores_of, with_comparators

# Folder of the report artifact where the Beam pipeline writes each table's statistics sliced
# by span, and every table and span's trips and unmatched trips.
BEAM_OUTPUT_FOLDER = "beam"


def check_tables(
    tables: Dict[str, external.ExternalTable],
    tables_uri: str,
    span_files: Dict[int, List[str]],
    schema: schema_pb2.Schema,
    drift: configs.DriftConfig,
    work_dir: str,
    pipeline: Optional[beam.Pipeline] = None,
    store: Optional[span_statistics.SpanStatisticsStore] = None,
    salt: str = "",
    file_hashes: Optional[Dict[str, str]] = None,
) -> Dict[str, Dict[str, object]]:
    """Joins each span to each table and checks the joined columns; a span whose results
    `store` keeps for every table is not read again (`external_join.joined_spans`).

    Args:
        tables: Table name -> the validated table (as `load_tables(tables_uri, ...)` reads it).
        tables_uri: The ExternalTables artifact's folder, which the workers read the tables from.
        span_files: Span -> CSV files, spans ascending.
        schema: The curated schema, for the join column's type.
        drift: Thresholds and ignored columns for the newest span's drift.
        work_dir: Where the Beam pipeline writes each table's sliced statistics and the counts.
        pipeline: The Beam pipeline to run in (the component's); None runs a local one.
        store: Where each table's result on each span is kept from run to run (None: every
            span is joined every time).
        salt: The fingerprint of the code that joins (`external_join.kept_joins_salt`), part
            of each key in `store`.
        file_hashes: Path -> SHA-256 where already known (the Examples artifact records them);
            other files are hashed here.

    Returns:
        Table -> {"spans": {span: {"trips", "unmatched"}}, "anomalies": [line, ...],
        "compared_spans": [previous, newest] or None, "scores": drift scores (see
        `pipeline.validation.comparators.scores_of`), "statistics": {span: DatasetFeatureStatisticsList},
        "kept": {span: {"key", "reused"}}}.

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a span file is malformed.
        ValueError: when a kept result cannot be read (naming its file).
    """
    kept = external_join.joined_spans(tables, tables_uri, span_files, schema, work_dir, pipeline, store, salt, file_hashes)
    return {name: _table_result(name, table, span_files, drift, kept[name]) for name, table in tables.items()}


def _table_result(
    name: str,
    table: external.ExternalTable,
    span_files: Dict[int, List[str]],
    drift: configs.DriftConfig,
    by_span: Dict[int, Dict[str, object]],
) -> Dict[str, object]:
    """One table's part of the report, from each span's result (span -> {"key", "result",
    "reused"}, as `external_join.joined_spans` returns it)."""
    spec = table.spec
    schema = external_join.joined_schema(spec)
    result: Dict[str, object] = {"spans": {}, "anomalies": [], "compared_spans": None, "scores": [], "statistics": {}, "kept": {}}
    coverage = f"{table.key_text(table.keys[0])} .. {table.key_text(table.keys[-1])}"
    for span in span_files:
        found = by_span[span]["result"]
        counts = {"trips": found["trips"], "unmatched": found["unmatched"]}
        result["spans"][span] = counts
        result["kept"][span] = {"key": by_span[span]["key"], "reused": by_span[span]["reused"]}
        if counts["unmatched"]:
            result["anomalies"].append(
                f"span {span}: {counts['unmatched']} of {counts['trips']} trips have no row in external table {spec.name!r} "
                f"(it covers {coverage}; joined on {spec.join_feature})"
            )
        statistics = statistics_pb2.DatasetFeatureStatisticsList()
        statistics.datasets.add().ParseFromString(found["statistics"])
        statistics.datasets[0].name = external_join.slice_key(span)
        result["statistics"][span] = statistics
        for feature, info in sorted(tfdv.validate_statistics(statistics, schema).anomaly_info.items()):
            result["anomalies"].append(f"span {span}: feature {feature!r}: {info.short_description}: {info.description}")
    if len(span_files) >= 2:
        previous, newest = list(span_files)[-2:]
        anomalies = tfdv.validate_statistics(
            result["statistics"][newest],
            with_comparators(schema, drift),
            previous_statistics=result["statistics"][previous],
        )
        result["compared_spans"] = [previous, newest]
        result["scores"] = scores_of(anomalies)
    return result


@component(use_beam=True)
def ExternalFeatureCheck(
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    external_tables: InputArtifact[ExternalTables],
    # Not "statistics": the Airflow runner names artifacts "<output key>:<run id>", and
    # StatisticsGen's output of the same type already takes that name.
    joined_statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
    report: OutputArtifact[ExternalFeatureReport],
    drift_config: Parameter[str],
    code_fingerprint: Parameter[str] = "",
    span_statistics_dir: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Checks every table's joined columns on every span; writes statistics and a report.

    Statistics splits are named `<table>-span-<N>`, laid out as StatisticsGen lays out its
    own; each holds one dataset, named `span-<N>`. `drift_config` is
    `pipeline.configs.DriftConfig.to_json()`; `code_fingerprint` keeps a change of this code
    from being answered from the cache; `span_statistics_dir` is the folder where each table's
    result on each span is kept from run to run (empty: every span is joined every run), under
    keys salted with the fingerprint of the code that joins (`external_join.kept_joins_salt`),
    so a change of other code, this check's judging included, keeps them. The report
    artifact records the keys it used (SPAN_STATISTICS_PROPERTY: span -> table -> {key,
    reused}), so housekeeping keeps them.
    """
    del code_fingerprint  # part of the cache key only
    drift = configs.DriftConfig.from_json(drift_config)
    fingerprints = span_fingerprints(examples.get_string_custom_property(SPAN_FILES_PROPERTY))
    span_files = {span: list(files) for span, files in fingerprints.items()}
    tables = load_tables(external_tables.uri, sorted(table_records(external_tables)))
    splits = [external_join.statistics_split(name, span) for name in tables for span in span_files]
    joined_statistics.split_names = artifact_utils.encode_split_names(sorted(splits))
    checked = {}
    if tables:
        schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE_NAME))
        checked = check_tables(
            tables,
            external_tables.uri,
            span_files,
            schema_proto,
            drift,
            os.path.join(report.uri, BEAM_OUTPUT_FOLDER),
            beam_pipeline,
            store=span_statistics.SpanStatisticsStore(span_statistics_dir) if span_statistics_dir else None,
            salt=external_join.kept_joins_salt(),
            file_hashes={path: sha for files in fingerprints.values() for path, sha in files.items()},
        )
    kept: Dict[str, Dict[str, dict]] = {}
    for name, result in checked.items():
        for span, statistics in result.pop("statistics").items():
            split_uri = artifact_utils.get_split_uri([joined_statistics], external_join.statistics_split(name, span))
            io_utils.write_bytes_file(os.path.join(split_uri, BINARY_PB_BASENAME), statistics.SerializeToString())
        for span, entry in result["kept"].items():
            kept.setdefault(str(span), {})[name] = entry
    if span_statistics_dir:
        report.set_string_custom_property(SPAN_STATISTICS_PROPERTY, json.dumps(kept, sort_keys=True))
    summary = {"tables": checked, "on_drift": drift.on_drift}
    with tf.io.gfile.GFile(os.path.join(report.uri, EXTERNAL_REPORT_FILE), "w") as report_file:
        json.dump(summary, report_file, indent=2)
