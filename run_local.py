"""Runs the taxi pipeline on this machine with TFX's LocalDagRunner and Beam's DirectRunner.

Examples:
  python run_local.py
      Train on every span in data/, write everything under outputs/.
  python run_local.py --data-root /data/taxi --output-dir /tmp/taxi --train-steps 500
      Another data root (a folder of span-<N>/ folders of CSV files) and a quick run.
  python run_local.py --span-window 2
      Train on the newest two spans only.
  python run_local.py --external-table us_il_holidays=data/external/us_il_holidays/v2/holidays.csv
      Join another version of the holiday calendar (see `python -m pipeline.data_tools.export_holidays`).
  python run_local.py --serve
      Run the pipeline, then serve the pushed model with the project's TF-Serving-compatible
      server (REST on 8501, gRPC on 8500) and print a curl and a gRPC client command.

Writes OUTPUT_DIR/serving_model/<version>/ (pushed models, what TF Serving reads),
OUTPUT_DIR/metadata.db (ML Metadata, SQLite) and OUTPUT_DIR/pipeline_root/ (artifacts).
Exit code: 0 when the pipeline completed, blessed or not; 2 when the data was refused
(nothing trained, nothing pushed); 64 for a usage error (a flag out of range, a data root that
is not a folder, an output dir that cannot be written), found before anything runs; 1 on any
other failure.
"""
import os

# Before TensorFlow is imported: keep CUDA/oneDNN start-up notices off a CPU console.
# Level 2 still shows errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from pipeline.configs import PipelineOptions  # noqa: E402  (light: no TensorFlow import)

EXIT_FAILED = 1  # as pipeline.runners.local.EXIT_FAILED; kept here so --serve needs no TFX import
EXIT_USAGE = 64  # sysexits' EX_USAGE: apart from 2, which means "the data was refused"


def local_beam_args(beam_mode: str) -> list:
    """Beam options for DirectRunner in `beam_mode` ("in_memory" or "multi_processing")."""
    from pipeline.runners.beam_args import DirectRunnerConfig, beam_args_for

    return beam_args_for(DirectRunnerConfig(mode=beam_mode))


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo_root = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--data-root", default=os.path.join(repo_root, "data"), help="folder of span-<N>/ CSV folders (default: the shipped data/)")
    parser.add_argument("--output-dir", default=os.path.join(repo_root, "outputs"), help="everything the run writes (default: outputs/)")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps (default: %d)" % PipelineOptions.train_steps)
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
    if not os.path.isdir(args.data_root):
        errors.append(f"--data-root {args.data_root!r} is not a folder")
    existing = os.path.abspath(args.output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        errors.append(f"--output-dir {args.output_dir!r} cannot be written ({existing!r} is not a writable folder)")
    return errors


def main(argv=None) -> int:
    """Runs the pipeline and prints the summary; returns the exit code."""
    args = parse_args(argv)
    errors = usage_errors(args)
    if errors:
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    from serving.console import import_tensorflow

    import_tensorflow()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # TFMA divides by zero for slices with no positive example; the metric is reported as NaN.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")
    started = time.monotonic()
    from pipeline.runners import progress

    handler = progress.install()
    from pipeline import configs
    from pipeline.ops import run_summary
    from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint
    from pipeline.runners.local import EXIT_DATA_REFUSED, EXIT_OK, LocalPaths, run_once, thresholds_text
    from pipeline.validation.table_sources import parse_overrides, resolve_sources

    try:
        external_tables = resolve_sources(parse_overrides(args.external_table))
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    options = configs.PipelineOptions(
        span_window=args.span_window,
        module_fingerprint=module_fingerprint(),
        code_fingerprint=project_fingerprint(),
        external_tables=external_tables,
    )
    if args.train_steps is not None:
        options = dataclasses.replace(options, train_steps=args.train_steps)
    paths = LocalPaths(data_root=args.data_root, output_dir=os.path.abspath(args.output_dir))
    print(f"pipeline {configs.PIPELINE_NAME}: data {args.data_root}, output {paths.output_dir}", flush=True)
    result = run_once(paths, options, local_beam_args(args.beam_mode), handler)
    if result.summary is not None:
        print(run_summary.format_summary(result.summary, thresholds_text(options.thresholds), result.timings))
    if result.report_path:
        print(f"report: {result.report_path}")
    print(f"total time: {time.monotonic() - started:.1f}s")
    if result.exit_code == EXIT_DATA_REFUSED:
        print(f"DATA REFUSED: {result.error}", file=sys.stderr)
        print("Nothing was trained or pushed; the serving directory is untouched.", file=sys.stderr)
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

    if not os.path.isdir(serving_model_dir) or not any(name.isdigit() for name in os.listdir(serving_model_dir)):
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


if __name__ == "__main__":
    exit_code = main()
    # Everything is written and closed by now. Interpreter teardown would run the finalizers
    # of TensorFlow's leftover function objects, which print pages of harmless TypeErrors
    # (tensorflow AtomicFunction.__del__); exiting directly skips them.
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
