"""Comparators of two sets of TFDV statistics: drift between spans, skew between training and
serving, and TFDV anomalies written as lines a person can act on.

- Categorical columns: the L-infinity distance between value shares.
- Numeric columns: the Jensen-Shannon divergence (base 2, 0..1) over buckets holding equal
  shares of the reference's values (`quantile_jensen_shannon`), so long-tailed columns are
  judged where their trips are; and TFDV's own comparators (`with_comparators`, equal-width
  histograms) for the joined columns and for skew.

Used by the newest-span check (`pipeline.components.drift_check`), the external-feature check,
the DataGate, `pipeline.ops.accept` and `pipeline.ops.skew`.
"""
import copy
import math
from typing import Dict, Iterable, List, Optional, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from modules import features
from pipeline import configs

L_INFINITY = "L-infinity"

JENSEN_SHANNON = "Jensen-Shannon"

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


def describe(scores: List[Dict[str, object]]) -> str:
    """One line per drifted column: feature, measure, score against threshold."""
    return "; ".join(
        f"{s['feature']} {s['measure']} {s['score']:.3f} > {s['threshold']}" for s in scores if s["drifted"]
    )
