"""Server-side batching of concurrent predict requests (`--enable_batching`).

Concurrent Predict calls for the same model version and signature are merged along the first
(batch) dimension, run once, and the outputs are split back per request. The first request of
a batch waits up to `batch_timeout_micros` for others (or until `max_batch_size` rows are
gathered), then runs the batch on its own thread; the others wait for their slice. At most
`num_batch_threads` batches run at once and at most `max_enqueued_batches` wait for a turn;
beyond that a request fails UNAVAILABLE, as TensorFlow Serving's batch scheduler does.

Kept deliberately simple and always correct: a request whose inputs cannot be concatenated
with the open batch (different dtypes or inner shapes, no batch dimension) runs on its own, and
a batch whose outputs do not carry the batch dimension is re-run request by request. With
`allowed_batch_sizes`, a batch is padded (repeating its first row) up to the next allowed size.
"""
import dataclasses
import logging
import threading
from typing import Dict, List, Mapping, Optional, Tuple

import grpc
import numpy as np

from serving.devserver.errors import StatusError, invalid_argument
from serving.devserver.servables import Servable

logger = logging.getLogger(__name__)

# TensorFlow Serving's defaults when a BatchingParameters field is left out.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_NUM_BATCH_THREADS = 4


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Batching knobs, as in TensorFlow Serving's BatchingParameters."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = DEFAULT_NUM_BATCH_THREADS
    allowed_batch_sizes: Tuple[int, ...] = ()

    @classmethod
    def from_proto(cls, parameters) -> "BatchingOptions":
        """Builds options from a parsed BatchingParameters message (unset fields: defaults).

        Raises:
            ValueError: When a value is out of range or allowed_batch_sizes is inconsistent.
        """

        def wrapped(field: str, default: int) -> int:
            return getattr(parameters, field).value if parameters.HasField(field) else default

        options = cls(
            max_batch_size=wrapped("max_batch_size", DEFAULT_MAX_BATCH_SIZE),
            batch_timeout_micros=wrapped("batch_timeout_micros", DEFAULT_BATCH_TIMEOUT_MICROS),
            max_enqueued_batches=wrapped("max_enqueued_batches", DEFAULT_MAX_ENQUEUED_BATCHES),
            num_batch_threads=wrapped("num_batch_threads", DEFAULT_NUM_BATCH_THREADS),
            allowed_batch_sizes=tuple(parameters.allowed_batch_sizes),
        )
        options.validate()
        return options

    def validate(self) -> None:
        """Raises ValueError naming the field when the options cannot work."""
        for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, field) < 1:
                raise ValueError(f"batching parameter {field} must be >= 1, got {getattr(self, field)}")
        if self.batch_timeout_micros < 0:
            raise ValueError("batching parameter batch_timeout_micros must be >= 0")
        sizes = list(self.allowed_batch_sizes)
        if sizes:
            if sizes != sorted(set(sizes)) or sizes[0] < 1:
                raise ValueError("allowed_batch_sizes must be positive and strictly increasing")
            if sizes[-1] != self.max_batch_size:
                raise ValueError(
                    f"the last entry of allowed_batch_sizes ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: Optional[Dict[str, np.ndarray]] = None
    error: Optional[BaseException] = None


@dataclasses.dataclass
class _Batch:
    layout: Tuple
    tasks: List[_Task] = dataclasses.field(default_factory=list)
    rows: int = 0
    full: threading.Event = dataclasses.field(default_factory=threading.Event)


def _layout(inputs: Mapping[str, np.ndarray]) -> Optional[Tuple[Tuple, int]]:
    """(key that batchable requests share, rows) or None when the request cannot batch."""
    rows = None
    parts = []
    for name in sorted(inputs):
        array = inputs[name]
        if array.ndim == 0:
            return None
        if rows is None:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            return None
        parts.append((name, array.dtype.str, array.shape[1:]))
    if not rows:
        return None
    return tuple(parts), rows


class Batcher:
    """Merges concurrent predict calls per (servable, signature); see the module docstring.

    Args:
        options: Batch size, timeout and queue limits.
    """

    def __init__(self, options: BatchingOptions) -> None:
        options.validate()
        self._options = options
        self._lock = threading.Lock()
        self._open: Dict[Tuple, _Batch] = {}
        self._run_slots = threading.BoundedSemaphore(options.num_batch_threads)
        self._waiting_batches = 0
        # Model executions and the most requests merged into one; read by tests and logs.
        self.executions = 0
        self.largest_batch = 0

    @property
    def options(self) -> BatchingOptions:
        """The options this batcher runs with."""
        return self._options

    def run(
        self,
        servable: Servable,
        signature_key: str,
        inputs: Mapping[str, np.ndarray],
    ) -> Dict[str, np.ndarray]:
        """Runs one predict call, batched with concurrent calls where possible.

        Args:
            servable: The servable the call resolved to.
            signature_key: The signature to run.
            inputs: Input alias -> array (already validated against the signature).

        Returns:
            Output alias -> array for this call's rows only (all outputs of the signature).

        Raises:
            StatusError: INVALID_ARGUMENT when the call alone exceeds max_batch_size,
                UNAVAILABLE when the batch queue is full, or the model's own error.
        """
        layout = _layout(inputs)
        if layout is None:
            return self._run_alone(servable, signature_key, inputs)
        parts, rows = layout
        if rows > self._options.max_batch_size:
            raise invalid_argument(
                f"Task size {rows} is larger than maximum input batch size "
                f"{self._options.max_batch_size}"
            )
        task = _Task(inputs=inputs, rows=rows)
        # id() keys the servable object itself, so a reloaded version never joins an old batch.
        key = (id(servable), signature_key, parts)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None or batch.rows + rows > self._options.max_batch_size
            if leader:
                if self._waiting_batches >= self._options.max_enqueued_batches:
                    raise StatusError(
                        grpc.StatusCode.UNAVAILABLE,
                        "The batch scheduling queue to which this task was submitted is full",
                    )
                if batch is not None:
                    batch.full.set()  # The open batch cannot take this task: close it now.
                batch = _Batch(layout=parts)
                self._open[key] = batch
                self._waiting_batches += 1
            batch.tasks.append(task)
            batch.rows += rows
            if batch.rows >= self._options.max_batch_size:
                batch.full.set()
        if leader:
            self._lead(key, batch, servable, signature_key)
        else:
            task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def _lead(self, key: Tuple, batch: _Batch, servable: Servable, signature_key: str) -> None:
        batch.full.wait(self._options.batch_timeout_micros / 1e6)
        with self._lock:
            if self._open.get(key) is batch:
                del self._open[key]
        try:
            with self._run_slots:
                with self._lock:
                    self._waiting_batches -= 1
                self._execute(batch, servable, signature_key)
        except BaseException as error:  # noqa: BLE001 - every waiter must be released.
            for task in batch.tasks:
                if not task.done.is_set():
                    task.error = error
                    task.done.set()
            raise

    def _execute(self, batch: _Batch, servable: Servable, signature_key: str) -> None:
        tasks = batch.tasks
        if len(tasks) == 1:
            self._finish_alone(tasks[0], servable, signature_key)
            return
        names = sorted(tasks[0].inputs)
        merged = {name: np.concatenate([task.inputs[name] for task in tasks]) for name in names}
        padded_rows = self._padded_size(batch.rows)
        if padded_rows > batch.rows:
            extra = padded_rows - batch.rows
            merged = {
                name: np.concatenate([array, np.repeat(array[:1], extra, axis=0)])
                for name, array in merged.items()
            }
        logger.debug("running a batch of %d requests (%d rows)", len(tasks), batch.rows)
        self._count_execution(len(tasks))
        try:
            outputs = servable.run(signature_key, merged)
        except StatusError as error:
            for task in tasks:
                task.error = error
                task.done.set()
            return
        if any(array.ndim == 0 or array.shape[0] != padded_rows for array in outputs.values()):
            # Outputs without the batch dimension cannot be split: run each request alone.
            for task in tasks:
                self._finish_alone(task, servable, signature_key)
            return
        offset = 0
        for task in tasks:
            task.outputs = {
                name: array[offset : offset + task.rows] for name, array in outputs.items()
            }
            offset += task.rows
            task.done.set()

    def _padded_size(self, rows: int) -> int:
        for size in self._options.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def _count_execution(self, requests: int) -> None:
        with self._lock:
            self.executions += 1
            self.largest_batch = max(self.largest_batch, requests)

    def _finish_alone(self, task: _Task, servable: Servable, signature_key: str) -> None:
        self._count_execution(1)
        try:
            task.outputs = servable.run(signature_key, task.inputs)
        except StatusError as error:
            task.error = error
        task.done.set()

    def _run_alone(
        self, servable: Servable, signature_key: str, inputs: Mapping[str, np.ndarray]
    ) -> Dict[str, np.ndarray]:
        self._count_execution(1)
        return servable.run(signature_key, inputs)

