"""The local entry point: `python run_local.py` (or `python -m pipeline run`), and the one run
the span replay and the span watcher share.

`run_once` builds the pipeline for a data root and output dir, runs it with LocalDagRunner,
reads back what happened (`pipeline.ops.run_summary`) and turns it into an exit code. `main`
parses the command line (usage errors exit 64 before TensorFlow is imported), runs once and
prints the summary; `--serve` then serves the pushed model with the project's server.
"""
import argparse
import dataclasses
import logging
import os
import shlex
import sys
import time
import warnings
from typing import TYPE_CHECKING, List, Optional, Tuple

from pipeline import configs, spans
from pipeline.ops import metadata, writer_lock
from pipeline.ops.metadata import MetadataSetting, OutputLayout

# `python run_local.py --help`.
USAGE = """Runs the taxi pipeline on this machine with TFX's Launcher and Beam's DirectRunner.

Examples:
  python run_local.py
      Train on every span in data/, write everything under outputs/.
  python run_local.py --data-root /data/taxi --output-dir /tmp/taxi --train-steps 500
      Another data root (a folder of span-<N>/ folders of CSV files) and a quick run.
  python run_local.py --span-window 2
      Train on the newest two spans only.
  python run_local.py --external-table us_il_holidays=data/external/us_il_holidays/v2/holidays.csv
      Join another version of the holiday calendar (see `python -m pipeline export-holidays`).
  python run_local.py --metadata-url mysql://taxi@db.internal:3306/taxi_metadata
      Keep ML Metadata in a MySQL/MariaDB database (password, if any, in
      TAXI_METADATA_PASSWORD) instead of OUTPUT_DIR/metadata.db.
  python run_local.py --tune --tune-trials 8
      Search hyperparameters with TFX's Tuner first (modules/tune.py), then train with the best.
  python run_local.py --warm-start --warm-start-steps 100
      Start training from the serving model's weights and train 100 steps (from scratch
      when nothing serves yet, or when its layers do not fit; the log says which).
  python run_local.py --steps-at-once 1
      Run one step at a time with TFX's own LocalDagRunner (by default independent steps,
      such as the data checks or the two Evaluators, run two at a time).
  python run_local.py --serve
      Run the pipeline, then serve the pushed model with the project's TF-Serving-compatible
      server (REST on 8501, gRPC on 8500) and print a curl and a gRPC client command.

Writes OUTPUT_DIR/serving_model/<version>/ (pushed models, what TF Serving reads),
OUTPUT_DIR/metadata.db (ML Metadata, SQLite, unless --metadata-url names a database) and
OUTPUT_DIR/pipeline_root/ (artifacts). One writer at a time: a second run, accept, rollback or
housekeeping on the same output dir is refused while one writes.
Exit code: 0 when the pipeline completed, blessed or not; 2 when the data was refused
(nothing trained, nothing pushed); 64 for a usage error (a flag out of range, a data root that
is not a folder or holds no span-<N> folder, an output dir that cannot be written, metadata
that does not open: a damaged metadata.db, a wrong --metadata-url host, user or database),
found before anything runs; 75 when another process is writing to the output dir (nothing
was changed; run again later); 1 on any other failure.
"""

if TYPE_CHECKING:  # run_summary imports TFMA; the command line is parsed before that
    from pipeline.ops import run_summary

logger = logging.getLogger(__name__)

# Exit codes of the entry points.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DATA_REFUSED = 2
EXIT_USAGE = 64  # sysexits' EX_USAGE: apart from 2, which means "the data was refused"
EXIT_BUSY = writer_lock.EXIT_BUSY

# Independent steps run together: on the 2-core machines the docs measure on, 2 at a time paid
# (docs/scale.md, "TFX's package per Beam step, and steps at the same time"). 1 runs TFX's
# LocalDagRunner, one step after another.
DEFAULT_STEPS_AT_ONCE = 2

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class LocalPaths:
    """Where a local run reads (`data_root`) and writes (`output_dir`, laid out as `OutputLayout`)."""

    data_root: str
    output_dir: str
    # Where ML Metadata lives: the SQLite file under output_dir by default.
    metadata: MetadataSetting = MetadataSetting()

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(self.output_dir)

    @property
    def pipeline_root(self) -> str:
        return self.layout.pipeline_root

    @property
    def serving_model_dir(self) -> str:
        return self.layout.serving_model_dir


