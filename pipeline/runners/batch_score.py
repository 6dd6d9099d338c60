"""Batch scoring: `python -m pipeline score`, P(big tipper) for every trip of a span, in one file.

    python -m pipeline score --span-dir data/span-4 --output /tmp/span-4-scores.csv
    python -m pipeline score --data-root data --span 4 --serving-dir outputs/serving_model --output scores.parquet
    python -m pipeline score --span-dir data/span-4 --saved-model outputs/serving_model/1796391526 --output scores.csv

The scoring is the Beam inference TFX's BulkInferrer runs: tfx_bsl's `RunInference` over the
SavedModel's tf.Example signature (`serving_tf_example`), on the runner the flags choose
(`pipeline/runners/beam_args.py`: DirectRunner here, Dataflow, Flink or Spark). What differs is
the input and the output. The BulkInferrer reads an ExampleGen artifact and writes
PredictionLogs, which a user cannot open; this command reads a span's CSV files with the
pipeline's own reader (`pipeline/validation/span_rows.py`: types from the curated schema, an
empty cell an absent feature, a bad cell an error naming file, line, column and value) and
writes one row per trip:

    file,line,trip_start_timestamp,big_tipper_probability
    data.csv,2,1362683700,0.03357166

`file` is the CSV file's name in the span folder and `line` the line its row starts on (the
header is line 1), so every score joins back to its trip; `trip_start_timestamp` is copied from
the row (empty where the cell was). Rows are sorted by file, then line. The output is CSV, or
Parquet when its name ends in `.parquet`. It is written whole or not at all: to a temporary
file beside it, renamed into place at the end; a run that fails leaves no file. An existing
output is kept unless `--overwrite` says to replace it. Two runs write the same trips in the same
order; a score may differ in the last bits of its float32 (at most about 2e-7), since the
model computes a batch at a time and Beam may batch the trips differently.

The model is, by default, the version that serves now (`serving.versions.serving_version`:
what `models.config` beside the serving directory pins, else the newest complete version), or
the SavedModel folder `--saved-model` names.
"""
import argparse
import csv
import dataclasses
import io
import logging
import os
import re
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from modules import features
from pipeline import configs
from pipeline.runners import beam_args
from serving import versions

if TYPE_CHECKING:
    from tfx_bsl.public.proto import model_spec_pb2

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DATA_REFUSED = 2
EXIT_USAGE = 64

# The output's columns. The probability column is named like the model's output
# (modules.signatures.PROBABILITY_OUTPUT; that module imports TensorFlow Transform, which
# `--help` and a usage error need not wait for, so a test checks the two names agree).
FILE_COLUMN = "file"
LINE_COLUMN = "line"
PROBABILITY_COLUMN = "big_tipper_probability"
OUTPUT_COLUMNS: Tuple[str, ...] = (FILE_COLUMN, LINE_COLUMN, features.TIMESTAMP_KEY, PROBABILITY_COLUMN)
PARQUET_SUFFIX = ".parquet"
RUNNERS: Tuple[str, ...] = ("direct", "dataflow", "flink", "spark")
# The Beam counter of scored trips, read back from the pipeline result.
SCORED_COUNTER = "scored_trips"

# run_local.py's default output dir is the repository's outputs/; so is this command's model.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A (file, line, timestamp or None) key and the score row made from it.
TripKey = Tuple[str, int, Optional[int]]
ScoreRow = Tuple[str, int, Optional[int], float]


class BatchScoreError(ValueError):
    """The scoring cannot run as asked (no such span, model or output folder); the message says why."""


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """What one scoring run did."""

    span_dir: str
    model_path: str
    output_path: str
    rows: int
    seconds: float


def _is_remote(path: str) -> bool:
    return "://" in path


def span_files(span_dir: str) -> List[str]:
    """Returns the span's CSV files (`configs.SPAN_FILE_PATTERN`), sorted by name.

    Raises:
        BatchScoreError: when `span_dir` is not a folder or holds no CSV file.
    """
    import tensorflow as tf

    if not tf.io.gfile.isdir(span_dir):
        raise BatchScoreError(f"span folder {span_dir!r} is not a folder")
    files = sorted(tf.io.gfile.glob(os.path.join(span_dir, configs.SPAN_FILE_PATTERN)))
    if not files:
        raise BatchScoreError(f"span folder {span_dir!r} holds no {configs.SPAN_FILE_PATTERN} file")
    return files


