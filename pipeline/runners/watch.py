"""Watches a data root for new complete spans and runs the pipeline once per new span.

    python -m pipeline watch --data-root /data/taxi --output-dir /srv/taxi --poll-seconds 60
    python -m pipeline watch --data-root /data/taxi --output-dir /srv/taxi --once

A span folder counts once it holds `_SUCCESS` (written last by whatever produces the span),
and only spans without a gap before them count; so a span still being written is never
read half-done. Each new newest complete span triggers one run on the span window; the
spans already trained on are kept in OUTPUT_DIR/watch_state.json, so a restart does not
re-run them. A refused span is run again once it changes: a file of it changes, or an owner
accepts it (`python -m pipeline.accept`). A run that fails for another reason leaves its span
pending and stops the watcher with exit code 1, so it is retried once the cause is fixed.
While another process writes to the output dir (a manual run, an accept, a rollback), the span
stays pending and the next poll tries again; with --once the watcher exits 75.
Airflow does the same with a FileSensor on `span-<N>/_SUCCESS` ahead of the
DAG, Vertex AI with a scheduled run that exits early when no new span is marked complete.
"""
import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from pipeline import configs, spans
from pipeline.ops import metadata
from pipeline.runners.local import (
    EXIT_BUSY,
    EXIT_DATA_REFUSED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    LocalPaths,
    RunResult,
    local_beam_args,
    metadata_errors,
    options_from_flags,
    run_once,
)

STATE_FILE = "watch_state.json"


def _load_state(state_path: str) -> Dict[str, object]:
    if not os.path.exists(state_path):
        return {"handled_spans": [], "refused": {}}
    with open(state_path) as state_file:
        state = json.load(state_file)
    state.setdefault("refused", {})
    return state


def _save_state(state_path: str, state: Dict[str, object]) -> None:
    tmp_path = state_path + ".tmp"
    with open(tmp_path, "w") as state_file:
        json.dump({**state, "handled_spans": sorted(state["handled_spans"])}, state_file, sort_keys=True)
    os.replace(tmp_path, state_path)


def refusal_signature(paths: LocalPaths, span: int) -> Dict[str, object]:
    """What a refused span is judged on: its files' fingerprints and its newest acceptance."""

    from pipeline.ops.accept import current_files
    from pipeline.validation.acceptance import for_spans

    accepted = for_spans(paths.metadata.connection_config(paths.output_dir, metadata.READ), [span])
    return {"files": current_files(paths.data_root, span), "acceptance": accepted[-1].artifact_id if accepted else 0}


def pending_span(data_root: str, handled: List[int]) -> Optional[int]:
    """Returns the newest complete span when it has not been handled yet, else None (also while
    the data root holds no complete span).

    Raises:
        pipeline.spans.SpanError: when the data root is broken: not a folder, two folders for
            one span, a span folder without a CSV file.
    """
    try:
        complete = spans.discover_spans(data_root, complete_only=True)
    except spans.NoSpanError:
        return None  # nothing complete yet: wait
    return complete[-1] if complete[-1] not in handled else None


def watch_once(paths: LocalPaths, run: Callable[[], RunResult]) -> Optional[RunResult]:
    """Runs the pipeline if a new complete span is there, or a refused one changed; returns the
    run's result or None.

    Raises:
        pipeline.spans.SpanError: as `pending_span`.
    """
    state_path = os.path.join(paths.output_dir, STATE_FILE)
    state = _load_state(state_path)
    span = pending_span(paths.data_root, state["handled_spans"])
    if span is None:
        return None
    signature = refusal_signature(paths, span)
    if state["refused"].get(str(span)) == signature:
        return None  # refused, and nothing changed since: it would be refused again
    result = run()
    if result.exit_code == EXIT_OK:
        state["handled_spans"] = state["handled_spans"] + [span]
        state["refused"].pop(str(span), None)
    elif result.exit_code == EXIT_DATA_REFUSED:
        state["refused"][str(span)] = signature
    # Any other failure leaves the span pending: the next look runs it again.
    _save_state(state_path, state)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m pipeline watch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder of span-<N>/ folders to watch")
    parser.add_argument("--output-dir", required=True, help="where runs write (as run_local.py --output-dir)")
    parser.add_argument("--poll-seconds", type=float, default=60.0, help="seconds between looks (default: 60)")
    parser.add_argument("--once", action="store_true", help="look once, run if there is a new span, and exit")
    parser.add_argument("--span-window", type=int, default=None, help="train on the newest K spans")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps per run")
    parser.add_argument(
        "--external-table", action="append", default=[], metavar="NAME=PATH",
        help="another file for an external table (default: the versioned tables under data/external/)",
    )
    metadata.add_metadata_flag(parser)
    args = parser.parse_args(argv)
    errors = metadata_errors(args.metadata_url, os.path.abspath(args.output_dir))
    if errors:
        print("\n".join(f"error: {line}" for line in errors), file=sys.stderr)
        return EXIT_USAGE
    from serving.console import import_tensorflow

    import_tensorflow()

    from pipeline.runners import progress
    from pipeline.runners.replay import describe_step

    handler = progress.install(quiet=True)
    options = options_from_flags(args.span_window, args.train_steps, args.external_table)
    paths = LocalPaths(args.data_root, os.path.abspath(args.output_dir), metadata.setting_from(args.metadata_url))
    os.makedirs(paths.output_dir, exist_ok=True)

    def run() -> RunResult:
        return run_once(paths, options, local_beam_args("in_memory"), handler, complete_spans_only=True)

    print(f"watching {args.data_root} for span folders marked {configs.SPAN_COMPLETE_MARKER}", flush=True)
    reported = ""
    while True:
        stray = spans.stray_text(args.data_root)
        if stray and stray != reported:
            print(f"warning: {stray}", file=sys.stderr, flush=True)
        reported = stray
        try:
            result = watch_once(paths, run)
        except spans.SpanError as error:
            # Two folders for one span, a span folder without a CSV file: the owner must fix the
            # data root; nothing is marked handled.
            print(f"error: {error}", file=sys.stderr)
            return EXIT_DATA_REFUSED
        if result is not None:
            print(describe_step(time.strftime("%H:%M:%S new span"), result), flush=True)
            if result.exit_code == EXIT_FAILED:
                print(f"error: the run failed, the span stays pending: {result.error}", file=sys.stderr)
                return EXIT_FAILED
            if result.exit_code == EXIT_USAGE:
                print(f"error: {result.error}", file=sys.stderr)
                return EXIT_USAGE
            if result.exit_code == EXIT_BUSY:
                print(f"note: the span stays pending, tried again at the next look: {result.error}", file=sys.stderr, flush=True)
                if args.once:
                    return EXIT_BUSY
        if args.once:
            return 0
        time.sleep(args.poll_seconds)


if __name__ == "__main__":
    sys.exit(main())