@dataclasses.dataclass
class RunResult:
    """What one run did: its exit code, the summary and the per-component timings."""

    exit_code: int
    spans: List[int]
    summary: Optional["run_summary.RunSummary"]
    timings: List[Tuple[str, str, float]]
    seconds: float
    error: Optional[str] = None
    # The run's HTML report (pipeline.ops.report), when one could be written.
    report_path: Optional[str] = None
    # The pushed version's model card, Markdown and HTML (pipeline.ops.model_card).
    card_paths: Tuple[str, ...] = ()


def options_from_flags(span_window: Optional[int], train_steps: Optional[int], external_table: List[str]) -> configs.PipelineOptions:
    """The pipeline options of the local commands' shared flags (`--span-window`,
    `--train-steps`, `--external-table NAME=PATH`), with this checkout's code fingerprints.

    Raises:
        ValueError: when an `--external-table` is malformed or names an unknown table.
        FileNotFoundError: when a table file does not exist.
    """
    from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint
    from pipeline.validation.table_sources import parse_overrides, resolve_sources

    options = configs.PipelineOptions(
        span_window=span_window,
        module_fingerprint=module_fingerprint(),
        code_fingerprint=project_fingerprint(),
        external_tables=resolve_sources(parse_overrides(external_table)),
    )
    return options if train_steps is None else dataclasses.replace(options, train_steps=train_steps)


def thresholds_text(thresholds: configs.BlessingThresholds) -> dict:
    """Describes the blessing thresholds per metric, for the summary table."""
    return {
        "auc": f">= {thresholds.min_auc}, drop <= {thresholds.max_auc_drop}",
        "binary_accuracy": f">= {thresholds.min_binary_accuracy}, drop <= {thresholds.max_binary_accuracy_drop}",
    }


def _caused_by(error: Optional[BaseException], error_type: type) -> bool:
    while error is not None:
        if isinstance(error, error_type):
            return True
        error = error.__cause__ or error.__context__
    return False


def _refused_span(error: Optional[BaseException]) -> Optional[int]:
    """The span a DataGate refusal names, found along the exception chain."""
    while error is not None:
        if getattr(error, "span", None) is not None:
            return error.span
        error = error.__cause__ or error.__context__
    return None


def write_model_card(paths: LocalPaths, version: str) -> Tuple[str, str]:
    """Writes the model card of a version this output dir pushed (`pipeline.ops.model_card`)
    and returns its Markdown and HTML paths."""
    from pipeline.ops import lineage, model_card

    store = lineage.open_store(paths.output_dir, paths.metadata)
    traced = lineage.trace_with_store(store, paths.metadata.describe(paths.output_dir), paths.output_dir, version)
    return model_card.write_card(traced, metadata.OutputLayout(paths.output_dir).serving_model_dir)


