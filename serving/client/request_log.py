"""Sampled request logging in the typed format `python -m pipeline skew` reads.

A share of predict requests is written down as tf.Examples of their raw inputs, one Example per
row, in TFRecord files named like the model server's own request log
(`serving.devserver.request_log`): `requests-<unix time>-<writer>-<sequence>.tfrecord`.

Types come from the model's signature, never from the JSON token a client happened to write:
a value of a DT_FLOAT input is a float_list value whether the request said `7` or `7.25`, a
DT_INT64 input an int64_list value (a whole `7.0` is 7), a DT_STRING input a bytes_list value.
The missing markers of `modules.features` (NaN, -1, "") are left out, as an empty CSV cell is.

Two writers use it: the logging proxy in front of TensorFlow Serving (`serving.logging_proxy`)
and the client library's opt-in sampling (`serving.client.predict_trips_rest(...,
request_log=RequestLog(...))`).

Logging never slows or fails a request: a caller only draws the sample and puts a job on a
bounded queue; one background thread parses, types and writes. A full queue or a job that
fails (a value of no form of its type, a disk error) drops that sample and counts it in
`RequestLog.stats()`, with a warning in the log.

Files are bounded: the open file is `.requests-...` (hidden, so a reader never sees half a
file) and becomes `requests-...` once it reaches `max_file_bytes`, is `max_file_age_s` old, or
the log closes. Each writer keeps at most `max_files` complete files of its own, deleting its
oldest first (0 keeps all); copy them off (or run the skew check) before they age out.

A writer that was killed before it closed (a container stopped past its grace period, a crash)
leaves its open file hidden. Every writer completes such files when it starts and every
`max_file_age_s` after: the files of its own name that this process does not have open, and any
writer's that nobody wrote to for `max_file_age_s` plus a minute (a live writer completes its
file by then). A record cut short by the kill is left out, the whole records before it kept.
Writers sharing a folder therefore need distinct names (the default ones are) and the same
`max_file_age_s`.
"""
import dataclasses
import logging
import math
import os
import queue
import random
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import tensorflow as tf

# The server's row-to-tf.Example rule (missing markers left out) writes the typed rows too, so
# both logs hold the same examples for the same values.
from serving.devserver.request_log import LOG_FILE_PREFIX, LOG_FILE_SUFFIX, to_example

logger = logging.getLogger(__name__)

Value = Union[int, float, str]
TypedRow = Dict[str, Value]
# A job computes the typed rows of one sampled request on the writer thread.
RowsJob = Callable[[], Sequence[Mapping[str, Optional[Value]]]]

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILE_AGE_S = 300.0
DEFAULT_MAX_FILES = 50
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_CLOSE_TIMEOUT_S = 30.0
# An open file is hidden from readers (skew lists names starting with LOG_FILE_PREFIX).
OPEN_FILE_PREFIX = "."
# TFRecord framing per record: length (8 bytes) and two CRCs (4 bytes each).
_RECORD_OVERHEAD_BYTES = 16

_FLOAT_DTYPES = frozenset({"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"})
_INT_DTYPES = frozenset({"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64"})
_STRING_DTYPES = frozenset({"DT_STRING"})
# Wakes the writer thread when the log closes; not a job.
_WAKE = object()
# Share of close()'s timeout spent writing queued samples; the rest completes the open file.
_DRAIN_SHARE = 0.75
# An open file nobody wrote to for max_file_age_s plus this long has no live writer: a writer
# completes its file max_file_age_s after opening it, late only by the sample it is typing.
_STALE_MARGIN_S = 60.0
# Hidden files open in this process (by any RequestLog), which the orphan sweep leaves alone.
_OPEN_PATHS: set = set()
_OPEN_PATHS_LOCK = threading.Lock()


def typed_value(name: str, value: Any, dtype: str) -> Optional[Value]:
    """Returns `value` in the Python type of its signature input's dtype; None stays None.

    Args:
        name: The input's name (for the error message).
        value: The value as the request carried it: a JSON token, b64-decoded bytes, a numpy
            scalar, or a one-element list (an input of shape [batch, 1]).
        dtype: The input's dtype name in the signature, e.g. "DT_FLOAT".

    Returns:
        A float for float dtypes, an int for integer dtypes, a str for DT_STRING.

    Raises:
        ValueError: naming the input, the value and the dtype when the value has no form of it.
    """
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if hasattr(value, "item") and not isinstance(value, (bytes, str)):
        value = value.item()  # a numpy scalar from a gRPC tensor
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in _FLOAT_DTYPES and number:
        return float(value)
    if dtype in _INT_DTYPES and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if dtype in _STRING_DTYPES and isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if dtype in _STRING_DTYPES and isinstance(value, str):
        return value
    raise ValueError(f"input {name!r}: value {value!r:.80} is not a {dtype}")