def resolve_model(saved_model: Optional[str], serving_dir: Optional[str]) -> str:
    """Returns the SavedModel folder to score with: `saved_model` when given, else the version
    serving now under `serving_dir` (`serving.versions.serving_version`).

    Raises:
        BatchScoreError: when the folder holds no saved_model.pb, nothing is pushed under
            `serving_dir`, or its model config cannot say which version serves.
    """
    import tensorflow as tf

    if saved_model:
        if not tf.io.gfile.exists(os.path.join(saved_model, versions.SAVED_MODEL_FILE)):
            raise BatchScoreError(f"--saved-model {saved_model!r} is not a SavedModel folder (it has no {versions.SAVED_MODEL_FILE})")
        return saved_model
    if not serving_dir:
        raise BatchScoreError("give --serving-dir (the version serving now is used) or --saved-model")
    try:
        version = versions.serving_version(serving_dir, configs.SERVING_MODEL_NAME)
    except versions.ServingConfigError as error:
        raise BatchScoreError(str(error)) from None
    if version is None:
        raise BatchScoreError(f"--serving-dir {serving_dir!r} holds no complete pushed version")
    return versions.version_dir(serving_dir, version)


def check_output(output_path: str, overwrite: bool) -> None:
    """Checks that `output_path` can be written as asked, before anything runs. The same check
    for a local file and a remote one (gs://): both are asked through tf.io.gfile, so an
    existing output is kept unless `overwrite`, wherever it is.

    Raises:
        BatchScoreError: when the output is a folder, exists and `overwrite` is off, its local
            folder is not writable, or whether it exists cannot be told (a remote store that does
            not answer; the run does not go ahead on a guess).
    """
    import tensorflow as tf

    try:
        if tf.io.gfile.isdir(output_path):
            raise BatchScoreError(f"--output {output_path!r} is a folder; name the file to write")
        exists = tf.io.gfile.exists(output_path)
    except tf.errors.OpError as error:
        raise BatchScoreError(f"--output {output_path!r}: cannot tell whether it exists: {error.message}") from None
    if exists and not overwrite:
        raise BatchScoreError(f"--output {output_path!r} exists; give --overwrite to replace it")
    if not _is_remote(output_path):
        # A remote store has no folder permissions to ask; a local folder does, and a run that
        # could never write its output should not score first.
        folder = os.path.dirname(os.path.abspath(output_path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            raise BatchScoreError(f"--output {output_path!r} cannot be written ({folder!r} is not a writable folder)")


def output_format(output_path: str) -> str:
    """"parquet" for a name ending in .parquet, else "csv"."""
    return "parquet" if output_path.lower().endswith(PARQUET_SUFFIX) else "csv"


def _format_probability(probability: float) -> str:
    """The shortest text that reads back as the same float32 (the model's output type)."""
    import numpy as np

    return str(np.float32(probability))


def _csv_bytes(rows: Sequence[ScoreRow]) -> bytes:
    """The rows as CSV with a header, an absent timestamp as an empty cell."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    for file_name, line, timestamp, probability in rows:
        writer.writerow([file_name, line, "" if timestamp is None else timestamp, _format_probability(probability)])
    return text.getvalue().encode("utf-8")


def _parquet_bytes(rows: Sequence[ScoreRow]) -> bytes:
    """The rows as one Parquet file, an absent timestamp as null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows)) if rows else [(), (), (), ()]
    table = pa.Table.from_arrays(
        [
            pa.array(columns[0], type=pa.string()),
            pa.array(columns[1], type=pa.int64()),
            pa.array(columns[2], type=pa.int64()),
            pa.array(columns[3], type=pa.float32()),
        ],
        names=list(OUTPUT_COLUMNS),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_scores(rows: Iterable[ScoreRow], output_path: str, overwrite: bool = False) -> int:
    """Writes the score rows, sorted by file and line, to `output_path` as a whole: to a
    temporary file beside it first, renamed into place once complete.

    Args:
        rows: (file, line, timestamp or None, probability) per trip, in any order.
        output_path: The CSV or Parquet (`.parquet`) file to write; any path tf.io.gfile writes.
        overwrite: Replace a file already at `output_path`. Off, a file that appeared there
            since `check_output` (another run's) is kept and this one fails, unless it holds
            exactly these rows (a retry of this step after its rename went through).

    Returns:
        The number of rows written.

    Raises:
        BatchScoreError: when `output_path` holds other rows and `overwrite` is off (it is kept).
    """
    import tensorflow as tf

    ordered = sorted(rows, key=lambda row: (row[0], row[1]))
    payload = _parquet_bytes(ordered) if output_format(output_path) == "parquet" else _csv_bytes(ordered)
    folder, name = os.path.split(output_path)
    temporary = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with tf.io.gfile.GFile(temporary, "wb") as output_file:
            output_file.write(payload)
        try:
            tf.io.gfile.rename(temporary, output_path, overwrite=overwrite)
        except tf.errors.AlreadyExistsError:
            # A runner may retry this step after its rename went through (a worker lost on the
            # way back): the file then holds these very rows, and the run has done its work.
            with tf.io.gfile.GFile(output_path, "rb") as existing:
                if existing.read() == payload:
                    return len(ordered)
            raise BatchScoreError(
                f"--output {output_path!r} was written by someone else while this run scored; it is kept (give --overwrite to replace it)"
            ) from None
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
    return len(ordered)


def _read_keyed_examples(path: str, types: Dict[str, int]) -> Iterator[Tuple[TripKey, bytes]]:
    """Yields ((file name, line, timestamp), serialized tf.Example) for each row of one span
    CSV file. Serialized, since RunInference feeds the model bytes anyway and bytes cross
    between workers for nothing."""
    from pipeline.validation import span_rows

    name = os.path.basename(path)
    for line, row in span_rows.read_rows(path, span_rows.read_header(path), types):
        timestamp = row.get(features.TIMESTAMP_KEY)
        yield (name, line, timestamp), span_rows.to_example(row, types).SerializeToString()


def _score_row(keyed_log: Tuple[TripKey, Any]) -> ScoreRow:
    """The output row of one (key, PredictionLog) RunInference answered."""
    (name, line, timestamp), prediction_log = keyed_log
    outputs = prediction_log.predict_log.response.outputs
    if PROBABILITY_COLUMN not in outputs:
        raise BatchScoreError(f"the model answered {sorted(outputs)}, not {PROBABILITY_COLUMN!r}, for {name}, line {line}")
    return name, line, timestamp, float(outputs[PROBABILITY_COLUMN].float_val[0])


def inference_spec(model_path: str) -> "model_spec_pb2.InferenceSpecType":
    """The InferenceSpecType of RunInference: the SavedModel's tf.Example signature in process,
    as TFX's BulkInferrer builds it from its ModelSpec."""
    import tensorflow as tf
    from tfx_bsl.public.proto import model_spec_pb2

    from modules.signatures import SERVING_TF_EXAMPLE

    return model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_path, tag=[tf.saved_model.SERVING], signature_name=[SERVING_TF_EXAMPLE])
    )


