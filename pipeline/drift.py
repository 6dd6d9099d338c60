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

Both sets of statistics are TFDV's, computed in a Beam pipeline from rows read with
`pipeline.span_rows`, the reader ExampleGen uses, so the checks see what the model trains on.
Any failure to compute fails the step: the check never fails open. The DataGate decides; the
report (and both statistics files) are kept for a refused run and for `pipeline.accept`.
"""
import copy
import json
import math
import os
from typing import Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from modules import features
from pipeline import configs, span_rows
from pipeline.curated_schema import SCHEMA_FILE_NAME
from pipeline.span_example_gen import SPAN_FILES_PROPERTY, common_header, span_fingerprints

REPORT_FILE = "drift.json"
# TFDV statistics of the checked span and of the reference, in the DriftReport's folder.
NEWEST_STATISTICS_FILE = "newest_span_statistics.pb"
REFERENCE_STATISTICS_FILE = "reference_statistics.pb"
# Custom properties of the DriftReport artifact.
DRIFTED_FEATURES_PROPERTY = "drifted_features"
CHECKED_SPAN_PROPERTY = "checked_span"
REFERENCE_SPANS_PROPERTY = "reference_spans"

L_INFINITY = "L-infinity"
JENSEN_SHANNON = "Jensen-Shannon"
# Rows per Arrow RecordBatch handed to TFDV.
_BATCH_ROWS = 1000
# Quantile buckets TFDV keeps per numeric column; the drift buckets are drawn from them.
_QUANTILE_BUCKETS = 100


class DriftReport(Artifact):
    """The newest span's schema anomalies and drift scores against the reference (REPORT_FILE)."""

    # "<namespace>.<Name>", the form the Vertex (KFP v2) compiler requires of custom types.
    TYPE_NAME = "taxi.DriftReport"


class DataDriftError(RuntimeError):
    """The newest span drifted beyond a threshold; the message names features and scores."""

    def __init__(self, message: str, span: Optional[int] = None):
        super().__init__(message)
        self.span = span


_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: L_INFINITY,
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JENSEN_SHANNON,
}


def is_categorical(feature: schema_pb2.Feature) -> bool:
    """True for a string column or an integer column the schema marks categorical."""
    return feature.type == schema_pb2.BYTES or feature.int_domain.is_categorical


