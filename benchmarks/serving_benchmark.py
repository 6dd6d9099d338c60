"""Latency and throughput of the local model server (`serving/`) on the pushed taxi model.

    .venv/bin/python benchmarks/serving_benchmark.py --model-dir /tmp/bench_run/serving_model
    .venv/bin/python benchmarks/serving_benchmark.py --model-dir /tmp/bench_run/serving_model \\
        --duration 5 --soak-seconds 60 --output docs/serving_benchmark.md

What it measures, in one run on one machine:

1. Single-row latency (p50/p99), measured in interleaved rounds so that load from other
   processes hits every path alike, of the SavedModel's `serving_default` called in this process
   (`tf.saved_model.load(...).signatures[...]`), of the server's own session path called in
   this process (`serving.devserver.servables.Servable.run`, no transport), and of one client asking
   the server over REST and over gRPC, one request at a time. The overhead of an API is
   p50(API) - p50(in-process SavedModel call).
2. Throughput (requests/s, rows/s) and p50/p99 at 1, 8 and 32 concurrent clients, REST and
   gRPC, 1 and 64 rows per request, with and without server-side batching
   (`serving/deploy/config/batching.config`, the batching the deployment ships).
3. A soak: 32 concurrent clients for `--soak-seconds` over REST, then over gRPC, counting
   failed requests.

The server runs as `python -m serving.model_server` in a child process, so the load generator
and the server do not share a GIL (they do share the machine's cores). Load generators:
sequential latency uses a keep-alive `http.client.HTTPConnection` (REST) and a blocking gRPC
stub on one channel; concurrent load uses one asyncio loop with an `aiohttp.ClientSession`
(REST, one keep-alive connection per client) and a `grpc.aio` stub on one channel (gRPC).
Request bodies are built once with `serving.client` before timing, so the numbers are the
server's and the transport's, not the cost of building JSON or protos in the client.

The results go to stdout and, with `--output`, between the result markers of a Markdown file
(text outside the markers, e.g. hand-written notes, is kept).
"""
import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime
import http.client
import logging
import os
import pathlib
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from modules import features  # noqa: E402
from modules.signatures import PROBABILITY_OUTPUT, SERVING_DEFAULT  # noqa: E402
from pipeline import configs  # noqa: E402
from serving import client  # noqa: E402
from serving.versions import version_numbers  # noqa: E402

logger = logging.getLogger("serving_benchmark")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO_ROOT / "data" / "span-1" / "data.csv"
BATCHING_CONFIG = REPO_ROOT / "serving" / "deploy" / "config" / "batching.config"
MODEL = configs.SERVING_MODEL_NAME
RESULTS_START = "<!-- results:start (written by benchmarks/serving_benchmark.py) -->"
RESULTS_END = "<!-- results:end -->"
CONCURRENCY = (1, 8, 32)
ROWS_PER_REQUEST = (1, 64)
SOAK_CLIENTS = 32
# Overhead targets on the 2-core development machine, in milliseconds.
REST_OVERHEAD_TARGET_MS = 1.5
GRPC_OVERHEAD_TARGET_MS = 1.0
REQUEST_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 180.0
WARMUP_SECONDS = 0.5
# Answers of the servers must equal the in-process call to this tolerance.
ANSWER_TOLERANCE = 1e-5
_SERVING_LINE = re.compile(r"serving: gRPC on (\S+):(\d+), REST on (\S+):(\d+)")


# ---------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass
class LatencyResult:
    """One sequential latency measurement."""

    path: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclasses.dataclass
class LoadResult:
    """One closed-loop load measurement (each client sends its next request on an answer)."""

    protocol: str
    batching: bool
    clients: int
    rows_per_request: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_second(self) -> float:
        """Predicted rows per second."""
        return self.requests_per_second * self.rows_per_request


def _percentiles(latencies_s: Sequence[float]) -> Tuple[float, float]:
    """(p50, p99) in milliseconds; NaN when nothing was measured."""
    if not latencies_s:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.asarray(latencies_s) * 1000.0, [50, 99])
    return float(p50), float(p99)


# ---------------------------------------------------------------------------------------------
# The machine


def machine_description() -> Dict[str, str]:
    """Core count, CPU model and load average, for the report."""
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError as error:
        logger.warning("cannot read /proc/cpuinfo: %s", error)
    return {
        "nproc": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "python": sys.version.split()[0],
    }


