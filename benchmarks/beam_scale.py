"""Measures the pipeline's Beam work at scale: statistics and Transform, per DirectRunner mode.

Examples:
  .venv/bin/python benchmarks/beam_scale.py --rows 100000
      Generate 100,000 synthetic trips (scripts/generate_taxi_data.py's generator), then time
      TFDV statistics and Transform's analyze-and-transform on them, in_memory and
      multi_processing with 2 workers; check the two modes agree; print a Markdown table.
  nohup .venv/bin/python benchmarks/beam_scale.py --rows 1000000 --json /tmp/scale_1m.json \\
      > /tmp/scale_1m.log 2>&1 &
      The same at a million rows, in the background.

What is timed is what StatisticsGen and Transform do inside the pipeline, without TFX's
bookkeeping: `tfdv.generate_statistics_from_csv` with the curated schema, and
`tft_beam.AnalyzeAndTransformDataset(modules.preprocessing.preprocessing_fn)` over the CSV
rows read with the curated schema, writing the transform graph. Both read CSV, as the
pipeline's ExampleGen does. Rows per second = rows / wall-clock seconds of the Beam job.

Agreement between modes: statistics (count, missing, mean, std, min, max per feature, and
string unique counts) within a relative tolerance; Transform's analyzer results (the
vocabulary files, byte for byte, and the transform graph applied to the same 2,000 raw
trips); and per-column sums and counts over all transformed rows.
"""
import argparse
import csv
import dataclasses
import functools
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2  # noqa: E402
from tensorflow_transform.tf_metadata import schema_utils  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402

from modules.preprocessing import preprocessing_fn  # noqa: E402
from pipeline.configs import CURATED_SCHEMA_PATH  # noqa: E402
from pipeline.data_tools.synthetic_data import generate  # noqa: E402
from pipeline.runners.beam_args import DirectRunnerConfig, beam_args_for  # noqa: E402
from pipeline.validation.table_sources import preprocessing_config, resolve_sources  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Relative tolerance of "the same statistic" and "the same sum" between two runs: the
# order in which Beam combines partial results changes the last bits of a float sum.
RELATIVE_TOLERANCE = 1e-6
# Tolerance of transformed values (float32) summed over all rows, relative to sum |value|.
FLOAT32_TOLERANCE = 1e-5
SAMPLE_ROWS = 2000


@dataclasses.dataclass
class Timing:
    """One timed Beam job."""

    workload: str
    mode: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def _load_schema() -> schema_pb2.Schema:
    return tfdv.load_schema_text(CURATED_SCHEMA_PATH)


def _header(data_root: pathlib.Path) -> List[str]:
    first = sorted(data_root.glob("span-*/*.csv"))[0]
    with open(first, newline="") as data_file:
        return next(csv.reader(data_file))


def run_statistics(data_root: pathlib.Path, beam_args: List[str], output_path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics over every CSV file of the data root, as StatisticsGen computes them."""
    options = tfdv.StatsOptions(schema=_load_schema(), infer_type_from_schema=True)
    return tfdv.generate_statistics_from_csv(
        data_location=str(data_root / "span-*" / "*.csv"),
        stats_options=options,
        output_path=output_path,
        pipeline_options=PipelineOptions(beam_args),
    )


def _column_sums(item) -> Dict[str, List[float]]:
    """Sum, sum of absolute values and count of each transformed column of one record batch."""
    # Imported here: Beam pickles this function by value, without this module's globals.
    import numpy as np  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    record_batch = item[0] if isinstance(item, tuple) else item
    sums = {}
    for name, column in zip(record_batch.schema.names, record_batch.columns):
        while pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = column.flatten()
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        sums[name] = [float(values.sum()), float(np.abs(values).sum()), float(len(values))]
    return sums


class _MergeSums(beam.CombineFn):
    """Adds up per-column [sum, sum of absolute values, count] triples."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, sums):
        return self.merge_accumulators([accumulator, sums])

    def merge_accumulators(self, accumulators):
        merged: Dict[str, List[float]] = {}
        for accumulator in accumulators:
            for name, triple in accumulator.items():
                previous = merged.get(name, [0.0, 0.0, 0.0])
                merged[name] = [a + b for a, b in zip(previous, triple)]
        return merged

    def extract_output(self, accumulator):
        return accumulator


def run_transform(data_root: pathlib.Path, beam_args: List[str], output_dir: pathlib.Path) -> Dict[str, List[float]]:
    """Analyze-and-transform with the project's preprocessing_fn; writes the transform graph
    to output_dir/transform_fn and returns per-column [sum, sum of |value|, count] of the
    transformed rows."""
    source = tfxio.CsvTFXIO(
        file_pattern=str(data_root / "span-*" / "*.csv"),
        column_names=_header(data_root),
        schema=_load_schema(),
        skip_header_lines=1,
        telemetry_descriptors=["benchmark"],
    )
    sums_path = output_dir / "sums.json"
    # The shipped external tables, as EnrichingTransform passes them in a pipeline run.
    tables_config = preprocessing_config({source.name: source.uri for source in resolve_sources()})
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        with tft_beam.Context(temp_dir=str(output_dir / "tmp")):
            raw = pipeline | "ReadCsv" >> source.BeamSource()
            (transformed, _), transform_fn = (
                raw,
                source.TensorAdapterConfig(),
            ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                functools.partial(preprocessing_fn, custom_config=tables_config), output_record_batches=True
            )
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(output_dir))
            _ = (
                transformed
                | "ColumnSums" >> beam.Map(_column_sums)
                | "MergeSums" >> beam.CombineGlobally(_MergeSums())
                | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
                | "WriteSums" >> beam.io.WriteToText(str(sums_path), shard_name_template="")
            )
    return json.loads(sums_path.read_text())


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE_TOLERANCE * max(1.0, abs(a), abs(b))