def typed_rows(rows: Sequence[Mapping[str, Any]], dtypes: Mapping[str, str]) -> List[Dict[str, Optional[Value]]]:
    """Returns the rows with every value in its signature input's type (see `typed_value`).

    Args:
        rows: One {input: value} mapping per request row.
        dtypes: Input name -> dtype name of the signature the request ran on.

    Raises:
        ValueError: for an input the signature does not have, or a value of no form of its type.
    """
    typed = []
    for row in rows:
        unknown = sorted(set(row) - set(dtypes))
        if unknown:
            raise ValueError(f"inputs {unknown} are not in the signature, which takes {sorted(dtypes)}")
        typed.append({name: typed_value(name, value, dtypes[name]) for name, value in row.items()})
    return typed


@dataclasses.dataclass
class RequestLogStats:
    """What a `RequestLog` did so far.

    Attributes:
        sampled_requests: Requests the sampling picked and queued.
        logged_rows: Rows written (one tf.Example each).
        dropped_requests: Sampled requests left out because the queue was full or the log
            closed before they were written.
        failed_requests: Sampled requests whose rows could not be typed or written.
        completed_files: Files completed (renamed to `requests-...`).
        deleted_files: Complete files deleted to keep at most `max_files`.
        recovered_files: Files a stopped writer left open, completed by this one.
    """

    sampled_requests: int = 0
    logged_rows: int = 0
    dropped_requests: int = 0
    failed_requests: int = 0
    completed_files: int = 0
    deleted_files: int = 0
    recovered_files: int = 0


