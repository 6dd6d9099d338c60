"""Joins each span of the window to each external table, once per span and table.

For each table and span: the span's trips are joined to the table (with the same
`modules.external.join` the Transform graph runs, on the join column typed by the curated
schema as the Transform reads it), counted (trips, trips with no row in the table), and the
joined columns' TFDV statistics computed. The joins, counts and statistics run in one Beam
pipeline (the component's: DirectRunner here, Dataflow/Flink/Spark at scale), over the join
columns of the span files read in ExampleGen's ranges (`pipeline.validation.span_batches`):
each span is read once for all tables, and no worker holds a whole file.

A span's result for a table is kept beside the drift check's span statistics
(`pipeline.validation.span_statistics.SpanStatisticsStore`), under a key of the span files'
SHA-256, the table's content, the join column's type, the statistics options, the libraries'
versions and the fingerprint of this module and the project code it uses
(`kept_joins_salt`), so a later run joins only the spans it has not seen. Each span's
statistics are computed alone (TFDV slices by span), so a kept one is what the window's
pipeline would compute again.

This module is apart from the check (`pipeline.components.external_check`) because the
check's judging (the drift thresholds, the anomalies' wording) does not change what is kept:
an edit of it keeps every span's join.
"""
import hashlib
import json
import logging
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from modules import external, features
from pipeline import configs
from pipeline.components.artifacts import load_tables
from pipeline.spans import file_sha256
from pipeline.validation import code_scope, span_batches, span_chunks, span_rows, span_statistics

logger = logging.getLogger(__name__)

# The tagged output of `_JoinBatch` with (trips, unmatched) per batch.
_COUNTS = "counts"
# The column `_JoinBatch` adds for TFDV's slices (`_span_slice`), which takes it out again.
_SPAN_COLUMN = "span"
# Increased when what is kept per table and span changes shape.
KEPT_FORMAT = 1


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
        trips: Trips as `span_batches.ReadSpanColumns` reads them: each column a large_list
            of INT or FLOAT values, null where the trip has no value.
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


# The main output's type, for TFDV's type check; the counts go out tagged.
@beam.typehints.with_output_types(pa.RecordBatch)
class _JoinBatch(beam.DoFn):
    """Joins one span's batch of trips to one table: the joined columns and the span as a
    RecordBatch, and (`statistics_split(table, span)`, (trips, unmatched)) on the `_COUNTS`
    output."""

    def __init__(self, tables_uri: str, name: str):
        self._tables_uri = tables_uri
        self._name = name
        self._table: Optional[external.ExternalTable] = None

    def setup(self) -> None:
        self._table = load_tables(self._tables_uri, [self._name])[self._name]

    def process(self, span_trips: Tuple[int, pa.RecordBatch]):
        span, trips = span_trips
        spec = self._table.spec
        keys, present = join_keys(trips, spec.join_feature)
        joined = {name: values.numpy() for name, values in external.join(tf.constant(keys), tf.constant(present), self._table).items()}
        unmatched = int((joined[spec.joined[0]] == features.MISSING_INT).sum())
        yield beam.pvalue.TaggedOutput(_COUNTS, (statistics_split(self._name, span), (trips.num_rows, unmatched)))
        columns = [joined[name] for name in spec.joined] + [np.full(trips.num_rows, span, dtype=np.int64)]
        columns = [span_chunks.one_value_lists(pa.array(values, pa.int64())) for values in columns]
        yield pa.RecordBatch.from_arrays(columns, list(spec.joined) + [_SPAN_COLUMN])


def _span_slice(joined: pa.RecordBatch) -> Iterable[Tuple[str, pa.RecordBatch]]:
    """TFDV's slice function: a batch of one span's joined columns (each batch comes from one
    range of one span), keyed by `slice_key`, without the span column."""
    if not joined.num_rows:
        return
    index = joined.schema.get_field_index(_SPAN_COLUMN)
    kept = [position for position in range(joined.num_columns) if position != index]
    span = joined.column(index).values[0].as_py()
    yield slice_key(span), pa.RecordBatch.from_arrays([joined.column(position) for position in kept], [joined.schema.names[position] for position in kept])