def build_pipeline(
    pipeline: Any, files: Sequence[str], model_path: str, types: Dict[str, int], output_path: str, spread: bool = True, overwrite: bool = False
) -> None:
    """Adds the scoring steps to a Beam pipeline: read the files into keyed tf.Examples, run
    the model on them with tfx_bsl's RunInference, and write the rows with `write_scores`.

    Args:
        pipeline: The beam.Pipeline.
        files: The span's CSV files.
        model_path: The SavedModel folder (readable by the launcher and every worker).
        types: Column types from the curated schema (`span_rows.column_types`).
        output_path: The CSV or Parquet file to write.
        spread: Reshuffle the trips after reading, so the model runs on every worker, not
            only on the one that read a file (a runner fuses the steps otherwise). One
            process has nowhere to spread them to.
        overwrite: Replace a file already at `output_path` (`write_scores`).
    """
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from tfx_bsl.public.beam import run_inference

    scored = Metrics.counter(__name__, SCORED_COUNTER)

    def write(rows: List[ScoreRow]) -> None:
        scored.inc(write_scores(rows, output_path, overwrite))

    examples = (
        pipeline
        | "ListFiles" >> beam.Create(list(files))
        # Each file is read by one worker, so a file's line numbers are its own.
        | "Reshuffle" >> beam.Reshuffle()
        | "ReadRows" >> beam.FlatMap(_read_keyed_examples, types)
    )
    if spread:
        examples = examples | "Spread" >> beam.Reshuffle()
    _ = (
        examples
        | "RunInference" >> run_inference.RunInference(inference_spec(model_path))
        | "ToScoreRows" >> beam.Map(_score_row)
        # One file, in file and line order: every row meets in one place to be sorted.
        | "Gather" >> beam.combiners.ToList()
        | "Write" >> beam.Map(write)
    )