# ---------------------------------------------------------------------------------------------
# The model and the requests


def latest_version(model_dir: pathlib.Path) -> pathlib.Path:
    """Returns the newest numeric version folder under a model base path.

    Raises:
        FileNotFoundError: When `model_dir` holds no numeric version folder.
    """
    versions = [model_dir / str(number) for number in version_numbers(str(model_dir), complete_only=False)]
    if not versions:
        raise FileNotFoundError(
            f"{model_dir} holds no numeric version folder; pass the pipeline's serving_model dir "
            "(e.g. /tmp/bench_run/serving_model after `run_local.py --output-dir /tmp/bench_run`)"
        )
    return max(versions, key=lambda path: int(path.name))


def _typed(value: str, dtype: str) -> Any:
    if value == "":
        return None
    if dtype == "DT_FLOAT":
        return float(value)
    if dtype == "DT_INT64":
        return int(float(value))
    return value


def sample_trips(count: int, dtypes: Mapping[str, str]) -> List[Dict[str, Any]]:
    """Reads `count` trips of the shipped data, typed for the served signature (empty -> None)."""
    trips: List[Dict[str, Any]] = []
    with open(SAMPLE_CSV, newline="", encoding="utf-8") as data_file:
        for row in csv.DictReader(data_file):
            trips.append({key: _typed(row[key], dtypes[key]) for key in features.RAW_FEATURE_KEYS})
            if len(trips) == count:
                break
    return trips