class RequestLog:
    """Samples requests and writes their typed rows to bounded TFRecord files in `log_dir`.

    Args:
        log_dir: The folder (created if missing); `python -m pipeline skew --request-log` reads it.
        sampling_rate: Share of requests logged, in (0, 1].
        max_file_bytes: A file is completed once it holds this many bytes.
        max_file_age_s: A file is completed once it is this old (so a quiet server's rows
            reach readers too).
        max_files: Complete files this writer keeps (its oldest deleted first); 0 keeps all.
        queue_size: Sampled requests waiting for the writer; more are dropped and counted.
        writer_name: Part of each file name, so several writers can share a folder; default
            `<host name>-<process id>`.
        seed: Seeds the sampling, for tests.

    Raises:
        ValueError: for a sampling rate outside (0, 1] or a non-positive bound.
        OSError: when `log_dir` cannot be created.
    """

    def __init__(
        self,
        log_dir: str,
        sampling_rate: float,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_file_age_s: float = DEFAULT_MAX_FILE_AGE_S,
        max_files: int = DEFAULT_MAX_FILES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        writer_name: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> None:
        if not 0.0 < sampling_rate <= 1.0:
            raise ValueError(f"request log sampling rate must be in (0, 1], got {sampling_rate}")
        if max_file_bytes <= 0 or max_file_age_s <= 0 or queue_size <= 0 or max_files < 0:
            raise ValueError(
                f"request log bounds must be positive: max_file_bytes={max_file_bytes}, "
                f"max_file_age_s={max_file_age_s}, queue_size={queue_size}, max_files={max_files} (0 keeps all)"
            )
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.sampling_rate = sampling_rate
        self.max_file_bytes = max_file_bytes
        self.max_file_age_s = max_file_age_s
        self.max_files = max_files
        self.writer_name = (writer_name or f"{socket.gethostname()}-{os.getpid()}").replace("-", "_").replace("/", "_")
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = RequestLogStats()
        self._queue: "queue.Queue[object]" = queue.Queue(maxsize=queue_size)
        self._writer: Optional[tf.io.TFRecordWriter] = None
        self._open_path = ""
        self._open_bytes = 0
        self._opened_at = 0.0
        self._sequence = 0
        self._closed = False
        self._stopping = threading.Event()
        self._drain_deadline = math.inf
        self._thread = threading.Thread(target=self._run, name=f"request-log-{self.writer_name}", daemon=True)
        self._thread.start()

    # -- the caller's side: cheap, never raises for a logging problem ----------------------

    def sample(self) -> bool:
        """Draws whether the next request is logged."""
        with self._lock:
            return self._random.random() < self.sampling_rate

    def submit(self, job: RowsJob) -> bool:
        """Queues a sampled request; `job` computes its typed rows on the writer thread.

        Returns:
            False when the request is dropped (queue full or log closed), which is counted.
        """
        # One lock around the check and the enqueue: close() sets _closed under it, so a job is
        # either queued before the writer is told to stop (and written) or refused and counted.
        with self._lock:
            if self._closed:
                self._stats.dropped_requests += 1
                return False
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self._stats.dropped_requests += 1
                full = True
            else:
                self._stats.sampled_requests += 1
                full = False
        if full:
            logger.warning("request log %s: queue full, a sampled request is dropped", self.log_dir)
        return not full

    def log_rows(self, rows: Sequence[Mapping[str, Any]], dtypes: Mapping[str, str]) -> bool:
        """Draws the sample and, when picked, queues `rows` to be typed by `dtypes` and written.

        Args:
            rows: One {input: value} mapping per row of the request, as sent.
            dtypes: Input name -> dtype name of the signature the request ran on.

        Returns:
            True when the request was sampled and queued.
        """
        if not self.sample():
            return False
        snapshot = [dict(row) for row in rows]  # the caller may change its rows afterwards
        signature_dtypes = dict(dtypes)
        return self.submit(lambda: typed_rows(snapshot, signature_dtypes))

    def stats(self) -> RequestLogStats:
        """Returns a copy of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def close(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Writes what is queued, completes the open file and stops the writer thread.

        Returns within about `timeout_s`, a full queue or not: samples still queued after
        three quarters of it are dropped (and counted) so the open file is completed in time.
        A file the writer could not complete then (a slow sample in progress) is completed by
        the next writer that starts on the folder.

        Args:
            timeout_s: Longest wait for the writer thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._drain_deadline = time.monotonic() + timeout_s * _DRAIN_SHARE
        self._stopping.set()
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # the writer is busy draining; it sees _stopping once the queue is empty
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("request log %s: the writer did not finish within %.0f s", self.log_dir, timeout_s)

    def __enter__(self) -> "RequestLog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        self._recover_files()
        next_recovery = time.monotonic() + self.max_file_age_s
        while True:
            try:
                job = self._queue.get(timeout=min(1.0, self.max_file_age_s))
            except queue.Empty:
                job = None
            if job is _WAKE:
                job = None
            if job is not None and time.monotonic() > self._drain_deadline:
                self._drop_queued(1)
                break
            if job is not None:
                self._write_job(job)
            elif self._stopping.is_set():
                break  # nothing queued, and nothing can be queued after close()
            if self._writer is not None and time.monotonic() - self._opened_at >= self.max_file_age_s:
                self._complete_file()
            if time.monotonic() >= next_recovery:
                self._recover_files()
                next_recovery = time.monotonic() + self.max_file_age_s
        self._complete_file()

    def _drop_queued(self, taken: int) -> None:
        """Counts `taken` jobs and every one still queued as dropped (close() ran out of time)."""
        dropped = taken
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _WAKE:
                dropped += 1
        with self._lock:
            self._stats.dropped_requests += dropped
        logger.warning("request log %s: closing, %d sampled requests not written in time are dropped", self.log_dir, dropped)

    def _write_job(self, job: RowsJob) -> None:
        """Types and writes one sampled request's rows; a failure is counted, never raised."""
        try:
            records = [to_example(row).SerializeToString() for row in job()]
            if not records:
                return
            writer = self._open_writer()
            for record in records:
                writer.write(record)
                self._open_bytes += len(record) + _RECORD_OVERHEAD_BYTES
            writer.flush()
        # Any failure of one sample (a bad value, the metadata lookup, the disk) must not stop
        # the writer thread: it is counted and logged, and the next sample is tried afresh.
        except Exception as error:  # noqa: BLE001
            with self._lock:
                self._stats.failed_requests += 1
            logger.warning("request log %s: a sampled request was not logged: %s", self.log_dir, error)
            return
        with self._lock:
            self._stats.logged_rows += len(records)
        if self._open_bytes >= self.max_file_bytes:
            self._complete_file()

    def _open_writer(self) -> tf.io.TFRecordWriter:
        if self._writer is None:
            self._sequence += 1
            name = f"{LOG_FILE_PREFIX}{int(time.time())}-{self.writer_name}-{self._sequence:06d}{LOG_FILE_SUFFIX}"
            self._open_path = os.path.join(self.log_dir, OPEN_FILE_PREFIX + name)
            with _OPEN_PATHS_LOCK:
                _OPEN_PATHS.add(self._open_path)
            self._writer = tf.io.TFRecordWriter(self._open_path)
            self._open_bytes = 0
            self._opened_at = time.monotonic()
        return self._writer

    def _complete_file(self) -> None:
        """Closes the open file and gives it its readable name; then applies `max_files`."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
            directory, hidden = os.path.split(self._open_path)
            os.replace(self._open_path, os.path.join(directory, hidden[len(OPEN_FILE_PREFIX):]))
        except (OSError, tf.errors.OpError) as error:
            with self._lock:
                self._stats.failed_requests += 1
            logger.warning("request log %s: could not complete %s: %s", self.log_dir, self._open_path, error)
            return
        finally:
            with _OPEN_PATHS_LOCK:
                _OPEN_PATHS.discard(self._open_path)
        with self._lock:
            self._stats.completed_files += 1
        self._delete_oldest()

    def own_files(self) -> List[str]:
        """Returns the complete files this writer wrote, oldest first."""
        mine = f"-{self.writer_name}-"
        names = [
            name for name in os.listdir(self.log_dir)
            if name.startswith(LOG_FILE_PREFIX) and name.endswith(LOG_FILE_SUFFIX) and mine in name
        ]
        # <prefix><unix time>-<writer>-<sequence><suffix>: by time, then sequence (a restarted
        # writer of the same name starts its sequence again).
        return sorted(names, key=lambda name: (int(name[len(LOG_FILE_PREFIX):].split("-", 1)[0]), name))

    def _delete_oldest(self) -> None:
        if not self.max_files:
            return
        try:
            surplus = self.own_files()[: -self.max_files]
            for name in surplus:
                os.remove(os.path.join(self.log_dir, name))
                with self._lock:
                    self._stats.deleted_files += 1
        except OSError as error:
            logger.warning("request log %s: could not delete old files: %s", self.log_dir, error)

    def _recover_files(self) -> None:
        """Completes the hidden files stopped writers left behind (see the module docstring)."""
        mine = f"-{self.writer_name}-"
        stale_before = time.time() - self.max_file_age_s - _STALE_MARGIN_S
        try:
            names = os.listdir(self.log_dir)
        except OSError as error:
            logger.warning("request log %s: could not look for files left open: %s", self.log_dir, error)
            return
        for name in names:
            if not (name.startswith(OPEN_FILE_PREFIX + LOG_FILE_PREFIX) and name.endswith(LOG_FILE_SUFFIX)):
                continue
            path = os.path.join(self.log_dir, name)
            with _OPEN_PATHS_LOCK:
                if path in _OPEN_PATHS:
                    continue
            try:
                if mine not in name and os.path.getmtime(path) >= stale_before:
                    continue  # another writer's, maybe still open
                kept = _complete_left_open(path, os.path.join(self.log_dir, name[len(OPEN_FILE_PREFIX):]), self.writer_name)
            except (OSError, tf.errors.OpError) as error:
                logger.warning("request log %s: could not complete %s, left open by a stopped writer: %s", self.log_dir, name, error)
                continue
            with self._lock:
                self._stats.recovered_files += 1
            logger.warning("request log %s: completed %s (%d rows), left open by a stopped writer", self.log_dir, name, kept)
        self._delete_oldest()


def _complete_left_open(hidden_path: str, complete_path: str, writer_name: str) -> int:
    """Renames a file a killed writer left open to `complete_path`; returns its record count.

    A record the kill cut short is left out: the whole records before it are rewritten to the
    complete file, so a reader never meets a truncated record.
    """
    whole = 0
    try:
        for _ in tf.data.TFRecordDataset(hidden_path):
            whole += 1
    except tf.errors.DataLossError:
        # Hidden and not a log file name until renamed; the writer's name keeps two writers
        # recovering the same file at once out of each other's way.
        partial_path = f"{hidden_path}.{writer_name}.partial"
        with tf.io.TFRecordWriter(partial_path) as writer:
            for record in tf.data.TFRecordDataset(hidden_path).take(whole):
                writer.write(record.numpy())
        os.replace(partial_path, complete_path)
        os.remove(hidden_path)
        return whole
    os.replace(hidden_path, complete_path)
    return whole
