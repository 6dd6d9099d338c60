"""Training-serving skew: logged serving traffic against the statistics the model trained on.

    python -m serving.model_server ... --request_log_dir=/srv/request_log
    python -m pipeline skew --request-log /srv/request_log --output-dir outputs
    python -m pipeline skew --request-log /srv/request_log --output-dir outputs \\
        --to-span data --span 5

Reads the training split's statistics from the newest StatisticsGen run in OUTPUT_DIR's ML
Metadata, computes the same statistics over the logged requests, and scores each model
feature with TFDV's skew comparators (L-infinity for categorical columns, Jensen-Shannon
divergence for numeric ones, thresholds as for drift in `pipeline.configs.DriftConfig`).
`--to-span` writes the logged trips as a new span folder for labelling: `tips` is empty and
there is no `_SUCCESS` marker, so neither the pipeline's schema check nor the watcher takes
it before someone fills in the labels and marks it complete.
"""
import argparse
import csv
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from modules import features
from pipeline import configs
from pipeline.component_ids import STATISTICS_GEN
from pipeline.configs import CURATED_SCHEMA_PATH
from pipeline.ops import metadata
from pipeline.validation import span_rows
from pipeline.validation.comparators import scores_of, with_comparators
from serving.devserver.request_log import LOG_FILE_PREFIX, read_log


class SkewError(ValueError):
    """The skew check cannot run as asked; the message says why."""


def training_statistics_path(output_dir: str, setting: metadata.MetadataSetting = metadata.MetadataSetting()) -> str:
    """Returns the train split statistics file of the newest StatisticsGen run under `output_dir`
    (its ML Metadata where `setting` says)."""
    try:
        store = metadata.open_store(setting, output_dir)
    except metadata.MetadataSettingError as error:
        raise SkewError(f"{error}: run the pipeline first") from None
    context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{STATISTICS_GEN}")
    artifacts = store.get_artifacts_by_context(context.id) if context else []
    statistics = [a for a in artifacts if os.path.exists(os.path.join(a.uri, f"Split-{configs.TRAIN_SPLIT}", "FeatureStats.pb"))]
    if not statistics:
        raise SkewError(f"ML Metadata ({setting.describe(output_dir)}) has no training statistics")
    return os.path.join(max(statistics, key=lambda a: a.id).uri, f"Split-{configs.TRAIN_SPLIT}", "FeatureStats.pb")


def _statistics(batch, options) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of one Arrow RecordBatch, with TFDV's public Beam transform."""
    import tempfile

    import apache_beam as beam

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "serving_statistics.pb")
        with beam.Pipeline() as pipeline:
            _ = pipeline | beam.Create([batch]) | tfdv.GenerateStatistics(options) | tfdv.WriteStatisticsToBinaryFile(path)
        return tfdv.load_stats_binary(path)


def skew_scores(training_statistics_file: str, request_log_dir: str, thresholds: configs.DriftConfig) -> List[Dict[str, object]]:
    """Scores each model feature of the logged requests against the training statistics.

    Returns:
        One dict per feature (feature, measure, score, threshold, skewed), highest score first.

    Raises:
        SkewError: when the log holds no request.
    """
    if not any(name.startswith(LOG_FILE_PREFIX) for name in os.listdir(request_log_dir)):
        raise SkewError(f"request log {request_log_dir!r} holds no {LOG_FILE_PREFIX}* file")
    training = tfdv.load_stats_binary(training_statistics_file)
    curated = tfdv.load_schema_text(CURATED_SCHEMA_PATH)
    # A logged value has the type of its JSON token (`"fare": 7` an int, `7.25` a float); each is
    # read in its column's schema type, as training read the CSV cells.
    types = span_rows.column_types(curated)
    rows = [span_rows.typed_row(span_rows.from_example(example), types) for example in read_log(request_log_dir)]
    if not rows:
        raise SkewError(f"request log {request_log_dir!r} holds no request")
    header = [feature.name for feature in curated.feature]
    options = tfdv.StatsOptions(schema=curated, infer_type_from_schema=True, num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS)
    serving = _statistics(span_rows.to_record_batch(rows, header, types), options)
    schema = with_comparators(curated, thresholds, comparator="skew", only=features.RAW_FEATURE_KEYS)
    anomalies = tfdv.validate_statistics(training, schema, serving_statistics=serving)
    return scores_of(anomalies, comparator="skew", flag="skewed")


def write_span(request_log_dir: str, data_root: str, span: int, header: List[str]) -> str:
    """Writes the logged trips as `data_root/span-<span>/data.csv` (labels empty); returns the path.

    Raises:
        SkewError: when that span folder exists already (nothing stored is overwritten).
    """
    span_dir = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}")
    if os.path.exists(span_dir):
        raise SkewError(f"span folder {span_dir!r} exists already; choose another --span")
    os.makedirs(span_dir)
    path = os.path.join(span_dir, "data.csv")
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow(header)
        for example in read_log(request_log_dir):
            row = span_rows.from_example(example)
            writer.writerow(["" if row.get(column) is None else row[column] for column in header])
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point: 0 when no feature is skewed, 3 when some are, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m pipeline skew", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request-log", required=True, help="the model server's --request_log_dir")
    parser.add_argument("--output-dir", required=True, help="the pipeline's output dir (its metadata.db)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--to-span", metavar="DATA_ROOT", help="also write the logged trips as a new span here")
    parser.add_argument("--span", type=int, help="the span number for --to-span")
    metadata.add_metadata_flag(parser)
    args = parser.parse_args(argv)
    try:
        setting = metadata.setting_from(args.metadata_url)
        scores = skew_scores(training_statistics_path(os.path.abspath(args.output_dir), setting), args.request_log, configs.DriftConfig())
        if args.to_span:
            if args.span is None:
                raise SkewError("--to-span needs --span N")
            header = [feature.name for feature in tfdv.load_schema_text(CURATED_SCHEMA_PATH).feature]
            print(f"wrote {write_span(args.request_log, args.to_span, args.span, header)} (label it, then add {configs.SPAN_COMPLETE_MARKER})")
    except (SkewError, metadata.MetadataSettingError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    skewed = [score for score in scores if score["skewed"]]
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        for score in scores:
            flag = "SKEWED" if score["skewed"] else "ok"
            print(f"{score['feature']:<24}{score['measure']:<16}{score['score']:>8.3f}  (limit {score['threshold']})  {flag}")
        print(f"skewed features: {', '.join(s['feature'] for s in skewed) or 'none'}")
    return 3 if skewed else 0


if __name__ == "__main__":
    sys.exit(main())