class InProcessModel:
    """The SavedModel's serving_default and the server's session path, called in this process."""

    def __init__(self, version_dir: pathlib.Path) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import types_pb2

        from serving.devserver.servables import Servable

        self._tf = tf
        self._signature = tf.saved_model.load(str(version_dir)).signatures[SERVING_DEFAULT]
        self.dtypes: Dict[str, str] = {
            alias: types_pb2.DataType.Name(spec.dtype.as_datatype_enum)
            for alias, spec in self._signature.structured_input_signature[1].items()
        }
        self._servable = Servable(MODEL, int(version_dir.name), str(version_dir))

    def columns(self, trips: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
        """Column arrays for trips, missing values as the model's missing markers."""
        instances = client.trips_to_instances(trips, self.dtypes)
        numpy_dtypes = {"DT_FLOAT": np.float32, "DT_INT64": np.int64, "DT_STRING": object}
        arrays = {}
        for key, dtype in self.dtypes.items():
            values = [instance[key] for instance in instances]
            if dtype == "DT_STRING":
                values = [value.encode("utf-8") for value in values]
            arrays[key] = np.array(values, dtype=numpy_dtypes[dtype])
        return arrays

    def saved_model_call(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(big tipper) from `tf.saved_model.load(...).signatures["serving_default"]`."""
        tensors = {key: self._tf.constant(value) for key, value in columns.items()}
        return self._signature(**tensors)[PROBABILITY_OUTPUT].numpy()

    def session_call(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(big tipper) from the server's own session callable (no transport, no JSON)."""
        return self._servable.run(SERVING_DEFAULT, columns)[PROBABILITY_OUTPUT]


@dataclasses.dataclass
class Payloads:
    """Pre-built request bodies for 1 and 64 rows."""

    rest: Dict[int, bytes]
    grpc: Dict[int, Any]


def build_payloads(trips: Sequence[Mapping[str, Any]], dtypes: Mapping[str, str]) -> Payloads:
    """Builds the REST bodies and gRPC requests once, with `serving.client`."""
    rest: Dict[int, bytes] = {}
    grpc_requests: Dict[int, Any] = {}
    for rows in ROWS_PER_REQUEST:
        instances = client.trips_to_instances(trips[:rows], dtypes)
        rest[rows] = client.build_predict_request(instances).encode("utf-8")
        grpc_requests[rows] = client.build_predict_grpc_request(MODEL, instances, dtypes)
    return Payloads(rest=rest, grpc=grpc_requests)


# ---------------------------------------------------------------------------------------------
# The server


class ServerProcess:
    """`python -m serving.model_server` in a child process on free local ports."""

    def __init__(self, model_dir: pathlib.Path, batching: bool, log_dir: pathlib.Path) -> None:
        self.batching = batching
        self._command = [
            sys.executable, "-m", "serving.model_server",
            "--port=0", "--rest_api_port=0", "--bind_address=127.0.0.1",
            f"--model_name={MODEL}", f"--model_base_path={model_dir}",
            "--file_system_poll_wait_seconds=0",
        ]
        if batching:
            self._command += ["--enable_batching", f"--batching_parameters_file={BATCHING_CONFIG}"]
        self._log_path = log_dir / ("server_batching.log" if batching else "server.log")
        self._process: Optional[subprocess.Popen] = None
        self.rest_port = 0
        self.grpc_port = 0

    def __enter__(self) -> "ServerProcess":
        logger.info("starting: %s", " ".join(shlex.quote(part) for part in self._command))
        with open(self._log_path, "w", encoding="utf-8") as log_file:
            self._process = subprocess.Popen(
                self._command, stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=REPO_ROOT
            )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def read_stdout() -> None:
            assert self._process is not None and self._process.stdout is not None
            for line in self._process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read_stdout, name="server-stdout", daemon=True).start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                break
            match = _SERVING_LINE.search(line)
            if match:
                self.grpc_port, self.rest_port = int(match.group(2)), int(match.group(4))
                return self
        self.__exit__()
        raise RuntimeError(f"the model server did not start; see {self._log_path}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            logger.warning("the model server did not stop within 60 s; killing it")
            self._process.kill()
            self._process.wait(timeout=10)

    @property
    def rest_path(self) -> str:
        """The predict path of the taxi model."""
        return f"/v1/models/{MODEL}:predict"

    @property
    def grpc_target(self) -> str:
        """`host:port` of the gRPC API."""
        return f"127.0.0.1:{self.grpc_port}"


# ---------------------------------------------------------------------------------------------
# Sequential latency


# Sequential latencies are measured in this many interleaved rounds, so a burst of load from
# other processes on the machine hits every path alike instead of one of them.
LATENCY_ROUNDS = 5


def _time_calls(call: Callable[[], bool], seconds: float, warmup: bool) -> Tuple[List[float], int]:
    """Calls `call` repeatedly for `seconds` (after an optional warm-up); returns (latencies, errors)."""
    if warmup:
        warmup_end = time.monotonic() + WARMUP_SECONDS
        while time.monotonic() < warmup_end:
            call()
    latencies: List[float] = []
    errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        ok = call()
        latencies.append(time.perf_counter() - started)
        errors += 0 if ok else 1
    return latencies, errors


def interleaved_latencies(calls: Mapping[str, Callable[[], bool]], seconds: float) -> List[LatencyResult]:
    """Single-row latency of each named path, measured round-robin in LATENCY_ROUNDS slices
    that add up to `seconds` per path."""
    latencies: Dict[str, List[float]] = {path: [] for path in calls}
    errors = dict.fromkeys(calls, 0)
    for round_index in range(LATENCY_ROUNDS):
        for path, call in calls.items():
            measured, failed = _time_calls(call, seconds / LATENCY_ROUNDS, warmup=round_index == 0)
            latencies[path].extend(measured)
            errors[path] += failed
    results = []
    for path in calls:
        p50, p99 = _percentiles(latencies[path])
        logger.info("%-28s p50 %.3f ms  p99 %.3f ms  (%d calls)", path, p50, p99, len(latencies[path]))
        results.append(
            LatencyResult(path=path, requests=len(latencies[path]), errors=errors[path], p50_ms=p50, p99_ms=p99)
        )
    return results


def in_process_calls(model: InProcessModel, columns: Mapping[str, np.ndarray]) -> Dict[str, Callable[[], bool]]:
    """The two in-process single-row paths."""
    def saved_model() -> bool:
        model.saved_model_call(columns)
        return True

    def session() -> bool:
        model.session_call(columns)
        return True

    return {"in-process SavedModel call": saved_model, "in-process server session": session}


@contextlib.contextmanager
def rest_call(server: ServerProcess, body: bytes) -> Iterator[Callable[[], bool]]:
    """A single-request REST call over one keep-alive HTTP connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=REQUEST_TIMEOUT_S)
    headers = {"Content-Type": "application/json"}

    def call() -> bool:
        try:
            connection.request("POST", server.rest_path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException) as error:
            logger.warning("REST request failed: %s", error)
            connection.close()
            return False

    try:
        yield call
    finally:
        connection.close()


@contextlib.contextmanager
def grpc_call(server: ServerProcess, request: Any) -> Iterator[Callable[[], bool]]:
    """A single-request gRPC call with a blocking stub on one channel."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def call() -> bool:
            try:
                stub.Predict(request, timeout=REQUEST_TIMEOUT_S)
                return True
            except grpc.RpcError as error:
                logger.warning("gRPC request failed: %s", error)
                return False

        yield call


# ---------------------------------------------------------------------------------------------
# Concurrent load


async def _rest_load(server: ServerProcess, body: bytes, clients: int, seconds: float) -> Tuple[List[float], int, float]:
    import aiohttp

    url = f"http://127.0.0.1:{server.rest_port}{server.rest_path}"
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=clients)
    latencies: List[float] = []
    errors = 0

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one_client(until: float, record: bool) -> None:
            nonlocal errors
            while time.monotonic() < until:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                        if not ok:
                            logger.warning("REST answered %d", response.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    logger.warning("REST request failed: %r", error)
                    ok = False
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += 0 if ok else 1

        await asyncio.gather(*(one_client(time.monotonic() + WARMUP_SECONDS, False) for _ in range(clients)))
        started = time.monotonic()
        await asyncio.gather(*(one_client(started + seconds, True) for _ in range(clients)))
        elapsed = time.monotonic() - started
    return latencies, errors, elapsed


async def _grpc_load(server: ServerProcess, request: Any, clients: int, seconds: float) -> Tuple[List[float], int, float]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    latencies: List[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def one_client(until: float, record: bool) -> None:
            nonlocal errors
            while time.monotonic() < until:
                started = time.perf_counter()
                try:
                    await stub.Predict(request, timeout=REQUEST_TIMEOUT_S)
                    ok = True
                except grpc.aio.AioRpcError as error:
                    logger.warning("gRPC request failed: %s %s", error.code(), error.details())
                    ok = False
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += 0 if ok else 1

        await asyncio.gather(*(one_client(time.monotonic() + WARMUP_SECONDS, False) for _ in range(clients)))
        started = time.monotonic()
        await asyncio.gather(*(one_client(started + seconds, True) for _ in range(clients)))
        elapsed = time.monotonic() - started
    return latencies, errors, elapsed


def run_load(
    server: ServerProcess, payloads: Payloads, protocol: str, clients: int, rows: int, seconds: float
) -> LoadResult:
    """Closed-loop load: `clients` concurrent clients asking for `seconds`."""
    if protocol == "REST":
        latencies, errors, elapsed = asyncio.run(_rest_load(server, payloads.rest[rows], clients, seconds))
    else:
        latencies, errors, elapsed = asyncio.run(_grpc_load(server, payloads.grpc[rows], clients, seconds))
    p50, p99 = _percentiles(latencies)
    result = LoadResult(
        protocol=protocol, batching=server.batching, clients=clients, rows_per_request=rows,
        seconds=elapsed, requests=len(latencies) - errors, errors=errors, p50_ms=p50, p99_ms=p99,
    )
    logger.info(
        "%-4s batching=%-5s clients=%2d rows=%2d: %7.1f req/s %8.1f rows/s p50 %.2f ms p99 %.2f ms errors %d",
        protocol, server.batching, clients, rows, result.requests_per_second, result.rows_per_second,
        p50, p99, errors,
    )
    return result


# ---------------------------------------------------------------------------------------------
# Checking the answers


def check_answers(server: ServerProcess, trips: Sequence[Mapping[str, Any]], dtypes: Mapping[str, str], expected: np.ndarray) -> None:
    """Raises AssertionError when REST or gRPC answers differ from the in-process call."""
    rest = client.predict_trips_rest(f"127.0.0.1:{server.rest_port}", MODEL, trips, dtypes=dtypes)
    grpc_answers = client.predict_trips_grpc(server.grpc_target, MODEL, trips, dtypes=dtypes)
    for name, answers in (("REST", rest), ("gRPC", grpc_answers)):
        difference = float(np.max(np.abs(np.asarray(answers) - expected)))
        if difference > ANSWER_TOLERANCE:
            raise AssertionError(f"{name} answers differ from the in-process call by {difference}")


# ---------------------------------------------------------------------------------------------
# Report


@dataclasses.dataclass
class Report:
    """Everything one run measured."""

    command: str
    started: str
    machine: Dict[str, str]
    load_average_end: str
    duration_s: float
    soak_s: float
    model_version: str
    latencies: List[LatencyResult]
    batching_latencies: List[LatencyResult]
    loads: List[LoadResult]
    soaks: List[LoadResult]

    def latency(self, path: str) -> LatencyResult:
        """The latency result of a path by name."""
        return next(result for result in self.latencies if result.path == path)

    def overheads(self) -> List[Tuple[str, float, float, float, bool]]:
        """(API, p50 overhead over the SavedModel call ms, over the server's session path ms,
        target ms, target met) for REST and gRPC."""
        base = self.latency("in-process SavedModel call").p50_ms
        session = self.latency("in-process server session").p50_ms
        rows = []
        for name, path, target in (
            ("REST", "REST (server)", REST_OVERHEAD_TARGET_MS),
            ("gRPC", "gRPC (server)", GRPC_OVERHEAD_TARGET_MS),
        ):
            p50 = self.latency(path).p50_ms
            rows.append((name, p50 - base, p50 - session, target, p50 - base <= target))
        return rows


def _latency_table(results: Sequence[LatencyResult], base_ms: float) -> List[str]:
    lines = [
        "| path | calls | p50 ms | p99 ms | p50 - in-process SavedModel p50, ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.path} | {result.requests} | {result.p50_ms:.3f} | {result.p99_ms:.3f} | "
            f"{result.p50_ms - base_ms:+.3f} |"
        )
    return lines


def _load_table(results: Sequence[LoadResult]) -> List[str]:
    lines = [
        "| API | server batching | clients | rows/request | req/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.protocol} | {'on' if result.batching else 'off'} | {result.clients} | "
            f"{result.rows_per_request} | {result.requests_per_second:.0f} | {result.rows_per_second:.0f} | "
            f"{result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.errors} |"
        )
    return lines


def render_results(report: Report) -> str:
    """The Markdown results section."""
    base = report.latency("in-process SavedModel call").p50_ms
    machine = report.machine
    lines = [
        RESULTS_START,
        "",
        f"Run {report.started}: `{report.command}`",
        "",
        f"- Machine: {machine['nproc']} cores, {machine['cpu_model']}, Python {machine['python']}.",
        f"- Load average (1, 5, 15 min) at start: {machine['load_average']}; at end: "
        f"{report.load_average_end}. Other processes were running on this machine.",
        f"- Model: `{MODEL}` version {report.model_version}; {report.duration_s:g} s per "
        f"measurement after a {WARMUP_SECONDS:g} s warm-up; soak {report.soak_s:g} s per API.",
        "",
        "### Single-row latency (one client, one request at a time)",
        "",
        *_latency_table(report.latencies, base),
        "",
        "| API | p50 overhead over the in-process SavedModel call | target | met | "
        "p50 overhead over the server's session path |",
        "|---|---:|---:|---|---:|",
    ]
    for name, overhead, over_session, target, met in report.overheads():
        lines.append(
            f"| {name} | {overhead:.3f} ms | <= {target:g} ms | {'yes' if met else 'NO'} | "
            f"{over_session:.3f} ms |"
        )
    if report.batching_latencies:
        lines += [
            "",
            "With server-side batching on (a lone request waits up to `batch_timeout_micros` for company):",
            "",
            *_latency_table(report.batching_latencies, base),
        ]
    lines += [
        "",
        "### Throughput (closed loop: each client sends its next request when answered)",
        "",
        *_load_table(report.loads),
        "",
        f"### Soak: {SOAK_CLIENTS} clients, 1 row per request, batching off",
        "",
        *_load_table(report.soaks),
        "",
        f"Failed requests in the soak: {sum(result.errors for result in report.soaks)}.",
        "",
        RESULTS_END,
    ]
    return "\n".join(lines)


_DOC_HEADER = """# Local model server benchmark

Numbers for `serving/` (the project's TensorFlow-Serving-compatible server) on the taxi model
that `run_local.py` pushes. Produced by `benchmarks/serving_benchmark.py`; its docstring says
what is measured and with which load generators.
"""


def write_markdown(path: pathlib.Path, results: str) -> None:
    """Replaces the results section of `path` (creating the file when needed)."""
    text = path.read_text(encoding="utf-8") if path.exists() else _DOC_HEADER + "\n" + RESULTS_START + "\n" + RESULTS_END + "\n"
    if RESULTS_START in text and RESULTS_END in text:
        head, rest = text.split(RESULTS_START, 1)
        _, tail = rest.split(RESULTS_END, 1)
        text = head + results + tail
    else:
        text = text.rstrip("\n") + "\n\n" + results + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=pathlib.Path, required=True,
                        help="Model base path holding numeric version folders (the pipeline's serving_model).")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="Seconds per latency or throughput measurement. Default %(default)s.")
    parser.add_argument("--soak-seconds", type=float, default=60.0,
                        help="Seconds of the 32-client soak, per API; 0 skips it. Default %(default)s.")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="Markdown file whose results section is (re)written, e.g. docs/serving_benchmark.md.")
    parser.add_argument("--skip-batching", action="store_true",
                        help="Measure without server-side batching only.")
    return parser.parse_args(argv)


