"""Stops the work of a request nobody waits for any more.

A REST request past `--rest_api_timeout_in_ms` has been answered 504, and a gRPC call whose
client deadline passed or that the client cancelled has ended; the thread computing it would
otherwise go on parsing, running the model and serialising for nobody. Each request's work runs
with a `Deadline` bound to its thread; the stages check it (`check`) before each costly step
(after the request is decoded, before the model runs, before the response is encoded), so
abandoned work stops at the next stage. A model call already running is not interrupted:
TensorFlow offers no safe way to stop one from outside, so a single call is the unit of waste.
"""
import contextlib
import threading
import time
from typing import Callable, Iterator, Optional

import grpc

from serving.devserver.errors import StatusError

_bound = threading.local()


class Deadline:
    """When a request's work stops being wanted: a time (monotonic seconds) and/or a cancel."""

    def __init__(
        self,
        expires_at: Optional[float] = None,
        what: str = "the request's deadline",
        on_stop: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.expires_at = expires_at
        self.what = what
        # Told the stage where the work stopped (the server's abandoned-work counter).
        self._on_stop = on_stop
        self._cancelled = threading.Event()

    @classmethod
    def after(cls, seconds: Optional[float], what: str, on_stop: Optional[Callable[[str], None]] = None) -> "Deadline":
        """A deadline `seconds` from now (None: no time limit, only cancelling)."""
        return cls(None if seconds is None else time.monotonic() + seconds, what, on_stop)

    def cancel(self) -> None:
        """Marks the work unwanted (the answer was already sent, or the client went away)."""
        self._cancelled.set()

    @property
    def abandoned(self) -> bool:
        return self._cancelled.is_set() or (self.expires_at is not None and time.monotonic() > self.expires_at)

    def check(self, stage: str) -> None:
        """Raises DEADLINE_EXCEEDED when the work is no longer wanted, naming where it stopped."""
        if self.abandoned:
            if self._on_stop is not None:
                self._on_stop(stage)
            raise StatusError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline exceeded ({self.what}); stopped {stage}")


@contextlib.contextmanager
def bound(deadline: Deadline) -> Iterator[Deadline]:
    """Binds `deadline` to this thread for the `with` block, for `check` to find."""
    previous = getattr(_bound, "deadline", None)
    _bound.deadline = deadline
    try:
        yield deadline
    finally:
        _bound.deadline = previous


def check(stage: str) -> None:
    """Checks the deadline bound to this thread, if any (see `Deadline.check`)."""
    deadline = getattr(_bound, "deadline", None)
    if deadline is not None:
        deadline.check(stage)
