"""Times the span-window ExampleGen's executor: split and write per range against TFX's base Do.

Each run is an executor's `Do` in a fresh Python process on synthetic trips from
`pipeline/data_tools/synthetic_data.py`:

- `ranges`: `pipeline.components.example_gen.Executor.Do` as the pipeline runs it: the range
  reader, then each range split by TFX's partition function and written as one gzipped
  TFRecord per split, in a seeded random order.
- `base_do`: the executor before that, TFX's `BaseExampleGenExecutor.Do` with the same range
  reader: a hash `Partition`, `WriteSplit`'s `Reshuffle` and a TFRecord write, per example.
- `row_by_row`: `base_do` with the reader ExampleGen had before ranges: one Beam element per
  file, each row parsed by `span_rows.read_rows` and built with `span_rows.to_example`.

Runs alternate in the order given (default `ranges base_do`), so that a slow minute on the
shared machine falls on both. Rows per second count the executor's `Do` alone (not the
interpreter start or imports); peak memory is the process's maximum resident set, imports
included (the resident set after imports is printed too).

    python benchmarks/example_gen_speed.py --rows 200000 --pairs 3
    python benchmarks/example_gen_speed.py --rows 1000000 --spans 4 --pairs 1 --modes ranges
    python benchmarks/example_gen_speed.py --rows 200000 --pairs 3 --reader-only

`--reader-only` times the two readers without Beam, in this process: CSV file to serialized
examples, nothing written (modes `ranges` and `row_by_row`).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("ranges", "base_do", "row_by_row")
DEFAULT_MODES = ("ranges", "base_do")
READER_MODES = ("ranges", "row_by_row")
# The shipped span whose trips a one-span run resamples (the largest).
ONE_SPAN_SOURCE = 2


def _resident_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_child(mode: str, data_root: str, first_span: int, last_span: int, output_dir: str) -> Dict[str, Any]:
    """Runs the executor once in this process; returns seconds and resident memory."""
    import apache_beam as beam
    from google.protobuf import message
    from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from pipeline import configs, dag
    from pipeline.components import example_gen
    from pipeline.validation import span_rows

    class _ReadFilesRowByRow(beam.DoFn):
        """The reader ExampleGen had before ranges: a whole file per element, row by row."""

        def __init__(self, types: span_rows.ColumnTypes):
            self._types = types

        def process(self, path: str) -> Iterable[Any]:
            for _, row in span_rows.read_rows(path, span_rows.read_header(path), self._types):
                yield span_rows.to_example(row, self._types)

    @beam.ptransform_fn
    def _row_by_row(pipeline, exec_properties, split_pattern):
        import tensorflow_data_validation as tfdv

        settings = example_gen.window_settings(exec_properties)
        files = span_rows.window_files(
            exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern, settings.first_span, settings.last_span
        )
        paths = [path for span_paths in files.values() for path in span_paths]
        span_rows.common_header(paths)
        types = span_rows.column_types(tfdv.load_schema_text(settings.schema_path))
        return pipeline | "ListFiles" >> beam.Create(paths) | "ReadFiles" >> beam.ParDo(_ReadFilesRowByRow(types))

    class _BaseDoExecutor(example_gen.Executor):
        """The executor before per-range writes: TFX's base Do, then the span properties."""

        def Do(self, input_dict, output_dict, exec_properties) -> None:
            BaseExampleGenExecutor.Do(self, input_dict, output_dict, exec_properties)
            example_gen.record_window(artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY]), exec_properties)

    class _RowByRowExecutor(_BaseDoExecutor):
        def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
            return _row_by_row

    component = dag.make_example_gen(data_root, list(range(first_span, last_span + 1)), configs.PipelineOptions())
    exec_properties = {
        key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
        for key, value in component.exec_properties.items()
        if value is not None
    }
    examples = standard_artifacts.Examples()
    examples.uri = output_dir
    executor = {"ranges": example_gen.Executor, "base_do": _BaseDoExecutor, "row_by_row": _RowByRowExecutor}[mode]()
    resident_before = _resident_mib()
    started = time.perf_counter()
    executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return {"seconds": time.perf_counter() - started, "resident_after_imports_mib": resident_before}