def with_comparators(
    schema: schema_pb2.Schema,
    thresholds: configs.DriftConfig,
    comparator: str = "drift",
    only: Optional[Iterable[str]] = None,
) -> schema_pb2.Schema:
    """Returns a copy of `schema` with TFDV comparators on its columns (TFDV's own measures:
    equal-width histograms for numbers; used for the joined columns and for skew).

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
        categorical = is_categorical(feature)
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


# ---------------------------------------------------------------------------------------------
# Statistics of span files, in Beam


class _ReadRecordBatches(beam.DoFn):
    """Reads one span CSV file into Arrow RecordBatches typed by the schema."""

    def __init__(self, header: List[str], types: span_rows.ColumnTypes):
        self._header = header
        self._types = types

    def process(self, path: str):
        rows = []
        # Each file is read with its own header; the batches hold the columns in one order.
        for _, row in span_rows.read_rows(path, span_rows.read_header(path), self._types):
            rows.append(row)
            if len(rows) == _BATCH_ROWS:
                yield span_rows.to_record_batch(rows, self._header, self._types)
                rows = []
        if rows:
            yield span_rows.to_record_batch(rows, self._header, self._types)


def stats_options(schema: schema_pb2.Schema) -> tfdv.StatsOptions:
    """TFDV options of the newest-span checks: types from the schema, fine quantiles."""
    return tfdv.StatsOptions(
        schema=schema,
        infer_type_from_schema=True,
        num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS,
        num_quantiles_histogram_buckets=_QUANTILE_BUCKETS,
    )


def files_statistics(
    groups: Dict[str, Sequence[str]], schema: schema_pb2.Schema, output_dir: str
) -> Dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    """Computes TFDV statistics of each group of CSV files in one Beam pipeline.

    Args:
        groups: Name -> CSV files (sharing one header). A group with no file is skipped.
        schema: The curated schema, for the column types.
        output_dir: Where each group's statistics are written as `<name>` (binary proto).

    Returns:
        Name -> statistics, for every group with files.

    Raises:
        pipeline.span_rows.CsvFormatError: when a file is malformed.
    """
    groups = {name: list(paths) for name, paths in groups.items() if paths}
    types = span_rows.column_types(schema)
    header = common_header([path for paths in groups.values() for path in paths])
    options = stats_options(schema)
    with beam.Pipeline() as pipeline:
        for name, paths in groups.items():
            _ = (
                pipeline
                | f"Files[{name}]" >> beam.Create(paths)
                | f"Read[{name}]" >> beam.ParDo(_ReadRecordBatches(header, types))
                | f"Statistics[{name}]" >> tfdv.GenerateStatistics(options)
                | f"Write[{name}]" >> tfdv.WriteStatisticsToBinaryFile(os.path.join(output_dir, name))
            )
    return {name: tfdv.load_stats_binary(os.path.join(output_dir, name)) for name in groups}


# ---------------------------------------------------------------------------------------------
# Measures on TFDV statistics


def _feature_statistics(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> Dict[str, statistics_pb2.FeatureNameStatistics]:
    dataset = statistics.datasets[0]
    return {".".join(feature.path.step) or feature.name: feature for feature in dataset.features}


def _common(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    return feature.string_stats.common_stats if feature.HasField("string_stats") else feature.num_stats.common_stats


def _frequencies(feature: statistics_pb2.FeatureNameStatistics) -> Dict[str, float]:
    """Value -> share of the present values, plus "(other values)" for what the rank histogram
    leaves out."""
    present = _common(feature).num_non_missing
    counts = {bucket.label: bucket.sample_count for bucket in feature.string_stats.rank_histogram.buckets}
    shares = {label: count / present for label, count in counts.items()}
    rest = 1.0 - sum(shares.values())
    if rest > 1e-9:
        shares["(other values)"] = rest
    return shares


def l_infinity(reference: statistics_pb2.FeatureNameStatistics, newest: statistics_pb2.FeatureNameStatistics) -> float:
    """The largest difference in any value's share between two categorical columns."""
    p, q = _frequencies(reference), _frequencies(newest)
    return max(abs(p.get(value, 0.0) - q.get(value, 0.0)) for value in set(p) | set(q))


def _quantile_buckets(feature: statistics_pb2.FeatureNameStatistics) -> List[statistics_pb2.Histogram.Bucket]:
    for histogram in feature.num_stats.histograms:
        if histogram.type == statistics_pb2.Histogram.QUANTILES:
            return list(histogram.buckets)
    raise ValueError(f"the statistics of {feature.path.step} hold no quantiles histogram")


def _cdf(buckets: Sequence[statistics_pb2.Histogram.Bucket], x: float) -> float:
    """The share of values <= x, values spread evenly inside each quantile bucket."""
    total = sum(bucket.sample_count for bucket in buckets)
    below = 0.0
    for bucket in buckets:
        if bucket.high_value <= x:
            below += bucket.sample_count
        elif bucket.low_value <= x:
            below += bucket.sample_count * (x - bucket.low_value) / (bucket.high_value - bucket.low_value)
    return below / total if total else 0.0


def _masses(buckets: Sequence[statistics_pb2.Histogram.Bucket], boundaries: Sequence[float]) -> List[float]:
    cdf = [0.0] + [_cdf(buckets, boundary) for boundary in boundaries] + [1.0]
    return [max(high - low, 0.0) for low, high in zip(cdf, cdf[1:])]


def quantile_jensen_shannon(
    reference: statistics_pb2.FeatureNameStatistics, newest: statistics_pb2.FeatureNameStatistics, buckets: int
) -> float:
    """Jensen-Shannon divergence (base 2) of two numeric columns over `buckets` buckets holding
    equal shares of the reference's values (fewer where the reference has repeated values)."""
    reference_buckets = _quantile_buckets(reference)
    step = len(reference_buckets) / buckets
    boundaries = sorted({reference_buckets[round(step * k) - 1].high_value for k in range(1, buckets)})
    p = _masses(reference_buckets, boundaries)
    q = _masses(_quantile_buckets(newest), boundaries)
    divergence = 0.0
    for p_share, q_share in zip(p, q):
        mean = (p_share + q_share) / 2
        for share in (p_share, q_share):
            if share > 0:
                divergence += 0.5 * share * math.log2(share / mean)
    return max(divergence, 0.0)