def score_span(span_dir: str, model_path: str, output_path: str, pipeline_args: Sequence[str], overwrite: bool = False) -> ScoreResult:
    """Scores every trip of a span with a SavedModel and writes the rows to `output_path`.

    Args:
        span_dir: A folder of span CSV files (e.g. `data/span-4`).
        model_path: The SavedModel folder (see `resolve_model`).
        output_path: The CSV or Parquet (`.parquet`) file to write.
        pipeline_args: Beam pipeline arguments (`beam_args.beam_args_for`).
        overwrite: Replace a file already at `output_path`; off, an existing one is kept and
            the run fails.

    Returns:
        What ran: the rows scored and the seconds it took.

    Raises:
        span_rows.CsvFormatError: when a file or cell is malformed (nothing is written).
        BatchScoreError: when the span folder holds no CSV file, or the output exists and
            `overwrite` is off.
    """
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
    import tensorflow_data_validation as tfdv

    from pipeline.validation import span_rows

    files = span_files(span_dir)
    # Headers are checked here, before any worker starts: an empty file or a repeated column
    # fails at once.
    span_rows.common_header(files)
    types = span_rows.column_types(tfdv.load_schema_text(configs.CURATED_SCHEMA_PATH))
    started = time.monotonic()
    options = PipelineOptions(list(pipeline_args))
    runner = options.view_as(StandardOptions).runner
    one_process = runner in (None, "DirectRunner") and options.view_as(DirectOptions).direct_running_mode == "in_memory"
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, files, model_path, types, output_path, spread=not one_process, overwrite=overwrite)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name(SCORED_COUNTER))["counters"]
    rows = sum(counter.committed or 0 for counter in counters) if counters else -1
    return ScoreResult(span_dir, model_path, output_path, rows, time.monotonic() - started)


