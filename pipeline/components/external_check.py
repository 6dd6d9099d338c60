"""Checks the joined external columns of every span like any other feature.

For each table and each span of the window: join the span's trips to the table (with the
same `modules.external.join` the Transform graph runs), compute TFDV statistics of the
joined columns, and validate them against a schema made from the table's spec (each value
in its column's range, every trip matched). The newest span's joined columns are also
scored for drift against the previous span with the DriftConfig's thresholds. Everything
goes into a report; the DataGate decides, so the report is kept even for a refused run.
"""
import json
import os
from typing import Dict, List

import pandas as pd
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen.stats_artifact_utils import BINARY_PB_BASENAME
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import EXTERNAL_REPORT_FILE, ExternalFeatureReport, ExternalTables, files_by_span, load_tables, table_records
from pipeline.validation.comparators import scores_of, with_comparators


def joined_schema(spec: external.ExternalTableSpec) -> schema_pb2.Schema:
    """The schema of a table's joined columns: one value per trip, within the column's range.

    A trip the table has no row for gets `features.MISSING_INT`, outside every range, so an
    unmatched trip is a schema anomaly.

    Args:
        spec: The table's spec; its joined columns have bounds (checked by the spec).

    Returns:
        One categorical INT feature per joined column.
    """
    schema = schema_pb2.Schema()
    for name in spec.joined:
        column = spec.column(name)
        feature = schema.feature.add(name=name, type=schema_pb2.INT)
        feature.value_count.min = 1
        feature.value_count.max = 1
        feature.presence.min_fraction = 1.0
        feature.int_domain.min = column.min_value
        feature.int_domain.max = column.max_value
        feature.int_domain.is_categorical = True
    return schema


def joined_frame(trips: pd.DataFrame, table: external.ExternalTable) -> pd.DataFrame:
    """Joins trips to the table, as the Transform graph does.

    Args:
        trips: Trips, with the spec's join column as strings or numbers. A trip without the
            column, or with a value that is not a number, has no key.
        table: The validated table.

    Returns:
        One column per joined column, `features.MISSING_INT` where a trip has no row.
    """
    if table.spec.join_feature in trips:
        column = pd.to_numeric(trips[table.spec.join_feature], errors="coerce")
    else:
        column = pd.Series([float("nan")] * len(trips))
    present = column.notna().to_numpy()
    keys = column.fillna(0).astype("int64").to_numpy()
    joined = external.join(tf.constant(keys), tf.constant(present), table)
    return pd.DataFrame({name: values.numpy() for name, values in joined.items()})


def _read_column(path: str, column: str) -> pd.DataFrame:
    """One column of a CSV file (any path tf.io.gfile reads), as strings. When the header lacks
    it, the frame has the file's first column instead, so the trips are still counted."""
    with tf.io.gfile.GFile(path) as csv_file:
        header = pd.read_csv(csv_file, nrows=0).columns
    with tf.io.gfile.GFile(path) as csv_file:
        return pd.read_csv(csv_file, usecols=[column if column in header else header[0]], dtype=str)


def check_table(
    table: external.ExternalTable, span_files: Dict[int, List[str]], drift: configs.DriftConfig
) -> Dict[str, object]:
    """Joins each span to one table and checks the joined columns.

    Returns:
        {"spans": {span: {"trips", "unmatched"}}, "anomalies": [line, ...],
         "compared_spans": [previous, newest] or None, "scores": drift scores (see
         `pipeline.validation.comparators.scores_of`), "statistics": {span: DatasetFeatureStatisticsList}}.
    """
    spec = table.spec
    schema = joined_schema(spec)
    options = tfdv.StatsOptions(schema=schema, num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS)
    result: Dict[str, object] = {"spans": {}, "anomalies": [], "compared_spans": None, "scores": [], "statistics": {}}
    coverage = f"{table.key_text(table.keys[0])} .. {table.key_text(table.keys[-1])}"
    for span, paths in span_files.items():
        trips = pd.concat([_read_column(path, spec.join_feature) for path in paths], ignore_index=True)
        joined = joined_frame(trips, table)
        unmatched = int((joined[spec.joined[0]] == features.MISSING_INT).sum())
        result["spans"][span] = {"trips": len(trips), "unmatched": unmatched}
        if unmatched:
            result["anomalies"].append(
                f"span {span}: {unmatched} of {len(trips)} trips have no row in external table {spec.name!r} "
                f"(it covers {coverage}; joined on {spec.join_feature})"
            )
        statistics = tfdv.generate_statistics_from_dataframe(joined, stats_options=options)
        result["statistics"][span] = statistics
        for name, info in sorted(tfdv.validate_statistics(statistics, schema).anomaly_info.items()):
            result["anomalies"].append(f"span {span}: feature {name!r}: {info.short_description}: {info.description}")
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


def _write_statistics(statistics: standard_artifacts.ExampleStatistics, by_split: Dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> None:
    """Writes one statistics file per split, laid out as StatisticsGen lays out its own."""
    statistics.split_names = artifact_utils.encode_split_names(sorted(by_split))
    for split, proto in by_split.items():
        split_uri = artifact_utils.get_split_uri([statistics], split)
        io_utils.write_bytes_file(os.path.join(split_uri, BINARY_PB_BASENAME), proto.SerializeToString())


@tfx.dsl.components.component
def ExternalFeatureCheck(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    external_tables: tfx.dsl.components.InputArtifact[ExternalTables],
    # Not "statistics": the Airflow runner names artifacts "<output key>:<run id>", and
    # StatisticsGen's output of the same type already takes that name.
    joined_statistics: tfx.dsl.components.OutputArtifact[standard_artifacts.ExampleStatistics],
    report: tfx.dsl.components.OutputArtifact[ExternalFeatureReport],
    drift_config: tfx.dsl.components.Parameter[str],
    code_fingerprint: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Checks every table's joined columns on every span; writes statistics and a report.

    Statistics splits are named `<table>-span-<N>`. `drift_config` is
    `pipeline.configs.DriftConfig.to_json()`; `code_fingerprint` is part of the cache key only.
    """
    del code_fingerprint
    drift = configs.DriftConfig.from_json(drift_config)
    span_files = files_by_span(examples)
    tables = load_tables(external_tables.uri, sorted(table_records(external_tables)))
    summary: Dict[str, object] = {"tables": {}, "on_drift": drift.on_drift}
    by_split = {}
    for name, table in tables.items():
        checked = check_table(table, span_files, drift)
        for span, proto in checked.pop("statistics").items():
            by_split[f"{name}-span-{span}"] = proto
        summary["tables"][name] = checked
    _write_statistics(joined_statistics, by_split)
    with tf.io.gfile.GFile(os.path.join(report.uri, EXTERNAL_REPORT_FILE), "w") as report_file:
        json.dump(summary, report_file, indent=2)