def compare_statistics(first: statistics_pb2.DatasetFeatureStatisticsList, second: statistics_pb2.DatasetFeatureStatisticsList) -> List[str]:
    """Returns the differences between two statistics results (empty when they agree)."""
    differences = []
    one, other = first.datasets[0], second.datasets[0]
    if one.num_examples != other.num_examples:
        differences.append(f"num_examples {one.num_examples} != {other.num_examples}")
    other_features = {feature.path.step[0]: feature for feature in other.features}
    for feature in one.features:
        name = feature.path.step[0]
        twin = other_features.get(name)
        if twin is None:
            differences.append(f"{name}: missing in the second run")
            continue
        if feature.HasField("num_stats"):
            for field in ("mean", "std_dev", "min", "max", "num_zeros"):
                a, b = getattr(feature.num_stats, field), getattr(twin.num_stats, field)
                if not _close(a, b):
                    differences.append(f"{name}.{field}: {a} != {b}")
            common, twin_common = feature.num_stats.common_stats, twin.num_stats.common_stats
        else:
            if feature.string_stats.unique != twin.string_stats.unique:
                differences.append(f"{name}.unique: {feature.string_stats.unique} != {twin.string_stats.unique}")
            common, twin_common = feature.string_stats.common_stats, twin.string_stats.common_stats
        for field in ("num_non_missing", "num_missing"):
            if getattr(common, field) != getattr(twin_common, field):
                differences.append(f"{name}.{field}: {getattr(common, field)} != {getattr(twin_common, field)}")
    return differences


def _sample_examples(data_root: pathlib.Path, schema: schema_pb2.Schema) -> List[bytes]:
    """The first SAMPLE_ROWS trips of the data root as serialized tf.Examples."""
    types = {feature.name: feature.type for feature in schema.feature}
    first = sorted(data_root.glob("span-*/*.csv"))[0]
    examples = []
    with open(first, newline="") as data_file:
        for index, row in enumerate(csv.DictReader(data_file)):
            if index == SAMPLE_ROWS:
                break
            feature = {}
            for key, cell in row.items():
                if types[key] == schema_pb2.INT:
                    feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)] if cell else []))
                elif types[key] == schema_pb2.FLOAT:
                    feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)] if cell else []))
                else:
                    feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell.encode()] if cell else []))
            examples.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


def _apply_transform(transform_dir: pathlib.Path, serialized: List[bytes]) -> Dict[str, np.ndarray]:
    output = tft.TFTransformOutput(str(transform_dir))
    raw_feature_spec = schema_utils.schema_as_feature_spec(_load_schema()).feature_spec
    parsed = tf.io.parse_example(tf.constant(serialized), raw_feature_spec)
    return {key: value.numpy() for key, value in output.transform_raw_features(parsed).items()}


def compare_transforms(first_dir: pathlib.Path, second_dir: pathlib.Path, data_root: pathlib.Path) -> List[str]:
    """Returns the differences between two Transform runs' analyzer results (empty when equal)."""
    differences = []
    assets = sorted(path.name for path in (first_dir / "transform_fn" / "assets").iterdir())
    for name in assets:
        if (first_dir / "transform_fn" / "assets" / name).read_bytes() != (second_dir / "transform_fn" / "assets" / name).read_bytes():
            differences.append(f"vocabulary {name} differs")
    serialized = _sample_examples(data_root, _load_schema())
    first, second = _apply_transform(first_dir, serialized), _apply_transform(second_dir, serialized)
    for key in sorted(first):
        a, b = first[key].astype(np.float64), second[key].astype(np.float64)
        if not np.allclose(a, b, rtol=RELATIVE_TOLERANCE, atol=1e-6):
            differing = int(np.sum(~np.isclose(a, b, rtol=RELATIVE_TOLERANCE, atol=1e-6)))
            differences.append(f"{key}: {differing} of {len(a)} sample rows differ (max |diff| {np.max(np.abs(a - b)):.3g})")
    return differences


