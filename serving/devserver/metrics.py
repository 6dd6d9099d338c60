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
ABANDONED_WORK = "devserver_abandoned_work"
LATENCY_BUCKETS_MICROS = tuple(10.0 * 1.8**index for index in range(33))
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _RequestCounter:
    """The request counter, written by hand: prometheus_client would name it `..._total`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, str], float] = {}

    def increment(self, model_name: str, status: str) -> None:
        with self._lock:
            key = (model_name, status)
            self._counts[key] = self._counts.get(key, 0.0) + 1.0

    def exposition(self) -> str:
        with self._lock:
            counts = dict(self._counts)
        lines = [
            f"# HELP {REQUEST_COUNT} The total number of requests.",
            f"# TYPE {REQUEST_COUNT} counter",
        ]
        for (model_name, status), value in sorted(counts.items()):
            lines.append(
                f'{REQUEST_COUNT}{{model_name="{_escape_label_value(model_name)}",'
                f'status="{_escape_label_value(status)}"}} {value}'
            )
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """Request metrics of one server instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._request_count = _RequestCounter()
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
        return self._request_count.exposition().encode("utf-8") + generate_latest(self.registry)
