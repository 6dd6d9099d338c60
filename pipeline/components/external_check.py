"""Checks the joined external columns of every span like any other feature.

For each table and each span of the window: join the span's trips to the table (with the
same `modules.external.join` the Transform graph runs, on the join column typed by the
curated schema as the Transform reads it), compute TFDV statistics of the joined columns,
and validate them against a schema made from the table's spec (each value in its column's
range, every trip matched). The newest span's joined columns are also scored for drift
against the previous span with the DriftConfig's thresholds. Everything goes into a report;
the DataGate decides, so the report is kept even for a refused run.

The joins, counts and statistics run in the component's Beam pipeline (the pipeline's Beam
arguments: DirectRunner here, Dataflow/Flink/Spark at scale), over the span files read in
ExampleGen's ranges (`pipeline.validation.span_batches`): each span is read once for all
tables, and no worker holds a whole file.
"""
import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen.stats_artifact_utils import BINARY_PB_BASENAME
from tfx.types import artifact_utils, standard_artifacts

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import EXTERNAL_REPORT_FILE, ExternalFeatureReport, ExternalTables, files_by_span, load_tables, table_records
from pipeline.components.curated_schema import SCHEMA_FILE_NAME
from pipeline.validation import span_batches, span_rows
from pipeline.validation.comparators import scores_of, with_comparators

# The tagged output of `_JoinBatch` with (trips, unmatched) per batch.
_COUNTS = "counts"
# Folder of the report artifact holding each table and span's (trips, unmatched), as Beam wrote them.
COUNTS_FOLDER = "counts"


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


def join_keys(trips: pa.RecordBatch, column: str) -> Tuple[np.ndarray, np.ndarray]:
    """The join keys of a batch of trips, as the Transform graph takes them.

    Args:
        trips: Trips decoded from tf.Examples (`span_batches.ReadSpanFiles`): each column a
            large_list of INT or FLOAT values, null where the trip has no value.
        column: The join column. A batch without it has no key for any trip.

    Returns:
        (keys, present): int64 keys (a FLOAT value truncated, as `tf.cast` does; 0 where
        absent) and whether each trip has a key.

    Raises:
        ValueError: when the column holds text: the curated schema must type it as a number.
    """
    keys = np.zeros(trips.num_rows, dtype=np.int64)
    index = trips.schema.get_field_index(column)
    if index < 0:
        return keys, np.zeros(trips.num_rows, dtype=bool)
    values = trips.column(index)
    if not pa.types.is_integer(values.type.value_type) and not pa.types.is_floating(values.type.value_type):
        raise ValueError(f"the join column {column!r} holds {values.type.value_type} values: the curated schema must type it INT or FLOAT")
    offsets = np.asarray(values.offsets)
    # Absent (null) and empty lists have no value; a CSV cell holds at most one.
    present = (offsets[1:] > offsets[:-1]) & np.asarray(values.is_valid())
    flat = values.values.to_numpy(zero_copy_only=False)
    keys[present] = flat[offsets[:-1][present]].astype(np.int64)
    return keys, present


def _one_value_lists(values: np.ndarray) -> pa.Array:
    """A large_list array holding one int64 value per row, as tfx_bsl's decoder gives a column."""
    return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), pa.int64()), pa.array(values, pa.int64()))


# The main output's type, for TFDV's type check; the counts go out tagged.
@beam.typehints.with_output_types(pa.RecordBatch)
class _JoinBatch(beam.DoFn):
    """Joins a batch of trips to one table: the joined columns as a RecordBatch, and
    (trips, unmatched) on the `_COUNTS` output."""

    def __init__(self, tables_uri: str, name: str):
        self._tables_uri = tables_uri
        self._name = name
        self._table: Optional[external.ExternalTable] = None

    def setup(self) -> None:
        self._table = load_tables(self._tables_uri, [self._name])[self._name]

    def process(self, trips: pa.RecordBatch):
        spec = self._table.spec
        keys, present = join_keys(trips, spec.join_feature)
        joined = {name: values.numpy() for name, values in external.join(tf.constant(keys), tf.constant(present), self._table).items()}
        yield beam.pvalue.TaggedOutput(_COUNTS, (trips.num_rows, int((joined[spec.joined[0]] == features.MISSING_INT).sum())))
        yield pa.RecordBatch.from_arrays([_one_value_lists(joined[name]) for name in spec.joined], list(spec.joined))


def _sum_pairs(pairs: Iterable[Tuple[int, int]]) -> Tuple[int, int]:
    """(trips, unmatched) summed; (0, 0) for no batch at all."""
    trips = unmatched = 0
    for batch_trips, batch_unmatched in pairs:
        trips, unmatched = trips + batch_trips, unmatched + batch_unmatched
    return trips, unmatched


def statistics_split(table: str, span: int) -> str:
    """The statistics split of one table's joined columns on one span: `<table>-span-<N>`."""
    return f"{table}-span-{span}"