USAGE_EXAMPLES = """Examples:
  python -m pipeline score --span-dir data/span-4 --output /tmp/span-4-scores.csv
      Score span 4 with the version serving from outputs/serving_model.
  python -m pipeline score --data-root data --span 4 --serving-dir /srv/models/big_tipper --output scores.parquet
      The same span by number, another serving directory, Parquet output.
  python -m pipeline score --span-dir data/span-4 --saved-model outputs/serving_model/1796391526 --output scores.csv
      Score with one SavedModel folder, whatever serves.
  python -m pipeline score --span-dir data/span-4 --output scores.csv --beam-mode multi_processing --num-workers 2
      Two DirectRunner worker processes.
  python -m pipeline score --runner dataflow --project my-project --region us-central1 \\
      --temp-location gs://my-bucket/tmp --sdk-container-image IMAGE \\
      --span-dir gs://my-bucket/data/span-4 --saved-model gs://my-bucket/serving_model/1796391526 \\
      --output gs://my-bucket/scores/span-4.csv
      On Dataflow; the span, the model and the output must be where the workers can read and write.

Exit code: 0 when every trip was scored and the file written; 2 when the data was refused (a
cell that does not parse as its schema type; the message names file, line, column and value,
and no output is written); 64 for a usage error found before anything runs; 1 on any other
failure.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m pipeline score`."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline score",
        description="Scores every trip of a span with the served model (TFX BulkInferrer's Beam inference) into one CSV or Parquet file.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    span = parser.add_argument_group("the trips")
    span.add_argument("--span-dir", help="a folder of span CSV files, e.g. data/span-4")
    span.add_argument("--data-root", help="a folder of span-<N>/ folders; with --span")
    span.add_argument("--span", type=int, help="the span number under --data-root")
    model = parser.add_argument_group("the model")
    model.add_argument(
        "--serving-dir",
        default=os.path.join(REPO_ROOT, "outputs", "serving_model"),
        help="the Pusher's serving directory: score with the version serving now (default: outputs/serving_model, as run_local.py writes it)",
    )
    model.add_argument("--saved-model", help="a SavedModel folder to score with instead")
    parser.add_argument("--output", required=True, help="the file to write: CSV, or Parquet when it ends in .parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    beam = parser.add_argument_group("where Beam runs (pipeline/runners/beam_args.py)")
    beam.add_argument("--runner", choices=RUNNERS, default="direct", help="default: direct (this machine)")
    beam.add_argument("--beam-mode", choices=["in_memory", "multi_processing"], default="in_memory", help="DirectRunner mode (default: in_memory)")
    beam.add_argument("--num-workers", type=int, help="DirectRunner multi_processing workers (default: one per core)")
    beam.add_argument("--project", help="Dataflow: Google Cloud project")
    beam.add_argument("--region", help="Dataflow: region, e.g. us-central1")
    beam.add_argument("--temp-location", help="Dataflow: gs:// folder for temporary files")
    beam.add_argument("--setup-file", help="Dataflow: the repository's setup.py, to install the project on the workers")
    beam.add_argument("--sdk-container-image", help="Dataflow: a worker image with the project's code (the Dockerfile's)")
    beam.add_argument("--machine-type", help="Dataflow: worker machine type")
    beam.add_argument("--max-num-workers", type=int, help="Dataflow: autoscaling ceiling")
    beam.add_argument("--job-endpoint", help="Flink/Spark: host:port of the Beam job server")
    beam.add_argument(
        "--environment-type", choices=beam_args.ENVIRONMENT_TYPES, default="DOCKER", help="Flink/Spark: how the SDK harness starts (default: DOCKER)"
    )
    beam.add_argument("--environment-config", help="Flink/Spark: the image, command or address of --environment-type")
    beam.add_argument("--parallelism", type=int, help="Flink/Spark: default parallelism")
    beam.add_argument(
        "--beam-arg", action="append", default=[], metavar="--FLAG=VALUE", help="a further Beam flag for Dataflow, Flink or Spark, written --beam-arg=--FLAG=VALUE (repeatable)"
    )
    return parser


def runner_config(args: argparse.Namespace) -> beam_args.RunnerConfig:
    """The typed Beam runner configuration of the command line's runner flags."""
    if args.runner == "direct":
        return beam_args.DirectRunnerConfig(mode=args.beam_mode, num_workers=args.num_workers)
    if args.runner == "dataflow":
        return beam_args.DataflowRunnerConfig(
            project=args.project or "",
            region=args.region or "",
            temp_location=args.temp_location or "",
            machine_type=args.machine_type,
            max_num_workers=args.max_num_workers,
            setup_file=args.setup_file,
            sdk_container_image=args.sdk_container_image,
            extra_args=tuple(args.beam_arg),
        )
    return beam_args.PortableRunnerConfig(
        runner="FlinkRunner" if args.runner == "flink" else "SparkRunner",
        job_endpoint=args.job_endpoint or "",
        environment_type=args.environment_type,
        environment_config=args.environment_config,
        parallelism=args.parallelism,
        extra_args=tuple(args.beam_arg),
    )


