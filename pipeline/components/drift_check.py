"""The newest span's checks: its completeness and types against the schema, its drift from the
training window.

The newest span of the window is what changed since the last run, so it is judged alone:
- **Schema anomalies of the span by itself** (TFDV's `validate_statistics` against the curated
  schema): a column that goes from mostly present to mostly empty in the newest span fails
  its `presence.min_fraction` even when the window as a whole, diluted by older spans, passes.
- **Drift against the reference**, the window's earlier spans (what a model trained on the
  window learnt from), so slow drift over several spans adds up instead of hiding between
  neighbours. Categorical columns: the L-infinity distance between value frequencies.
  Numeric columns: the Jensen-Shannon divergence (base 2, 0..1) over the reference's quantile
  buckets, so long-tailed columns are judged where their trips are (equal-width buckets put
  most fares in one bucket and barely move when fares rise by half).
- Columns that change by construction with the span's time (`features.SPAN_TIME_KEYS`) are
  not judged, and a score with fewer than `DriftConfig.min_sample_size` values on either side
  is reported but not judged.

Both sets of statistics are TFDV's, computed in the component's Beam pipeline (the pipeline's
Beam arguments: DirectRunner here, Dataflow/Flink/Spark at scale) from the span files read in
ranges by `pipeline.validation.span_chunks`, ExampleGen's own reader, so the checks see the
examples the model trains on. Each span's are computed once and kept in the pipeline root
(`pipeline.validation.span_statistics`): a later run reads only the spans it has not seen,
and the reference's statistics are its spans' merged.
The measures are `pipeline.validation.comparators`'; the report's readers are in
`pipeline.components.artifacts`.
Any failure to compute fails the step: the check never fails open. The DataGate decides; the
report (and both statistics files) are kept for a refused run and for `pipeline.ops.accept`.
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
from tfx.types import standard_artifacts

from pipeline import configs
from pipeline.components.artifacts import (
    CHECKED_SPAN_PROPERTY,
    DRIFT_REPORT_FILE,
    DRIFTED_FEATURES_PROPERTY,
    NEWEST_STATISTICS_FILE,
    REFERENCE_SPANS_PROPERTY,
    REFERENCE_STATISTICS_FILE,
    SPAN_FILES_PROPERTY,
    DriftReport,
    span_fingerprints,
)
from pipeline.components import example_gen
from pipeline.components.curated_schema import SCHEMA_FILE_NAME
from pipeline.validation import span_statistics
from pipeline.validation.comparators import anomaly_lines, score_columns

# ---------------------------------------------------------------------------------------------
# Statistics of span files, in Beam


def _write_statistics(statistics: statistics_pb2.DatasetFeatureStatisticsList, path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as written:
        written.write(statistics.SerializeToString())


# ---------------------------------------------------------------------------------------------
# Measures on TFDV statistics


def check_span(
    span_files: Dict[int, List[str]],
    schema: schema_pb2.Schema,
    drift: configs.DriftConfig,
    output_dir: str,
    pipeline: Optional[beam.Pipeline] = None,
    store: Optional[span_statistics.SpanStatisticsStore] = None,
    salt: str = "",
    file_hashes: Optional[Dict[str, str]] = None,
    parts: span_statistics.Parts = span_statistics.WHOLE_SPAN,
) -> Dict[str, object]:
    """Checks the newest span of a window: its schema anomalies, and its drift from the rest.

    Each span's statistics are computed once (`pipeline.validation.span_statistics`): a span
    whose statistics `store` keeps is not read again, and the reference's are its spans' merged.

    Args:
        span_files: Span -> CSV files, the window (at least one span).
        schema: The curated schema.
        drift: Thresholds, ignored columns and the minimum sample size.
        output_dir: Where the two statistics files are written.
        pipeline: The Beam pipeline the statistics are computed in (None: a local one).
        store: Where span statistics are kept from run to run (None: computed every time).
        salt: The fingerprint of the code that computes span statistics, part of each span's
            key in `store`.
        file_hashes: Path -> SHA-256 of the files, where known.
        parts: How each span's statistics are kept (the pipeline keeps them per ExampleGen
            split, which `WindowStatisticsGen` merges into the window's split statistics).

    Returns:
        The report: checked_span, reference_spans, rows (span and reference), anomalies (of the
        span alone), scores (see `score_columns`; none when the window has one span), and
        span_statistics (span -> part -> key in the store, and whether it was reused).

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a file is malformed.
    """
    newest = max(span_files)
    reference_spans = sorted(span for span in span_files if span != newest)
    options = span_statistics.statistics_options(schema)
    header = span_statistics.window_header(span_files)
    partials = span_statistics.span_partials(span_files, header, schema, options, store, salt, file_hashes, pipeline, parts)

    def statistics_of(spans: List[int]) -> statistics_pb2.DatasetFeatureStatisticsList:
        return span_statistics.merged_statistics([entry["partials"] for span in spans for entry in partials[span].values()], options)

    newest_statistics = statistics_of([newest])
    _write_statistics(newest_statistics, os.path.join(output_dir, NEWEST_STATISTICS_FILE))
    anomalies = tfdv.validate_statistics(newest_statistics, schema, environment="TRAINING")
    report: Dict[str, object] = {
        "checked_span": newest,
        "reference_spans": reference_spans,
        "rows": {"span": newest_statistics.datasets[0].num_examples, "reference": 0},
        "anomalies": anomaly_lines(anomalies, f"span {newest} alone: ", schema, newest_statistics),
        "scores": [],
        "span_statistics": {
            str(span): {part: {"key": entry["key"], "reused": entry["reused"]} for part, entry in by_part.items()}
            for span, by_part in partials.items()
        },
    }
    if not report["rows"]["span"]:
        # TFDV finds nothing wrong with no rows at all; an empty span is refused here.
        report["anomalies"].append(
            {"feature": "(dataset)", "kind": "Empty span", "description": f"span {newest} has no rows: its files hold a header only"}
        )
    if reference_spans:
        reference = statistics_of(reference_spans)
        _write_statistics(reference, os.path.join(output_dir, REFERENCE_STATISTICS_FILE))
        report["rows"]["reference"] = reference.datasets[0].num_examples
        report["scores"] = score_columns(reference, newest_statistics, schema, drift)
    return report


@component(use_beam=True)
def SpanDriftCheck(
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    drift_report: OutputArtifact[DriftReport],
    drift_config: Parameter[str],
    split_config: Parameter[str] = "",
    code_fingerprint: Parameter[str] = "",
    span_statistics_dir: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Checks the newest span of the window (see the module docstring) and records the report.

    `drift_config` is `pipeline.configs.DriftConfig.to_json()`; `split_config` the window
    ExampleGen's output config (JSON): span statistics are kept per split, as
    `WindowStatisticsGen` merges them (empty: per span);
    `code_fingerprint` keeps a change of this code from being answered from the cache;
    `span_statistics_dir` is the folder where span statistics are kept from run to run (empty:
    computed every run), under keys salted with the fingerprint of the code that computes them
    (`example_gen.split_statistics_salt`), so a change of other code keeps them. The decision
    (stop or warn) is the DataGate's.
    """
    del code_fingerprint  # part of the cache key only
    drift = configs.DriftConfig.from_json(drift_config)
    fingerprints = span_fingerprints(examples.get_string_custom_property(SPAN_FILES_PROPERTY))
    if not fingerprints:
        raise ValueError(f"the Examples artifact {examples.uri} records no span files ({SPAN_FILES_PROPERTY})")
    schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE_NAME))
    store = span_statistics.SpanStatisticsStore(span_statistics_dir) if span_statistics_dir else None
    report = check_span(
        {span: list(files) for span, files in fingerprints.items()},
        schema_proto,
        drift,
        drift_report.uri,
        beam_pipeline,
        store=store,
        salt=example_gen.split_statistics_salt(),
        file_hashes={path: sha for files in fingerprints.values() for path, sha in files.items()},
        parts=example_gen.split_parts(split_config) if split_config else span_statistics.WHOLE_SPAN,
    )
    report["span_files"] = fingerprints[report["checked_span"]]
    report["on_drift"] = drift.on_drift
    drift_report.set_int_custom_property(CHECKED_SPAN_PROPERTY, report["checked_span"])
    drift_report.set_string_custom_property(REFERENCE_SPANS_PROPERTY, ",".join(map(str, report["reference_spans"])))
    drifted = [score["feature"] for score in report["scores"] if score["drifted"]]
    drift_report.set_string_custom_property(DRIFTED_FEATURES_PROPERTY, ",".join(drifted))
    with tf.io.gfile.GFile(os.path.join(drift_report.uri, DRIFT_REPORT_FILE), "w") as report_file:
        json.dump(report, report_file, indent=2)


