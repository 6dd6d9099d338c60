"""Prometheus metrics under TensorFlow Serving's names, one registry per server.

Exposed at `/monitoring/prometheus/metrics` (or the configured path) on the REST port when the
monitoring config enables Prometheus:

- `:tensorflow:serving:request_count{model_name,status}`: a counter of inference requests
  (predict, classify, regress, multi-inference; REST and gRPC) by final status (`OK` or the
  canonical code name). It is written without the `_total` suffix that prometheus_client's
  Counter would add, because dashboards built for TensorFlow Serving query the bare name.
- `:tensorflow:serving:request_latency{model_name,API,entrypoint}`: a histogram of request
  latency in microseconds, API one of Predict/Classify/Regress/MultiInference and entrypoint
  REST or GRPC, with TensorFlow Serving's exponential buckets (10us * 1.8^i, 33 buckets).

- `:tensorflow:cc:saved_model:load_attempt_count{model_path,status}`: a counter of attempts to
  load a version's SavedModel, status `success` or `fail`, as TensorFlow's SavedModel loader
  counts them (tensorflow/cc/saved_model/loader.cc) in tensorflow_model_server.

- `devserver_abandoned_work_total{stage}`: this server's own counter (TensorFlow Serving has
  none) of requests whose work stopped because nobody waited any more (a REST timeout, a gRPC
  deadline or cancel), by the stage where it stopped (`serving.devserver.deadlines`).

Each `ServerMetrics` owns a `CollectorRegistry`, so several servers in one process (tests) keep
separate counts.
"""
import threading
from typing import Dict, Tuple

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"
ABANDONED_WORK = "devserver_abandoned_work"
LATENCY_BUCKETS_MICROS = tuple(10.0 * 1.8**index for index in range(33))
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _BareCounter:
    """A counter written by hand under its bare name: prometheus_client's Counter would append
    `_total`, which TensorFlow Serving's names do not have."""

    def __init__(self, name: str, help_text: str, labelnames: Tuple[str, ...]) -> None:
        self._name = name
        self._help = help_text
        self._labelnames = labelnames
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, ...], float] = {}

    def increment(self, *label_values: str) -> None:
        with self._lock:
            self._counts[label_values] = self._counts.get(label_values, 0.0) + 1.0

    def exposition(self) -> str:
        with self._lock:
            counts = dict(self._counts)
        lines = [f"# HELP {self._name} {self._help}", f"# TYPE {self._name} counter"]
        for values, count in sorted(counts.items()):
            labels = ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in zip(self._labelnames, values))
            lines.append(f"{self._name}{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """Request metrics of one server instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._request_count = _BareCounter(REQUEST_COUNT, "The total number of requests.", ("model_name", "status"))
        self._load_attempts = _BareCounter(LOAD_ATTEMPT_COUNT, "The number of times a SavedModel was successfully loaded.", ("model_path", "status"))
        self._latency = Histogram(
            REQUEST_LATENCY,
            "Distribution of wall-time (in microseconds) for Tensorflow Serving request.",
            labelnames=("model_name", "API", "entrypoint"),
            buckets=LATENCY_BUCKETS_MICROS,
            registry=self.registry,
        )
        self._abandoned = Counter(
            ABANDONED_WORK,
            "Requests whose work stopped because nobody waited any more, by the stage where it stopped.",
            labelnames=("stage",),
            registry=self.registry,
        )

    def record_load(self, model_path: str, loaded: bool) -> None:
        """Counts one attempt to load a version's SavedModel, as TensorFlow's loader does:
        status "success" or "fail" (a warm-up that fails after a load is not a failed load)."""
        self._load_attempts.increment(model_path, "success" if loaded else "fail")

    def record_abandoned(self, stage: str) -> None:
        """Counts one request whose work stopped at `stage` (see serving.devserver.deadlines)."""
        self._abandoned.labels(stage=stage).inc()

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, latency_micros: float
    ) -> None:
        """Counts one inference request and records its latency.

        Args:
            model_name: The requested model name.
            api: Predict, Classify, Regress or MultiInference.
            entrypoint: REST or GRPC.
            status: `OK` or the canonical error code name (e.g. `NOT_FOUND`).
            latency_micros: Wall time from receipt to answer, in microseconds.
        """
        self._request_count.increment(model_name, status)
        self._latency.labels(model_name=model_name, API=api, entrypoint=entrypoint).observe(
            latency_micros
        )

    def exposition(self) -> bytes:
        """Returns the Prometheus text exposition of this server's metrics."""
        bare = self._request_count.exposition() + self._load_attempts.exposition()
        return bare.encode("utf-8") + generate_latest(self.registry)