def score_columns(
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    newest: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    drift: configs.DriftConfig,
) -> List[Dict[str, object]]:
    """Scores every schema column of the newest span against the reference.

    Returns:
        One dict per column: feature, measure, score (None when not judged), threshold,
        drifted, judged, and `note` saying why a column is not judged; drifted columns first,
        then by score.
    """
    reference_features, newest_features = _feature_statistics(reference), _feature_statistics(newest)
    scores = []
    for feature in schema.feature:
        categorical = is_categorical(feature)
        entry: Dict[str, object] = {
            "feature": feature.name,
            "measure": L_INFINITY if categorical else JENSEN_SHANNON,
            "score": None,
            "threshold": drift.threshold_for(feature.name, categorical),
            "drifted": False,
            "judged": False,
        }
        scores.append(entry)
        if feature.name in drift.ignored:
            span_time = feature.name in features.SPAN_TIME_KEYS
            entry["note"] = "not judged: changes with the span's time" if span_time else "not judged: ignored"
            continue
        ours, theirs = reference_features.get(feature.name), newest_features.get(feature.name)
        counts = [_common(side).num_non_missing if side is not None else 0 for side in (ours, theirs)]
        if min(counts) < drift.min_sample_size:
            entry["note"] = (
                f"not judged: {counts[1]} values in the span, {counts[0]} in the reference "
                f"(at least {drift.min_sample_size} on each side)"
            )
            continue
        if categorical:
            score = l_infinity(ours, theirs)
        else:
            score = quantile_jensen_shannon(ours, theirs, drift.numeric_buckets)
        entry.update(score=round(score, 4), judged=True, drifted=score > entry["threshold"])
    return sorted(scores, key=lambda s: (not s["drifted"], -(s["score"] if s["score"] is not None else -1)))


def anomaly_kind(info: anomalies_pb2.AnomalyInfo) -> str:
    """What an anomaly is, in TFDV's reason types ("FEATURE_TYPE_LOW_FRACTION_PRESENT"), sorted;
    TFDV's short description says only "Multiple errors" when a feature has several."""
    return ",".join(sorted({anomalies_pb2.AnomalyInfo.Type.Name(reason.type) for reason in info.reason})) or info.short_description


def _completeness(feature: str, schema: schema_pb2.Schema, statistics: statistics_pb2.DatasetFeatureStatisticsList) -> str:
    """" (present in 12.4% of the span's 833 rows; the schema expects at least 50%)", or "" for a
    column the schema sets no completeness for."""
    expected = next((f.presence.min_fraction for f in schema.feature if f.name == feature), 0.0)
    if not expected:
        return ""
    rows = statistics.datasets[0].num_examples
    found = _feature_statistics(statistics).get(feature)
    present = _common(found).num_non_missing if found is not None else 0
    return f" (present in {present / max(rows, 1):.1%} of the span's {rows} rows; the schema expects at least {expected:.0%})"


def anomaly_lines(
    anomalies: anomalies_pb2.Anomalies,
    prefix: str = "",
    schema: Optional[schema_pb2.Schema] = None,
    statistics: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None,
) -> List[Dict[str, str]]:
    """TFDV anomalies as {feature, kind, description}; `kind` is `anomaly_kind`. With the schema
    and statistics, an anomaly about presence names the column's completeness against the schema's."""
    found = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        kind = anomaly_kind(info)
        about_presence = "PRESENT" in kind or "MISSING_COLUMN" in kind
        completeness = (
            _completeness(feature, schema, statistics) if about_presence and schema is not None and statistics is not None else ""
        )
        found.append({"feature": feature, "kind": kind, "description": f"{prefix}feature {feature!r}: {info.description}{completeness}"})
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        found.append({"feature": "(dataset)", "kind": anomaly_kind(info), "description": f"{prefix}{info.description}"})
    return found


