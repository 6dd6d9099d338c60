"""Replays the spans of a data root as if they arrived one after another.

    python -m pipeline replay --output-dir /tmp/replay
    python -m pipeline replay --output-dir /tmp/replay --span-window 2 --train-steps 200

For each span in order, the span folder is copied into OUTPUT_DIR/arrived/ and the pipeline
runs on what has arrived so far (all spans, or the newest K with --span-window). Each step
prints the data checks (anomalies, drift against the previous span), the new model's metrics
against the serving model's, and the decision: the version pushed, or why nothing was.
A last run with no new span shows that nothing needless is redone.
"""
import argparse
import dataclasses
import os
import shutil
import sys
from typing import List, Optional, Sequence

from pipeline import configs, spans
from pipeline.ops import metadata
from pipeline.runners.local import EXIT_DATA_REFUSED, EXIT_OK, EXIT_USAGE, LocalPaths, RunResult, local_beam_args, metadata_errors, options_from_flags, run_once


def _decision(result: RunResult) -> str:
    summary = result.summary
    if result.exit_code != EXIT_OK and (summary is None or summary.blessed is None):
        return f"refused before training: {result.error}"
    if summary.pushed_version:
        return f"pushed version {summary.pushed_version}"
    if summary.already_serving_version:
        return f"nothing pushed: the same model already serves as version {summary.already_serving_version}"
    if summary.blessed is False:
        return "not pushed, not blessed: " + "; ".join(summary.failed_thresholds)
    if summary.serves is False:
        return f"not pushed, failed the serving check: {summary.serving_check_detail}"
    return f"nothing pushed ({result.error or 'the run did not reach the Pusher'})"


def describe_step(label: str, result: RunResult) -> str:
    """Returns the lines a person reads for one replay step."""
    summary = result.summary
    lines = [f"== {label}: spans {result.spans or '-'} ({result.seconds:.0f}s)"]
    if summary is not None:
        ran = [name for name, state, _ in result.timings if state == "ran"]
        lines.append(f"   components run: {', '.join(ran) or 'none (all cached)'}")
        if summary.anomalies:
            lines.append(f"   anomalies: {'; '.join(summary.anomalies)}")
        if summary.drift and summary.drift.get("reference_spans"):
            top = ", ".join(f"{s['feature']} {s['score']:.3f}" for s in [s for s in summary.drift["scores"] if s["judged"]][:3])
            drifted = f"; OVER THRESHOLD: {', '.join(summary.drifted)}" if summary.drifted else ""
            reference = spans.spans_text(summary.drift["reference_spans"])
            lines.append(f"   drift span {summary.drift['checked_span']} against spans {reference}: {top}{drifted}")
        if summary.accepted:
            lines.append(f"   accepted on record: {'; '.join(summary.accepted)}")
        for name in ("auc", "binary_accuracy"):
            if name in summary.metrics:
                new, serving = summary.metrics[name]
                lines.append(f"   {name}: new {new:.4f}" + (f", serving {serving:.4f}" if serving is not None else ", no model serving yet"))
    lines.append(f"   decision: {_decision(result)}")
    return "\n".join(lines)


def replay(
    data_root: str,
    output_dir: str,
    options: configs.PipelineOptions,
    beam_pipeline_args: List[str],
    progress_handler=None,
    rerun: bool = True,
    metadata_setting: metadata.MetadataSetting = metadata.MetadataSetting(),
) -> List[RunResult]:
    """Copies spans into OUTPUT_DIR/arrived one at a time, running the pipeline after each
    (ML Metadata where `metadata_setting` says).

    Returns:
        One RunResult per arrival, plus one for the final rerun when `rerun` is True.
    """
    arrived = os.path.join(output_dir, "arrived")
    os.makedirs(arrived, exist_ok=True)
    paths = LocalPaths(arrived, output_dir, metadata_setting)
    results = []
    for span in spans.discover_spans(data_root):
        target = os.path.join(arrived, f"{configs.SPAN_FOLDER_PREFIX}{span}")
        if not os.path.exists(target):
            shutil.copytree(os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}"), target)
        result = run_once(paths, options, beam_pipeline_args, progress_handler)
        print(describe_step(f"span {span} arrived", result), flush=True)
        results.append(result)
    if rerun:
        result = run_once(paths, options, beam_pipeline_args, progress_handler)
        print(describe_step("no new span, run again", result), flush=True)
        results.append(result)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns 0 when every step ran (refusals included)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data", help="folder of span-<N>/ folders to replay (default: data)")
    parser.add_argument("--output-dir", required=True, help="where the replay writes (spans arrive in OUTPUT_DIR/arrived)")
    parser.add_argument("--span-window", type=int, default=None, help="train on the newest K spans (default: all so far)")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps per run")
    parser.add_argument("--on-drift", choices=[configs.DRIFT_STOP, configs.DRIFT_WARN], default=None, help="drift policy")
    parser.add_argument(
        "--external-table", action="append", default=[], metavar="NAME=PATH",
        help="another file for an external table (default: the versioned tables under data/external/)",
    )
    metadata.add_metadata_flag(parser)
    args = parser.parse_args(argv)
    data_root_problem = spans.data_root_problem(args.data_root)
    # Checked before anything runs, as run_local.py does: a mistyped data root, not bad data.
    errors = [f"--data-root {args.data_root!r} {data_root_problem}"] if data_root_problem else []
    errors.extend(metadata_errors(args.metadata_url, os.path.abspath(args.output_dir)))
    if errors:
        print("\n".join(f"error: {line}" for line in errors), file=sys.stderr)
        return EXIT_USAGE
    from serving.console import import_tensorflow

    import_tensorflow()

    from pipeline.runners import progress

    handler = progress.install(quiet=True)
    options = options_from_flags(args.span_window, args.train_steps, args.external_table)
    if args.on_drift is not None:
        options = dataclasses.replace(options, drift=dataclasses.replace(options.drift, on_drift=args.on_drift))
    try:
        results = replay(
            args.data_root, os.path.abspath(args.output_dir), options, local_beam_args("in_memory"), handler,
            metadata_setting=metadata.setting_from(args.metadata_url),
        )
    except spans.SpanError as error:
        # Two folders for one span, a span folder without a CSV file: found before the first run.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA_REFUSED
    failed = [result for result in results if result.exit_code not in (EXIT_OK, 2)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