def slice_key(span: int) -> str:
    """The name of a span's dataset in a table's sliced statistics."""
    return f"span-{span}"


def _sum_pairs(pairs: Iterable[Tuple[int, int]]) -> Tuple[int, int]:
    """(trips, unmatched) summed; (0, 0) for no batch at all."""
    trips = unmatched = 0
    for batch_trips, batch_unmatched in pairs:
        trips, unmatched = trips + batch_trips, unmatched + batch_unmatched
    return trips, unmatched


def statistics_split(table: str, span: int) -> str:
    """The statistics split of one table's joined columns on one span: `<table>-span-<N>`."""
    return f"{table}-span-{span}"


def table_fingerprint(table: external.ExternalTable) -> str:
    """The SHA-256 of what a table joins: its spec, keys and values."""
    return hashlib.sha256(repr((table.spec, table.keys, table.values)).encode()).hexdigest()


def table_span_key(file_hashes: Sequence[str], table_name: str, table_content: str, join_type: Optional[int], salt: str) -> str:
    """The key of one table's result on one span: a SHA-256 of everything it depends on.

    The rest of the curated schema does not change what is kept: the joined columns' schema
    comes from the table's spec. It can only make the reader refuse a span, and the drift
    check, whose key holds the whole schema, reads every span again when it changes.

    Args:
        file_hashes: SHA-256 of each of the span's files (order does not matter).
        table_name: The table's name.
        table_content: `table_fingerprint` of the table.
        join_type: The join column's type in the curated schema (`span_rows.column_types`),
            None where the schema lacks it.
        salt: The fingerprint of the code that joins (a change of it joins the span again).
    """
    described = {
        "format": KEPT_FORMAT,
        "kind": "external table check",
        "libraries": span_statistics.library_versions(),
        "files": sorted(file_hashes),
        "table": table_name,
        "content": table_content,
        "join_type": join_type,
        "histogram_buckets": configs.DRIFT_HISTOGRAM_BUCKETS,
        "salt": salt,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def kept_joins_salt() -> str:
    """The fingerprint of the code that joins: this module and the project code it uses
    (`pipeline.validation.code_scope`), part of every kept join's key. Read when a step first
    asks, not at import."""
    return code_scope.fingerprint([__name__])


def joined_spans(
    tables: Dict[str, external.ExternalTable],
    tables_uri: str,
    span_files: Dict[int, List[str]],
    schema: schema_pb2.Schema,
    work_dir: str,
    pipeline: Optional[beam.Pipeline] = None,
    store: Optional[span_statistics.SpanStatisticsStore] = None,
    salt: str = "",
    file_hashes: Optional[Dict[str, str]] = None,
) -> Dict[str, Dict[int, Dict[str, object]]]:
    """Each table's result on each span; a span whose results `store` keeps for every table is
    not read again.

    Every span not kept is read once, in ranges, in one Beam pipeline; each table's
    statistics are one TFDV computation sliced by span, so the pipeline's stages do not
    multiply with the spans.

    Args:
        tables: Table name -> the validated table (as `load_tables(tables_uri, ...)` reads it).
        tables_uri: The ExternalTables artifact's folder, which the workers read the tables from.
        span_files: Span -> CSV files, spans ascending.
        schema: The curated schema, for the join column's type.
        work_dir: Where the Beam pipeline writes each table's sliced statistics and the counts.
        pipeline: The Beam pipeline to run in (the component's); None runs a local one.
        store: Where each table's result on each span is kept from run to run (None: every
            span is joined every time).
        salt: The fingerprint of the code that joins (`kept_joins_salt`), part of each key in
            `store`.
        file_hashes: Path -> SHA-256 where already known (the Examples artifact records them);
            other files are hashed here.

    Returns:
        Table -> span -> {"key", "reused", "result": {"trips", "unmatched", "statistics" (the
        span's DatasetFeatureStatistics, serialized, without a name)}}.

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a span file is malformed.
        ValueError: when a kept result cannot be read (naming its file).
    """
    types = span_rows.column_types(schema)
    hashes = dict(file_hashes or {})
    span_hashes = {span: [hashes.get(path) or file_sha256(path) for path in paths] for span, paths in span_files.items()}
    kept: Dict[str, Dict[int, Dict[str, object]]] = {}
    for name, table in tables.items():
        kept[name] = {}
        content = table_fingerprint(table)
        for span in span_files:
            key = table_span_key(span_hashes[span], name, content, types.get(table.spec.join_feature), salt)
            found = store.load(key) if store is not None else None
            kept[name][span] = {"key": key, "result": found, "reused": found is not None}
    missing = {span: paths for span, paths in span_files.items() if any(kept[name][span]["result"] is None for name in tables)}
    if missing:
        computed = _join_spans(tables, tables_uri, missing, types, work_dir, pipeline)
        for name in tables:
            for span in missing:
                entry = kept[name][span]
                entry.update(result=computed[name][span], reused=False)
                if store is not None:
                    store.save(entry["key"], entry["result"])
    logger.info("external table check: spans %s joined, the others of %s reused", sorted(missing), sorted(span_files))
    return kept


def _join_spans(
    tables: Dict[str, external.ExternalTable],
    tables_uri: str,
    span_files: Dict[int, List[str]],
    types: span_rows.ColumnTypes,
    work_dir: str,
    pipeline: Optional[beam.Pipeline],
) -> Dict[str, Dict[int, Dict[str, object]]]:
    """Joins the spans to every table in one Beam pipeline; returns table -> span ->
    {"trips", "unmatched", "statistics" (the span's DatasetFeatureStatistics, serialized)}."""
    join_columns = sorted({table.spec.join_feature for table in tables.values()})
    counts_path = os.path.join(work_dir, "counts.jsonl")
    statistics_paths = {name: os.path.join(work_dir, f"{name}.statistics.pb") for name in tables}
    with pipeline if pipeline is not None else beam.Pipeline() as running:
        trips = running | "Read" >> span_batches.ReadSpanColumns(span_files, join_columns, types)
        counts = []
        for name, table in tables.items():
            options = tfdv.StatsOptions(
                schema=joined_schema(table.spec),
                num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS,
                experimental_slice_functions=[_span_slice],
            )
            joined = trips | f"Join[{name}]" >> beam.ParDo(_JoinBatch(tables_uri, name)).with_outputs(_COUNTS, main="joined")
            _ = (
                joined.joined
                | f"Statistics[{name}]" >> tfdv.GenerateStatistics(options)
                | f"WriteStatistics[{name}]" >> tfdv.WriteStatisticsToBinaryFile(statistics_paths[name])
            )
            counts.append(joined[_COUNTS])
        # Every table and span gets its line, with no trips read too (a header-only span).
        every_split = [(statistics_split(name, span), (0, 0)) for name in tables for span in span_files]
        _ = (
            (counts + [running | "NoTrips" >> beam.Create(every_split)])
            | "AllCounts" >> beam.Flatten()
            | "Count" >> beam.CombinePerKey(_sum_pairs)
            | "CountJson" >> beam.Map(lambda item: json.dumps({"split": item[0], "trips": item[1][0], "unmatched": item[1][1]}))
            | "WriteCounts" >> beam.io.WriteToText(counts_path, shard_name_template="")
        )
    with tf.io.gfile.GFile(counts_path) as counts_file:
        counts_by_split = {line["split"]: line for line in map(json.loads, counts_file)}
    computed: Dict[str, Dict[int, Dict[str, object]]] = {}
    for name in tables:
        by_slice = {dataset.name: dataset for dataset in tfdv.load_stats_binary(statistics_paths[name]).datasets}
        computed[name] = {}
        for span in span_files:
            counts = counts_by_split[statistics_split(name, span)]
            # A span with no trips has no slice: its statistics say it has no examples.
            statistics = by_slice.get(slice_key(span), statistics_pb2.DatasetFeatureStatistics(num_examples=0))
            # Kept without the span's name: spans with the same files share a key.
            statistics.ClearField("name")
            computed[name][span] = {"trips": counts["trips"], "unmatched": counts["unmatched"], "statistics": statistics.SerializeToString()}
    return computed