def run_once(
    paths: LocalPaths,
    options: configs.PipelineOptions,
    beam_pipeline_args: List[str],
    progress_handler=None,
    complete_spans_only: bool = False,
    steps_at_once: int = DEFAULT_STEPS_AT_ONCE,
) -> RunResult:
    """Runs the pipeline once on the span window of `paths.data_root`.

    Args:
        paths: Data root and output dir.
        options: Pipeline options; `span_window` picks the spans.
        beam_pipeline_args: Beam options for the data processing.
        progress_handler: A `pipeline.runners.progress.ProgressHandler` whose timings are reset and
            collected for this run, or None.
        complete_spans_only: Use only spans marked complete (see `spans.discover_spans`).
        steps_at_once: Most pipeline steps run at the same time (`dag_runner`).

    Returns:
        The run's result; `exit_code` is EXIT_DATA_REFUSED when the spans, the data or an
        external table were refused (nothing trained or pushed), EXIT_BUSY when another process
        holds the output dir's writer lock (nothing changed), EXIT_USAGE when the output dir keeps its metadata elsewhere,
        EXIT_FAILED on other failures.
    """
    from pipeline.validation.table_sources import refingerprint

    started = time.monotonic()
    if progress_handler is not None:
        progress_handler.timings.clear()
    try:
        span_numbers = spans.window(spans.discover_spans(paths.data_root, complete_spans_only), options.span_window)
    except spans.SpanError as error:
        return RunResult(EXIT_DATA_REFUSED, [], None, [], time.monotonic() - started, str(error))
    try:
        # Fingerprinted as this run's pipeline is built, so a table edited while a watcher
        # or a replay runs is imported again rather than refused as changed.
        options = dataclasses.replace(options, external_tables=refingerprint(options.external_tables))
    except FileNotFoundError as error:
        return RunResult(EXIT_FAILED, span_numbers, None, [], time.monotonic() - started, str(error))
    try:
        with writer_lock.hold(paths.output_dir):
            writer_lock.check_location(paths.output_dir, paths.metadata.location, record=True)
            return _run_locked(paths, options, beam_pipeline_args, progress_handler, span_numbers, started, steps_at_once)
    except writer_lock.OutputBusyError as error:
        return RunResult(EXIT_BUSY, span_numbers, None, [], time.monotonic() - started, str(error))
    except writer_lock.MetadataLocationError as error:
        return RunResult(EXIT_USAGE, span_numbers, None, [], time.monotonic() - started, str(error))


def dag_runner(steps_at_once: int = DEFAULT_STEPS_AT_ONCE):
    """TFX's LocalDagRunner for one step at a time; otherwise `ConcurrentDagRunner`, which starts
    each step once the steps it reads have finished, at most `steps_at_once` together."""
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.runners.concurrent_dag import ConcurrentDagRunner

    if steps_at_once == 1:
        return LocalDagRunner()
    return ConcurrentDagRunner(max_workers=steps_at_once)


def _run_locked(
    paths: LocalPaths,
    options: configs.PipelineOptions,
    beam_pipeline_args: List[str],
    progress_handler,
    span_numbers: List[int],
    started: float,
    steps_at_once: int,
) -> RunResult:
    """The part of `run_once` that writes, under the output dir's writer lock."""
    from modules.external import ExternalTableError
    from pipeline.components.data_gate import DataAnomaliesError, DataDriftError
    from pipeline.dag import create_pipeline
    from pipeline.ops import run_summary
    from pipeline.runners.beam_args import quiet_pickler_logging, turn_off_in_process_state_cache
    from pipeline.validation import acceptance
    from pipeline.validation.span_rows import CsvFormatError

    connection_config = paths.metadata.connection_config(paths.output_dir)
    abandoned = metadata.abandon_unfinished(connection_config)
    if abandoned:
        print(
            f"note: marked {len(abandoned)} execution(s) left running by an interrupted earlier run as failed "
            f"(ML Metadata ids {', '.join(map(str, abandoned))})",
            file=sys.stderr,
        )
    # What an owner accepted with `python -m pipeline.accept`; the DataGate applies it.
    options = dataclasses.replace(options, acceptances=acceptance.for_spans(connection_config, span_numbers))
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=paths.pipeline_root,
        data_root=os.path.abspath(paths.data_root),
        spans=span_numbers,
        serving_model_dir=paths.serving_model_dir,
        metadata_connection_config=connection_config,
        options=options,
        beam_pipeline_args=beam_pipeline_args,
    )
    first_new_execution = run_summary.newest_execution_id(connection_config)
    failure: Optional[BaseException] = None
    turn_off_in_process_state_cache()
    quiet_pickler_logging()
    try:
        dag_runner(steps_at_once).run(pipeline)
    except Exception as error:  # noqa: BLE001 - the summary and exit code report it
        failure = error
    summary = run_summary.collect(connection_config, configs.PIPELINE_NAME, first_new_execution)
    timings = list(progress_handler.timings) if progress_handler is not None else []
    report_path = None
    try:
        from pipeline.ops import report

        report_path = report.write_report(
            paths.output_dir, connection_config, configs.PIPELINE_NAME, first_new_execution, timings,
            paths.metadata.describe(paths.output_dir),
        )
    except Exception as error:  # noqa: BLE001 - a report failure must not change the run's outcome
        logger.warning("no run report: %s", error)
    card_paths: Tuple[str, ...] = ()
    if summary.pushed_version:
        try:
            card_paths = write_model_card(paths, summary.pushed_version)
        except Exception as error:  # noqa: BLE001 - the version is pushed; `lineage --card` writes it again
            logger.warning("no model card for version %s: %s (python -m pipeline lineage --card writes it)", summary.pushed_version, error)
    seconds = time.monotonic() - started
    if failure is None:
        exit_code, error_text = EXIT_OK, None
    elif any(_caused_by(failure, refusal) for refusal in (DataAnomaliesError, DataDriftError, ExternalTableError, CsvFormatError)) or summary.anomalies:
        exit_code, error_text = EXIT_DATA_REFUSED, str(failure)
        refused_span = _refused_span(failure)
        if refused_span is not None:
            # The gate does not know the paths; the exact command names them.
            error_text = error_text.replace(
                acceptance.accept_command(refused_span),
                acceptance.accept_command(refused_span, shlex.quote(paths.data_root), shlex.quote(paths.output_dir)),
            )
    else:
        exit_code, error_text = EXIT_FAILED, _error_text(failure)
    return RunResult(exit_code, span_numbers, summary, timings, seconds, error_text, report_path, card_paths)