def check_tables(
    tables: Dict[str, external.ExternalTable],
    tables_uri: str,
    span_files: Dict[int, List[str]],
    schema: schema_pb2.Schema,
    drift: configs.DriftConfig,
    statistics_paths: Dict[str, str],
    counts_dir: str,
    pipeline: Optional[beam.Pipeline] = None,
) -> Dict[str, Dict[str, object]]:
    """Joins each span to each table in one Beam pipeline and checks the joined columns.

    Args:
        tables: Table name -> the validated table (as `load_tables(tables_uri, ...)` reads it).
        tables_uri: The ExternalTables artifact's folder, which the workers read the tables from.
        span_files: Span -> CSV files, spans ascending.
        schema: The curated schema, for the join column's type.
        drift: Thresholds and ignored columns for the newest span's drift.
        statistics_paths: `statistics_split(table, span)` -> where its statistics are written.
        counts_dir: Where each table and span's (trips, unmatched) is written.
        pipeline: The Beam pipeline to run in (the component's); None runs a local one.

    Returns:
        Table -> {"spans": {span: {"trips", "unmatched"}}, "anomalies": [line, ...],
        "compared_spans": [previous, newest] or None, "scores": drift scores (see
        `pipeline.validation.comparators.scores_of`), "statistics": {span: DatasetFeatureStatisticsList}}.

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a span file is malformed.
    """
    types = span_rows.column_types(schema)
    header = span_rows.common_header([path for paths in span_files.values() for path in paths])
    options = {
        name: tfdv.StatsOptions(schema=joined_schema(table.spec), num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS)
        for name, table in tables.items()
    }
    counts_paths = {}
    with pipeline if pipeline is not None else beam.Pipeline() as running:
        for span, paths in span_files.items():
            trips = running | f"Read[span-{span}]" >> span_batches.ReadSpanFiles(paths, header, types)
            for name in tables:
                split = statistics_split(name, span)
                joined = trips | f"Join[{split}]" >> beam.ParDo(_JoinBatch(tables_uri, name)).with_outputs(_COUNTS, main="joined")
                _ = (
                    joined.joined
                    | f"Statistics[{split}]" >> tfdv.GenerateStatistics(options[name])
                    | f"WriteStatistics[{split}]" >> tfdv.WriteStatisticsToBinaryFile(statistics_paths[split])
                )
                counts_paths[split] = os.path.join(counts_dir, f"{split}.json")
                _ = (
                    joined[_COUNTS]
                    | f"Count[{split}]" >> beam.CombineGlobally(_sum_pairs)
                    | f"CountJson[{split}]" >> beam.Map(lambda pair: json.dumps({"trips": pair[0], "unmatched": pair[1]}))
                    | f"WriteCounts[{split}]" >> beam.io.WriteToText(counts_paths[split], shard_name_template="")
                )
    return {
        name: _table_result(name, table, span_files, drift, statistics_paths, counts_paths) for name, table in tables.items()
    }


def _table_result(
    name: str,
    table: external.ExternalTable,
    span_files: Dict[int, List[str]],
    drift: configs.DriftConfig,
    statistics_paths: Dict[str, str],
    counts_paths: Dict[str, str],
) -> Dict[str, object]:
    """One table's part of the report, from what the Beam pipeline wrote."""
    spec = table.spec
    schema = joined_schema(spec)
    result: Dict[str, object] = {"spans": {}, "anomalies": [], "compared_spans": None, "scores": [], "statistics": {}}
    coverage = f"{table.key_text(table.keys[0])} .. {table.key_text(table.keys[-1])}"
    for span in span_files:
        split = statistics_split(name, span)
        with tf.io.gfile.GFile(counts_paths[split]) as counts_file:
            counts = json.loads(counts_file.read())
        result["spans"][span] = counts
        if counts["unmatched"]:
            result["anomalies"].append(
                f"span {span}: {counts['unmatched']} of {counts['trips']} trips have no row in external table {spec.name!r} "
                f"(it covers {coverage}; joined on {spec.join_feature})"
            )
        statistics = tfdv.load_stats_binary(statistics_paths[split])
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


@tfx.dsl.components.component(use_beam=True)
def ExternalFeatureCheck(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    external_tables: tfx.dsl.components.InputArtifact[ExternalTables],
    # Not "statistics": the Airflow runner names artifacts "<output key>:<run id>", and
    # StatisticsGen's output of the same type already takes that name.
    joined_statistics: tfx.dsl.components.OutputArtifact[standard_artifacts.ExampleStatistics],
    report: tfx.dsl.components.OutputArtifact[ExternalFeatureReport],
    drift_config: tfx.dsl.components.Parameter[str],
    code_fingerprint: tfx.dsl.components.Parameter[str] = "",
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Checks every table's joined columns on every span; writes statistics and a report.

    Statistics splits are named `<table>-span-<N>`, laid out as StatisticsGen lays out its
    own. `drift_config` is `pipeline.configs.DriftConfig.to_json()`; `code_fingerprint` is
    part of the cache key only.
    """
    del code_fingerprint
    drift = configs.DriftConfig.from_json(drift_config)
    span_files = files_by_span(examples)
    tables = load_tables(external_tables.uri, sorted(table_records(external_tables)))
    splits = [statistics_split(name, span) for name in tables for span in span_files]
    joined_statistics.split_names = artifact_utils.encode_split_names(sorted(splits))
    statistics_paths = {
        split: os.path.join(artifact_utils.get_split_uri([joined_statistics], split), BINARY_PB_BASENAME) for split in splits
    }
    checked = {}
    if tables:
        schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE_NAME))
        checked = check_tables(
            tables, external_tables.uri, span_files, schema_proto, drift, statistics_paths,
            os.path.join(report.uri, COUNTS_FOLDER), beam_pipeline,
        )
    for result in checked.values():
        del result["statistics"]
    summary = {"tables": checked, "on_drift": drift.on_drift}
    with tf.io.gfile.GFile(os.path.join(report.uri, EXTERNAL_REPORT_FILE), "w") as report_file:
        json.dump(summary, report_file, indent=2)
