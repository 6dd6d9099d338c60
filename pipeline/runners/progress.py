"""Readable progress for the local runs: one line per component start and end, with its time.

TFX logs through absl at INFO, which is pages per component. This handler keeps the
lines that say a component started, finished or was answered from the cache, and lets
every warning and error through unchanged.
"""
import logging
import re
import sys
import time
from typing import Dict, List, Tuple

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")
_SKIPPED = re.compile(r"Skipping component (\S+)\.")
# Warnings TFX 1.16 prints on every resolver step of a correct pipeline.
_KNOWN_HARMLESS = (
    "ArtifactQuery.property_predicate is not supported.",
    # Transform's output carries no payload_format; TFX then assumes tf.Example, which it is.
    "Examples artifact does not have payload_format custom property.",
    # TFT's analysis traces vocabulary lookups in a tf.function; the exported graph is fine.
    "Tables initialized inside a tf.function",
)


class ProgressHandler(logging.Handler):
    """Prints component progress and collects (component, state, seconds) timings."""

    def __init__(self, stream=sys.stdout, quiet: bool = False):
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.quiet = quiet
        self.timings: List[Tuple[str, str, float]] = []
        # Per thread: ConcurrentDagRunner runs independent components in threads of their own.
        self._started: Dict[int, float] = {}
        self._cached: Dict[int, bool] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING and not message.startswith(_KNOWN_HARMLESS):
            print(f"{record.levelname}: {message}", file=sys.stderr, flush=True)
            return
        thread = record.thread
        if match := _RUNNING.match(message):
            self._started[thread], self._cached[thread] = time.monotonic(), False
            if not self.quiet:
                print(f"[{time.strftime('%H:%M:%S')}] {match.group(1)} ...", file=self.stream, flush=True)
        elif _CACHED.match(message):
            self._cached[thread] = True
        elif match := _FINISHED.match(message):
            seconds = time.monotonic() - self._started.get(thread, time.monotonic())
            state = "cached" if self._cached.get(thread) else "ran"
            self.timings.append((match.group(1), state, seconds))
            if not self.quiet:
                print(f"[{time.strftime('%H:%M:%S')}] {match.group(1)} {state} in {seconds:.1f}s", file=self.stream, flush=True)
        elif match := _SKIPPED.match(message):
            self.timings.append((match.group(1), "skipped", 0.0))


def install(quiet: bool = False) -> ProgressHandler:
    """Routes absl's log records through a ProgressHandler and returns it.

    Args:
        quiet: Collect timings without printing a line per component.
    """
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger = logging.getLogger("absl")
    for handler in list(absl_logger.handlers):
        absl_logger.removeHandler(handler)
    logging.root.handlers = [h for h in logging.root.handlers if not isinstance(h, absl_logging.ABSLHandler)]
    handler = ProgressHandler(quiet=quiet)
    absl_logger.addHandler(handler)
    absl_logger.propagate = False
    absl_logger.setLevel(logging.INFO)
    # TensorFlow's Python deprecation notices are for library authors, not pipeline users.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Beam's note that python-snappy is not installed is about speed, not correctness.
    logging.getLogger("apache_beam.io.tfrecordio").setLevel(logging.ERROR)
    return handler