def check_span(
    span_files: Dict[int, List[str]], schema: schema_pb2.Schema, drift: configs.DriftConfig, output_dir: str
) -> Dict[str, object]:
    """Checks the newest span of a window: its schema anomalies, and its drift from the rest.

    Args:
        span_files: Span -> CSV files, the window (at least one span).
        schema: The curated schema.
        drift: Thresholds, ignored columns and the minimum sample size.
        output_dir: Where the two statistics files are written.

    Returns:
        The report: checked_span, reference_spans, rows (span and reference), anomalies (of the
        span alone), scores (see `score_columns`; none when the window has one span).

    Raises:
        pipeline.span_rows.CsvFormatError: when a file is malformed.
    """
    newest = max(span_files)
    reference_spans = sorted(span for span in span_files if span != newest)
    groups = {
        NEWEST_STATISTICS_FILE: span_files[newest],
        REFERENCE_STATISTICS_FILE: [path for span in reference_spans for path in span_files[span]],
    }
    statistics = files_statistics(groups, schema, output_dir)
    newest_statistics = statistics[NEWEST_STATISTICS_FILE]
    anomalies = tfdv.validate_statistics(newest_statistics, schema, environment="TRAINING")
    report: Dict[str, object] = {
        "checked_span": newest,
        "reference_spans": reference_spans,
        "rows": {
            "span": newest_statistics.datasets[0].num_examples,
            "reference": statistics[REFERENCE_STATISTICS_FILE].datasets[0].num_examples if reference_spans else 0,
        },
        "anomalies": anomaly_lines(anomalies, f"span {newest} alone: ", schema, newest_statistics),
        "scores": [],
    }
    if not report["rows"]["span"]:
        # TFDV finds nothing wrong with no rows at all; an empty span is refused here.
        report["anomalies"].append(
            {"feature": "(dataset)", "kind": "Empty span", "description": f"span {newest} has no rows: its files hold a header only"}
        )
    if reference_spans:
        report["scores"] = score_columns(statistics[REFERENCE_STATISTICS_FILE], newest_statistics, schema, drift)
    return report


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
    code_fingerprint: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Checks the newest span of the window (see the module docstring) and records the report.

    `drift_config` is `pipeline.configs.DriftConfig.to_json()`;
    `code_fingerprint` keeps a change of this code from being answered from the cache. The
    decision (stop or warn) is the DataGate's.
    """
    del code_fingerprint  # part of the cache key only
    drift = configs.DriftConfig.from_json(drift_config)
    fingerprints = span_fingerprints(examples.get_string_custom_property(SPAN_FILES_PROPERTY))
    if not fingerprints:
        raise ValueError(f"the Examples artifact {examples.uri} records no span files ({SPAN_FILES_PROPERTY})")
    schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE_NAME))
    report = check_span({span: list(files) for span, files in fingerprints.items()}, schema_proto, drift, drift_report.uri)
    report["span_files"] = fingerprints[report["checked_span"]]
    report["on_drift"] = drift.on_drift
    drift_report.set_int_custom_property(CHECKED_SPAN_PROPERTY, report["checked_span"])
    drift_report.set_string_custom_property(REFERENCE_SPANS_PROPERTY, ",".join(map(str, report["reference_spans"])))
    drifted = [score["feature"] for score in report["scores"] if score["drifted"]]
    drift_report.set_string_custom_property(DRIFTED_FEATURES_PROPERTY, ",".join(drifted))
    with tf.io.gfile.GFile(os.path.join(drift_report.uri, REPORT_FILE), "w") as report_file:
        json.dump(report, report_file, indent=2)


def read_report(uri: str) -> dict:
    """Reads the JSON report of a DriftReport artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, REPORT_FILE)) as report_file:
        return json.load(report_file)


def read_statistics(uri: str, name: str = NEWEST_STATISTICS_FILE) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Reads one of the statistics files of a DriftReport artifact."""
    return tfdv.load_stats_binary(os.path.join(uri, name))