def time_once(mode: str, data_root: str, spans: int, work_dir: str) -> Dict[str, Any]:
    """Runs one executor in a fresh process; returns its seconds and peak memory."""
    output_dir = os.path.join(work_dir, f"out_{mode}")
    shutil.rmtree(output_dir, ignore_errors=True)
    result_path = os.path.join(work_dir, "result.json")
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, data_root, str(spans), output_dir, result_path]
    log_path = os.path.join(work_dir, f"{mode}.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{mode} run failed; its output is in {log_path}")
    with open(result_path) as result_file:
        result = json.load(result_file)
    result["peak_mib"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


def time_reader(mode: str, data_root: str) -> float:
    """Seconds to turn every CSV file of the data root into serialized examples, no Beam."""
    import glob

    import tensorflow_data_validation as tfdv

    from pipeline import configs
    from pipeline.validation import span_chunks, span_rows

    types = span_rows.column_types(tfdv.load_schema_text(configs.CURATED_SCHEMA_PATH))
    started = time.perf_counter()
    for path in sorted(glob.glob(os.path.join(data_root, "span-*", "*.csv"))):
        if mode == "ranges":
            for file_range in span_chunks.plan_ranges(path):
                for _ in span_chunks.read_range(file_range, types):
                    pass
        else:
            for _, row in span_rows.read_rows(path, span_rows.read_header(path), types):
                span_rows.to_example(row, types).SerializeToString(deterministic=True)
    return time.perf_counter() - started


def generate_data(rows: int, spans: int, work_dir: str) -> str:
    """Synthetic trips under work_dir (made once per row and span count); returns the data root."""
    from pipeline.data_tools.synthetic_data import generate

    data_root = os.path.join(work_dir, f"data_{rows}_{spans}span")
    if os.path.isdir(data_root):
        return data_root
    source_root = os.path.join(REPO_ROOT, "data")
    if spans == 1:
        # One span of `rows` trips, resampled from the largest shipped span.
        source_root = os.path.join(work_dir, "one_span_source")
        os.makedirs(source_root, exist_ok=True)
        link = os.path.join(source_root, "span-1")
        if not os.path.exists(link):
            os.symlink(os.path.join(REPO_ROOT, "data", f"span-{ONE_SPAN_SOURCE}"), link)
    started = time.perf_counter()
    generate(source_root, data_root, rows)
    print(f"generated {rows:,} rows in {spans} span(s) in {time.perf_counter() - started:.1f} s under {data_root}", flush=True)
    return data_root


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line: rows, spans, pairs of runs, which readers, where to work."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic trips (default 200000)")
    parser.add_argument("--spans", type=int, choices=(1, 4), default=1, help="1: one span of --rows; 4: the shipped proportions")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each reader, alternating (default 3)")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(DEFAULT_MODES), help="executors to time, alternating (default: ranges base_do)"
    )
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "example_gen_speed"), help="data and outputs")
    parser.add_argument("--reader-only", action="store_true", help="time the readers alone, without Beam")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DATA_ROOT", "SPANS", "OUTPUT", "RESULT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Times the readers in turn and prints each run and the summary; returns the exit code."""
    args = parse_args(argv)
    if args.child:
        mode, data_root, spans, output_dir, result_path = args.child
        result = run_child(mode, data_root, 1, int(spans), output_dir)
        with open(result_path, "w") as result_file:
            json.dump(result, result_file)
        return 0
    if args.reader_only and args.modes == list(DEFAULT_MODES):
        args.modes = list(READER_MODES)
    if args.reader_only and not set(args.modes) <= set(READER_MODES):
        print(f"error: --reader-only times the readers {READER_MODES}, not {args.modes}", file=sys.stderr)
        return 2
    if args.rows < args.spans or args.pairs < 1:
        print("error: --rows must be at least --spans and --pairs at least 1", file=sys.stderr)
        return 2
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = generate_data(args.rows, args.spans, args.work_dir)
    runs: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in args.modes}
    try:
        for pair in range(1, args.pairs + 1):
            for mode in args.modes:
                load = " ".join(f"{value:.2f}" for value in os.getloadavg())
                if args.reader_only:
                    result = {"seconds": time_reader(mode, data_root), "peak_mib": float("nan"), "resident_after_imports_mib": float("nan")}
                else:
                    result = time_once(mode, data_root, args.spans, args.work_dir)
                runs[mode].append(result)
                print(
                    f"pair {pair}: {mode:<11} {result['seconds']:7.1f} s {args.rows / result['seconds']:9,.0f} rows/s "
                    f"peak {result['peak_mib']:6,.0f} MiB (after imports {result['resident_after_imports_mib']:,.0f} MiB; load {load})",
                    flush=True,
                )
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"\n{args.rows:,} rows in {args.spans} span(s), {os.cpu_count()} CPUs")
    print(f"{'mode':<12}{'median s':>10}{'rows/s':>10}{'peak MiB':>10}")
    medians = {}
    for mode, results in runs.items():
        medians[mode] = statistics.median(result["seconds"] for result in results)
        peak = max(result["peak_mib"] for result in results)
        print(f"{mode:<12}{medians[mode]:>10.1f}{args.rows / medians[mode]:>10,.0f}{peak:>10,.0f}")
    if "ranges" in medians:
        for mode in medians:
            if mode != "ranges":
                print(f"{mode} / ranges (median seconds): {medians[mode] / medians['ranges']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
