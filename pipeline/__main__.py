"""The pipeline's commands: `python -m pipeline <command> [flags]`.

Once the project is installed (`make venv` does it), `taxi-pipeline <command>` is the same.
`python -m pipeline <command> --help` gives each command's flags with worked examples.
"""
import importlib
import sys
from typing import Dict, NamedTuple, Optional, Sequence

EXIT_USAGE = 64


class Command(NamedTuple):
    module: str
    summary: str
    # Import TensorFlow quietly before the command's module (which imports it at the top).
    quiet_tensorflow: bool = True


COMMANDS: Dict[str, Command] = {
    "run": Command("pipeline.runners.local", "run the pipeline on a data root (as `python run_local.py`)", quiet_tensorflow=False),
    "accept": Command("pipeline.ops.accept", "accept a refused span after review, on the record (as `python -m pipeline.accept`)"),
    "replay": Command("pipeline.runners.replay", "replay the spans as if they arrived one after another"),
    "watch": Command("pipeline.runners.watch", "run once per new complete span (marked by _SUCCESS)"),
    "vertex": Command("pipeline.runners.vertex", "compile the pipeline for Vertex AI Pipelines (KFP v2 JSON)"),
    "lineage": Command("pipeline.ops.lineage", "the data, code and decisions behind a served version"),
    "report": Command("pipeline.ops.report", "write the HTML report of the newest run again"),
    "rollback": Command("pipeline.ops.rollback", "pin an earlier served version (or go back to the newest)"),
    "rollout": Command("pipeline.ops.rollout", "canary a pushed version beside stable, compare the two, promote or abort"),
    "housekeeping": Command("pipeline.ops.housekeeping", "prune old artifacts and versions, never the live lineage"),
    "skew": Command("pipeline.ops.skew", "compare logged serving traffic with the training statistics"),
    "export-holidays": Command("pipeline.data_tools.export_holidays", "write a new version of the holiday table"),
    "score": Command("pipeline.runners.batch_score", "score every trip of a span with the served model (Beam, as TFX's BulkInferrer) into CSV or Parquet"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {command.summary}" for name, command in COMMANDS.items()]
    return "usage: python -m pipeline <command> [flags]\n\ncommands:\n" + "\n".join(lines) + "\n\nserving: python -m serving.model_server, python -m serving.client\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command; returns its exit code (64 for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"error: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return EXIT_USAGE
    if name == "run":
        from pipeline.runners.local import run

        run(rest)  # exits the process directly (see `run`)
    if command.quiet_tensorflow:
        import warnings

        from serving.console import import_tensorflow

        warnings.filterwarnings("ignore", category=FutureWarning)
        import_tensorflow()
    return importlib.import_module(command.module).main(rest)


if __name__ == "__main__":
    sys.exit(main())