def _error_text(failure: BaseException) -> str:
    """The failure's type and message; with the error it was raised from when it says nothing
    itself (TFX's file functions raise a bare NotFoundError from TensorFlow's)."""
    text = f"{type(failure).__name__}: {failure}"
    if not str(failure) and failure.__cause__ is not None:
        text += f"(from {type(failure.__cause__).__name__}: {failure.__cause__})"
    return text


def local_beam_args(beam_mode: str) -> list:
    """Beam options for DirectRunner in `beam_mode` ("in_memory" or "multi_processing")."""
    from pipeline.runners.beam_args import PROJECT_SETUP_FILE, DirectRunnerConfig, beam_args_for

    return beam_args_for(DirectRunnerConfig(mode=beam_mode, setup_file=PROJECT_SETUP_FILE))


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(prog="run_local.py", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo_root = REPO_ROOT
    parser.add_argument("--data-root", default=os.path.join(repo_root, "data"), help="folder of span-<N>/ CSV folders (default: the shipped data/)")
    parser.add_argument("--output-dir", default=os.path.join(repo_root, "outputs"), help="everything the run writes (default: outputs/)")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps (default: %d)" % configs.PipelineOptions.train_steps)
    parser.add_argument("--span-window", type=int, default=None, help="train on the newest N spans (default: every span)")
    parser.add_argument(
        "--beam-mode",
        choices=["in_memory", "multi_processing"],
        default="in_memory",
        help="DirectRunner mode for the data processing (default: in_memory)",
    )
    parser.add_argument(
        "--external-table",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use another file for an external table (default: the versioned tables under data/external/)",
    )
    metadata.add_metadata_flag(parser)
    parser.add_argument("--tune", action="store_true", help="search hyperparameters with TFX's Tuner before training (modules/tune.py; off by default)")
    parser.add_argument(
        "--tune-trials", type=int, default=configs.PipelineOptions.tune_trials,
        help="trials of the --tune search (default: %d)" % configs.PipelineOptions.tune_trials,
    )
    parser.add_argument(
        "--warm-start", action="store_true",
        help="start training from the serving model's weights where they fit (modules/warm_start.py; off by default, docs/quality.md)",
    )
    parser.add_argument(
        "--warm-start-steps", type=int, default=configs.PipelineOptions.warm_start_steps,
        help="training steps of a warm-started model (default: %d)" % configs.PipelineOptions.warm_start_steps,
    )
    parser.add_argument(
        "--steps-at-once", type=int, default=DEFAULT_STEPS_AT_ONCE,
        help="most pipeline steps that run at the same time; 1 runs TFX's LocalDagRunner (default: %d)" % DEFAULT_STEPS_AT_ONCE,
    )
    parser.add_argument("--serve", action="store_true", help="after the run, serve the newest pushed version until Ctrl-C")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port for --serve (default: 8501)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port for --serve (default: 8500)")
    return parser.parse_args(argv)


def usage_errors(args: argparse.Namespace) -> list:
    """What is wrong with the command line before anything runs, one line per problem."""
    errors = []
    if args.train_steps is not None and args.train_steps < 1:
        errors.append(f"--train-steps must be at least 1, got {args.train_steps}")
    if args.span_window is not None and args.span_window < 1:
        errors.append(f"--span-window must be at least 1, got {args.span_window}")
    if getattr(args, "tune_trials", 1) < 1:
        errors.append(f"--tune-trials must be at least 1, got {args.tune_trials}")
    if getattr(args, "steps_at_once", 1) < 1:
        errors.append(f"--steps-at-once must be at least 1, got {args.steps_at_once}")
    if getattr(args, "warm_start_steps", 1) < 1:
        errors.append(f"--warm-start-steps must be at least 1, got {args.warm_start_steps}")
    data_root_problem = spans.data_root_problem(args.data_root)
    if data_root_problem:
        # A mistyped data root, not bad data: nothing to refuse.
        errors.append(f"--data-root {args.data_root!r} {data_root_problem}")
    existing = os.path.abspath(args.output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        errors.append(f"--output-dir {args.output_dir!r} cannot be written ({existing!r} is not a writable folder)")
    errors.extend(metadata_errors(args.metadata_url, os.path.abspath(args.output_dir)))
    return errors


def metadata_errors(metadata_url: Optional[str], output_dir: str) -> List[str]:
    """What is wrong with a command's metadata setting for `output_dir`, one line per problem:
    a malformed `--metadata-url` / TAXI_METADATA_URL, metadata that does not open (a damaged
    metadata.db; a wrong host, user or database), or an output dir whose history is kept in
    other metadata. Nothing is created or changed."""
    try:
        setting = metadata.setting_from(metadata_url)
    except metadata.MetadataSettingError as error:
        return [str(error)]
    problem = metadata.problem(setting, output_dir)
    if problem:
        return [f"--output-dir {output_dir!r}: {problem}" if setting.mysql is None else problem]
    try:
        writer_lock.check_location(output_dir, setting.location, record=False)
    except writer_lock.MetadataLocationError as error:
        return [str(error)]
    return []


def main(argv=None) -> int:
    """Runs the pipeline and prints the summary; returns the exit code."""
    args = parse_args(argv)
    errors = usage_errors(args)
    if errors:
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    stray = spans.stray_text(args.data_root)
    if stray:
        print(f"warning: {stray}", file=sys.stderr)
    from serving.console import import_tensorflow

    import_tensorflow()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # TFMA divides by zero for slices with no positive example; the metric is reported as NaN.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")
    started = time.monotonic()
    from pipeline.runners import progress

    handler = progress.install()
    from pipeline.ops import run_summary

    try:
        options = options_from_flags(args.span_window, args.train_steps, args.external_table)
        options = dataclasses.replace(
            options, tune=args.tune, tune_trials=args.tune_trials, warm_start=args.warm_start, warm_start_steps=args.warm_start_steps
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    paths = LocalPaths(args.data_root, os.path.abspath(args.output_dir), metadata.setting_from(args.metadata_url))
    print(
        f"pipeline {configs.PIPELINE_NAME}: data {args.data_root}, output {paths.output_dir}, "
        f"metadata {paths.metadata.describe(paths.output_dir)}",
        flush=True,
    )
    result = run_once(paths, options, local_beam_args(args.beam_mode), handler, steps_at_once=args.steps_at_once)
    if result.summary is not None:
        print(run_summary.format_summary(result.summary, thresholds_text(options.thresholds), result.timings))
    if result.report_path:
        print(f"report: {result.report_path}")
    if result.card_paths:
        print(f"model card: {' and '.join(result.card_paths)}")
    print(f"total time: {time.monotonic() - started:.1f}s")
    if result.exit_code == EXIT_DATA_REFUSED:
        print(f"DATA REFUSED: {result.error}", file=sys.stderr)
        print("Nothing was trained or pushed; the serving directory is untouched.", file=sys.stderr)
        return result.exit_code
    if result.exit_code in (EXIT_BUSY, EXIT_USAGE):
        print(f"error: {result.error}", file=sys.stderr)
        return result.exit_code
    if result.exit_code != EXIT_OK:
        print(f"error: the pipeline failed: {result.error}", file=sys.stderr)
        return result.exit_code
    if args.serve:
        return serve(paths.serving_model_dir, args.rest_port, args.grpc_port)
    return 0


EXAMPLE_TRIP = {
    "trip_miles": 1.2,
    "fare": 7.25,
    "trip_seconds": 480,
    "payment_type": "Credit Card",
    "company": "Taxi Affiliation Services",
    "trip_start_hour": 19,
    "trip_start_day": 6,
    "trip_start_month": 5,
    # Friday 2014-05-16 19:45, Chicago time: the model joins the holiday calendar on its date.
    "trip_start_timestamp": 1400269500,
    "pickup_community_area": 8,
    "dropoff_community_area": 32,
}


def serve(serving_model_dir: str, rest_port: int, grpc_port: int) -> int:
    """Serves the pushed versions under `serving_model_dir` until SIGINT or SIGTERM."""
    import json
    import signal
    import threading

    from pipeline.configs import SERVING_MODEL_NAME
    from serving.devserver.server import ModelServer, ServerOptions
    from serving.versions import version_numbers

    if not version_numbers(serving_model_dir, complete_only=False):
        print(f"error: nothing to serve: no pushed version under {serving_model_dir}", file=sys.stderr)
        return EXIT_FAILED
    server = ModelServer(
        ServerOptions(
            model_name=SERVING_MODEL_NAME,
            model_base_path=serving_model_dir,
            port=grpc_port,
            rest_api_port=rest_port,
            prometheus_path="/monitoring/prometheus/metrics",
        )
    ).start()
    trip_json = json.dumps(EXAMPLE_TRIP)
    from serving import client

    metadata = client.model_metadata_rest(f"127.0.0.1:{server.rest_port}", SERVING_MODEL_NAME)
    instance = client.fill_missing_features(EXAMPLE_TRIP, client.signature_inputs(metadata))
    raw_instance = json.dumps({"instances": [instance]})
    print(
        f"\nServing {SERVING_MODEL_NAME} from {serving_model_dir}\n"
        f"  REST {server.rest_url}   gRPC {server.grpc_target}\n\n"
        f"Try it (REST; every raw feature by name, missing ones as NaN / -1 / \"\"):\n"
        f"  curl -s -X POST {server.rest_url}/v1/models/{SERVING_MODEL_NAME}:predict -d '{raw_instance}'\n"
        f"Or with the client, which fills in missing features (gRPC):\n"
        f"  python -m serving.client predict --grpc --host 127.0.0.1 --grpc-port {server.grpc_port} "
        f"--model {SERVING_MODEL_NAME} --json '{trip_json}'\n"
        f"Status: curl -s {server.rest_url}/v1/models/{SERVING_MODEL_NAME}\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    stopped = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


def run(argv=None) -> None:
    """`main`, then a direct exit.

    Everything is written and closed by then. Interpreter teardown would run the finalizers of
    TensorFlow's leftover function objects, which print pages of harmless TypeErrors
    (tensorflow AtomicFunction.__del__); exiting directly skips them.
    """
    exit_code = main(argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