def usage_errors(args: argparse.Namespace) -> List[str]:
    """What is wrong with the command line before anything runs, one line per problem."""
    errors = []
    if bool(args.span_dir) == (args.data_root is not None or args.span is not None):
        errors.append("give either --span-dir, or --data-root and --span")
    elif not args.span_dir and (args.data_root is None or args.span is None):
        errors.append("--data-root and --span go together")
    remote_only = {"--project": args.project, "--region": args.region, "--temp-location": args.temp_location, "--job-endpoint": args.job_endpoint}
    if args.runner == "direct":
        given = [flag for flag, value in remote_only.items() if value] + (["--beam-arg"] if args.beam_arg else [])
        if given:
            errors.append(f"{', '.join(given)}: only for --runner dataflow, flink or spark")
    elif args.num_workers is not None or args.beam_mode != "in_memory":
        errors.append("--beam-mode and --num-workers are for --runner direct")
    try:
        beam_args.beam_args_for(runner_config(args))
    except beam_args.RunnerConfigError as error:
        errors.append(str(error))
    if args.runner == "dataflow":
        model_flag = ("--saved-model", args.saved_model) if args.saved_model else ("--serving-dir", args.serving_dir)
        paths = {"--span-dir": args.span_dir, "--data-root": args.data_root, model_flag[0]: model_flag[1], "--output": args.output}
        local = [flag for flag, path in paths.items() if path and not path.startswith("gs://")]
        if local:
            errors.append(f"{', '.join(local)} must be gs:// paths on Dataflow: its workers read the span and the model and write the output")
    # Whether the output exists is asked in `main` (`check_output`), through tf.io.gfile like
    # the span and the model: these checks read only the command line.
    return errors


def _span_dir(args: argparse.Namespace) -> str:
    if args.span_dir:
        return args.span_dir
    return os.path.join(args.data_root, f"{configs.SPAN_FOLDER_PREFIX}{args.span}")


# How a CsvFormatError reads in the text of an error from a worker in another process.
_WORKER_CSV_ERROR = re.compile(r"CsvFormatError: (.+)")
_BEAM_STEP_SUFFIX = re.compile(r" \[while running '[^']*'\]$")


def data_error_text(error: BaseException) -> Optional[str]:
    """The span reader's message in a failed run's error, or None when the failure is another.

    In process the reader's CsvFormatError arrives as itself, with the Beam step appended; from
    a worker process or a remote runner it arrives as text inside the runner's error.
    """
    from pipeline.validation import span_rows

    if isinstance(error, span_rows.CsvFormatError):
        return _BEAM_STEP_SUFFIX.sub("", str(error).strip().splitlines()[0])
    found = _WORKER_CSV_ERROR.findall(str(error))
    return _BEAM_STEP_SUFFIX.sub("", found[-1].strip()) if found else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Scores a span and prints where the scores are; returns the exit code."""
    args = build_parser().parse_args(argv)
    errors = usage_errors(args)
    if errors:
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    from serving.console import import_tensorflow

    import_tensorflow()
    # TensorFlow's deprecation notices (tfx_bsl loads the model with the TF1 loader) are for
    # library authors, not for the user of a command.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Beam logs a failing step's error with its traceback before it re-raises it; this command
    # reports the failure itself, once (a data error as DATA REFUSED, any other with its traceback).
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    span_dir = _span_dir(args)
    try:
        check_output(args.output, args.overwrite)
        files = span_files(span_dir)
        model_path = resolve_model(args.saved_model, None if args.saved_model else args.serving_dir)
    except BatchScoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    pipeline_args = beam_args.beam_args_for(runner_config(args))
    print(f"scoring {len(files)} file(s) of {span_dir} with {model_path} ({' '.join(pipeline_args)})", flush=True)
    try:
        result = score_span(span_dir, model_path, args.output, pipeline_args, overwrite=args.overwrite)
    except Exception as error:  # the runner's error, whatever its type; the data's is told apart
        data_error = data_error_text(error)
        if data_error is not None:
            print(f"DATA REFUSED: {data_error}", file=sys.stderr)
            print(f"Nothing was written to {args.output}.", file=sys.stderr)
            return EXIT_DATA_REFUSED
        logger.exception("scoring %s failed", span_dir)
        print(f"error: scoring failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    rate = f", {result.rows / result.seconds:,.0f} trips/s" if result.rows > 0 and result.seconds > 0 else ""
    print(f"scored {result.rows} trips in {result.seconds:.1f}s{rate}: {result.output_path}")
    return EXIT_OK