def _iterate_loads(server: ServerProcess, payloads: Payloads, seconds: float) -> Iterator[LoadResult]:
    for protocol in ("REST", "gRPC"):
        for rows in ROWS_PER_REQUEST:
            for clients in CONCURRENCY:
                yield run_load(server, payloads, protocol, clients, rows, seconds)


def run(args: argparse.Namespace) -> Report:
    """Runs every measurement and returns the report."""
    machine = machine_description()
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    logger.info("machine: %s", machine)
    model_dir = args.model_dir.resolve()
    version_dir = latest_version(model_dir)
    model = InProcessModel(version_dir)
    dtypes = model.dtypes
    trips = sample_trips(max(ROWS_PER_REQUEST), dtypes)
    payloads = build_payloads(trips, dtypes)
    one_row = model.columns(trips[:1])
    expected = model.saved_model_call(model.columns(trips))
    loads: List[LoadResult] = []
    soaks: List[LoadResult] = []
    batching_latencies: List[LatencyResult] = []
    with tempfile.TemporaryDirectory(prefix="serving_benchmark_") as log_dir:
        with ServerProcess(model_dir, batching=False, log_dir=pathlib.Path(log_dir)) as server:
            check_answers(server, trips, dtypes, expected)
            with rest_call(server, payloads.rest[1]) as rest, grpc_call(server, payloads.grpc[1]) as grpc_predict:
                calls = in_process_calls(model, one_row)
                calls.update({"REST (server)": rest, "gRPC (server)": grpc_predict})
                latencies = interleaved_latencies(calls, args.duration)
            loads.extend(_iterate_loads(server, payloads, args.duration))
            if args.soak_seconds > 0:
                for protocol in ("REST", "gRPC"):
                    soaks.append(run_load(server, payloads, protocol, SOAK_CLIENTS, 1, args.soak_seconds))
        if not args.skip_batching:
            with ServerProcess(model_dir, batching=True, log_dir=pathlib.Path(log_dir)) as server:
                check_answers(server, trips, dtypes, expected)
                with rest_call(server, payloads.rest[1]) as rest, grpc_call(server, payloads.grpc[1]) as grpc_predict:
                    batching_latencies = interleaved_latencies(
                        {"REST (server, batching)": rest, "gRPC (server, batching)": grpc_predict}, args.duration
                    )
                loads.extend(_iterate_loads(server, payloads, args.duration))
    return Report(
        command=" ".join(shlex.quote(part) for part in [".venv/bin/python", "benchmarks/serving_benchmark.py", *sys.argv[1:]]),
        started=started,
        machine=machine,
        load_average_end=" ".join(f"{value:.2f}" for value in os.getloadavg()),
        duration_s=args.duration,
        soak_s=args.soak_seconds,
        model_version=version_dir.name,
        latencies=latencies,
        batching_latencies=batching_latencies,
        loads=loads,
        soaks=soaks,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the benchmark; returns 1 when the soak saw failed requests, else 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    args = parse_args(argv)
    report = run(args)
    results = render_results(report)
    print(results)
    if args.output is not None:
        write_markdown(args.output, results)
        logger.info("wrote %s", args.output)
    return 1 if any(result.errors for result in report.soaks) else 0


if __name__ == "__main__":
    sys.exit(main())