def compare_sums(first: Dict[str, List[float]], second: Dict[str, List[float]]) -> List[str]:
    """Returns the transformed columns whose sums or counts differ between two runs.

    Sums are compared relative to the sum of absolute values: a z-scored column sums to
    about 0, and float32 values summed in another order differ in the last bits.
    """
    differences = []
    for name in sorted(set(first) | set(second)):
        if name not in first or name not in second:
            differences.append(f"{name}: only in one run")
            continue
        (sum_a, abs_a, count_a), (sum_b, _, count_b) = first[name], second[name]
        if count_a != count_b or abs(sum_a - sum_b) > FLOAT32_TOLERANCE * max(1.0, abs_a):
            differences.append(f"{name}: sum {sum_a:.9g} vs {sum_b:.9g}, count {count_a:.0f} vs {count_b:.0f}")
    return differences


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def benchmark(rows: int, workers: int, work_dir: pathlib.Path, seed: int) -> Dict:
    """Generates `rows` trips (once) and times both workloads in both modes; returns a report."""
    data_root = work_dir / f"data_{rows}_seed{seed}"
    if not data_root.exists():
        started = time.perf_counter()
        generate(str(REPO_ROOT / "data"), str(data_root), rows, seed=seed)
        print(f"generated {rows} rows in {time.perf_counter() - started:.1f}s under {data_root}", flush=True)
    modes = {
        "in_memory": beam_args_for(DirectRunnerConfig(mode="in_memory")),
        f"multi_processing x{workers}": beam_args_for(DirectRunnerConfig(mode="multi_processing", num_workers=workers)),
    }
    report: Dict = {
        "rows": rows,
        "cpu_count": os.cpu_count(),
        "load_average_before": _load_average(),
        "timings": [],
        "beam_args": modes,
    }
    statistics, transforms, sums = {}, {}, {}
    for mode, beam_args in modes.items():
        out = work_dir / f"run_{rows}_{mode.split()[0]}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for workload in ("statistics", "transform"):
            load = _load_average()
            started = time.perf_counter()
            if workload == "statistics":
                statistics[mode] = run_statistics(data_root, beam_args, str(out / "stats.tfrecord"))
            else:
                sums[mode] = run_transform(data_root, beam_args, out)
                transforms[mode] = out
            timing = Timing(workload, mode, rows, time.perf_counter() - started)
            report["timings"].append({**dataclasses.asdict(timing), "rows_per_second": timing.rows_per_second, "load_average": load})
            print(
                f"{workload:10s} {mode:20s} {rows:>9d} rows {timing.seconds:8.1f}s {timing.rows_per_second:10.0f} rows/s (load {load})",
                flush=True,
            )
    first, second = list(modes)
    report["statistics_differences"] = compare_statistics(statistics[first], statistics[second])
    report["analyzer_differences"] = compare_transforms(transforms[first], transforms[second], data_root)
    report["transformed_sum_differences"] = compare_sums(sums[first], sums[second])
    report["load_average_after"] = _load_average()
    return report


def markdown(report: Dict) -> str:
    """The report as a Markdown table plus the agreement lines."""
    lines = [
        f"rows {report['rows']:,}, {report['cpu_count']} cores, load average before {report['load_average_before']}, "
        f"after {report['load_average_after']}",
        "",
        "| workload | mode | seconds | rows/s | load average (1, 5, 15 min) at start |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for timing in report["timings"]:
        lines.append(
            f"| {timing['workload']} | {timing['mode']} | {timing['seconds']:.1f} | {timing['rows_per_second']:,.0f} | {timing['load_average']} |"
        )
    for key in ("statistics_differences", "analyzer_differences", "transformed_sum_differences"):
        found = report[key]
        lines.append(f"- {key.replace('_', ' ')}: {'none' if not found else '; '.join(found)}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic trips to process (default: 100000)")
    parser.add_argument("--workers", type=int, default=2, help="multi_processing workers (default: 2)")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "taxi_beam_scale"), help="data and outputs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default: 0)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.workers < 1:
        print("error: --rows and --workers must be at least 1", file=sys.stderr)
        return 2
    work_dir = pathlib.Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = benchmark(args.rows, args.workers, work_dir, args.seed)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
