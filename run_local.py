"""Runs the taxi pipeline on this machine with TFX's LocalDagRunner and Beam's DirectRunner.

Examples:
  python run_local.py
      Train on every span in data/, write everything under outputs/.
  python run_local.py --data-root /data/taxi --output-dir /tmp/taxi --train-steps 500
      Another data root (a folder of span-<N>/ folders of CSV files) and a quick run.
  python run_local.py --span-window 2
      Train on the newest two spans only.

Writes OUTPUT_DIR/serving_model/<version>/ (pushed models, what TF Serving reads),
OUTPUT_DIR/metadata.db (ML Metadata, SQLite) and OUTPUT_DIR/pipeline_root/ (artifacts).
Exit code: 0 when the pipeline completed, blessed or not; 2 when the data was refused
(nothing trained, nothing pushed); 1 on any other failure.
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

EXIT_DATA_REFUSED = 2
EXIT_FAILED = 1


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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Runs the pipeline and prints the summary; returns the exit code."""
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # TFMA divides by zero for slices with no positive example; the metric is reported as NaN.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")
    started = time.monotonic()
    from pipeline import progress

    handler = progress.install()
    from tfx import v1 as tfx

    from pipeline import configs, run_summary, spans
    from pipeline.code_fingerprint import module_fingerprint
    from pipeline.pipeline import create_pipeline

    try:
        span_numbers = spans.window(spans.discover_spans(args.data_root), args.span_window)
    except spans.SpanError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA_REFUSED
    options = configs.PipelineOptions(span_window=args.span_window, module_fingerprint=module_fingerprint())
    if args.train_steps is not None:
        options = dataclasses.replace(options, train_steps=args.train_steps)
    output_dir = os.path.abspath(args.output_dir)
    serving_model_dir = os.path.join(output_dir, "serving_model")
    metadata_path = os.path.join(output_dir, "metadata.db")
    connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
    beam_args = ["--direct_running_mode=" + args.beam_mode]
    if args.beam_mode == "multi_processing":
        beam_args.append("--direct_num_workers=0")  # one worker per core
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=os.path.join(output_dir, "pipeline_root"),
        data_root=os.path.abspath(args.data_root),
        spans=span_numbers,
        serving_model_dir=serving_model_dir,
        metadata_connection_config=connection_config,
        options=options,
        beam_pipeline_args=beam_args,
    )
    print(f"pipeline {configs.PIPELINE_NAME}: spans {span_numbers} from {args.data_root}, output {output_dir}", flush=True)
    failure = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # noqa: BLE001 - reported below with the run's summary
        failure = error
    summary = run_summary.collect(connection_config, configs.PIPELINE_NAME)
    thresholds = options.thresholds
    print(
        run_summary.format_summary(
            summary,
            {
                "auc": f">= {thresholds.min_auc}, drop <= {thresholds.max_auc_drop}",
                "binary_accuracy": f">= {thresholds.min_binary_accuracy}, drop <= {thresholds.max_binary_accuracy_drop}",
            },
            handler.timings,
        )
    )
    print(f"total time: {time.monotonic() - started:.1f}s")
    if failure is not None:
        from pipeline.data_gate import DataAnomaliesError

        if _caused_by(failure, DataAnomaliesError) or summary.anomalies:
            print("DATA REFUSED: nothing was trained or pushed; the serving directory is untouched.", file=sys.stderr)
            return EXIT_DATA_REFUSED
        print(f"error: the pipeline failed: {type(failure).__name__}: {failure}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _caused_by(error: BaseException, error_type: type) -> bool:
    while error is not None:
        if isinstance(error, error_type):
            return True
        error = error.__cause__ or error.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
