"""`python -m serving.logging_proxy`: request logging in front of TensorFlow Serving.

The open-source tensorflow_model_server has no request logger that writes anywhere a skew check
can read, so this small proxy sits in front of it (a sidecar in the same pod, a service in
docker-compose) and clients talk to the proxy. It forwards TensorFlow Serving's REST API
(predict, classify, regress, status, metadata, the Prometheus page: any path) and its gRPC API
(every method, as raw bytes) unchanged, with the upstream's status codes, error bodies and
gRPC details, and writes a sample of the successful Predict requests on one signature as typed
tf.Examples (`serving.client.request_log`), which `python -m pipeline skew` reads.

    python -m serving.logging_proxy --upstream_rest=localhost:9501 --upstream_grpc=localhost:9500 \\
        --rest_port=8501 --port=8500 --request_log_dir=/srv/request_log --sampling_rate=0.05
    python -m pipeline skew --request-log /srv/request_log --output-dir outputs

Values are typed by the model's signature (its metadata, asked of the upstream once per model,
version or label and signature, and again after --metadata_ttl_s), so `"fare": 7` and
`"fare": 7.25` are both floats in the log. Logging never slows or fails a forwarded request: the
sample is parsed and written on a background thread, and what could not be logged is counted
on the proxy's own Prometheus page (--metrics_path) and warned about in its log.

Once serving it prints one line, e.g.
`logging proxy: gRPC on 0.0.0.0:8500, REST on 0.0.0.0:8501 -> upstream localhost:9500, localhost:9501`,
and runs until SIGTERM or SIGINT, then stops accepting, finishes in-flight requests, completes
the open log file and exits 0, within `ProxyOptions.longest_stop_seconds()` (25 s by default;
docker-compose's stop_grace_period and the pod's terminationGracePeriodSeconds allow more).
"""
from serving.console import import_tensorflow

# Before anything below imports TensorFlow: hide its import-time console noise, keep errors.
import_tensorflow()

import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from aiohttp import web  # noqa: E402

from serving import client  # noqa: E402
from serving.client.request_log import (  # noqa: E402
    DEFAULT_MAX_FILE_AGE_S,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_FILES,
    DEFAULT_QUEUE_SIZE,
    RequestLog,
    typed_rows,
)
from serving.devserver.errors import StatusError  # noqa: E402
from serving.devserver.loop_thread import LoopThread  # noqa: E402
from serving.devserver.request_log import rows_from_request  # noqa: E402
from serving.devserver.rest_api import DEFAULT_MAX_REQUEST_BYTES, JSON_CONTENT_TYPE, parse_route  # noqa: E402

logger = logging.getLogger(__name__)

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
DEFAULT_METRICS_PATH = "/monitoring/logging_proxy/metrics"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_METADATA_TTL_S = 60.0
_STARTUP_TIMEOUT_S = 60.0
# Longest time stop() spends writing queued samples and completing the open log file.
LOG_CLOSE_TIMEOUT_S = 10.0
# stop()'s waits past the grace period: the REST loop's thread, the gRPC handlers' threads.
_STOP_SLACK_S = 5.0
# Headers that describe one hop, or that aiohttp sets again for the decoded body it forwards.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length", "content-encoding"}
)
# gRPC metadata the channel sets itself.
_GRPC_OWN_METADATA = frozenset({"grpc-timeout", "user-agent", "content-type", "te", "grpc-accept-encoding", "grpc-encoding"})


@dataclasses.dataclass
class ProxyOptions:
    """How to run a `LoggingProxy`.

    Attributes:
        upstream_rest: `host:port` of TensorFlow Serving's REST API.
        upstream_grpc: `host:port` of its gRPC API; None serves no gRPC.
        request_log_dir: Where the sampled requests go.
        sampling_rate: Share of successful Predict requests logged, in (0, 1].
        rest_port: The proxy's REST port; 0 picks a free one.
        port: The proxy's gRPC port; 0 picks a free one.
        host: Address both listen on.
        model_name: Log only this model's requests; None logs every model.
        signature: Log only requests on this signature (the one taking the raw features).
        timeout_s: Longest wait for the upstream's answer (a gRPC caller's shorter deadline wins).
        metadata_ttl_s: How long a model's signature types are reused before being asked again.
        metrics_path: Path of the proxy's own Prometheus page on its REST port.
        max_request_bytes: Largest REST body forwarded (413 beyond), as TF Serving's limit.
        max_file_bytes: A log file is completed at this size.
        max_file_age_s: A log file is completed at this age.
        max_files: Complete log files kept (oldest deleted first); 0 keeps all.
        queue_size: Sampled requests waiting to be written; more are dropped and counted.
        shutdown_grace_seconds: How long `stop()` waits for in-flight requests (REST and gRPC
            at once).
    """

    upstream_rest: str
    request_log_dir: str
    sampling_rate: float
    upstream_grpc: Optional[str] = None
    rest_port: int = 0
    port: int = 0
    host: str = "127.0.0.1"
    model_name: Optional[str] = None
    signature: str = client.SERVER_DEFAULT_SIGNATURE
    timeout_s: float = DEFAULT_TIMEOUT_S
    metadata_ttl_s: float = DEFAULT_METADATA_TTL_S
    metrics_path: str = DEFAULT_METRICS_PATH
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_file_age_s: float = DEFAULT_MAX_FILE_AGE_S
    max_files: int = DEFAULT_MAX_FILES
    queue_size: int = DEFAULT_QUEUE_SIZE
    shutdown_grace_seconds: float = 10.0

    def longest_stop_seconds(self) -> float:
        """The longest `LoggingProxy.stop()` takes; a container's stop grace period must exceed it.

        In-flight requests get the grace period, then queued samples and the open log file get
        `LOG_CLOSE_TIMEOUT_S`; a kill before the end leaves the open file hidden until the next
        proxy on the folder starts (see `serving.client.request_log`).
        """
        return self.shutdown_grace_seconds + LOG_CLOSE_TIMEOUT_S + _STOP_SLACK_S


class SignatureTypes:
    """The input dtypes of a signature, from the upstream's metadata, cached for `ttl_s`.

    Asked on the log's writer thread only, so a slow metadata answer never delays a request.
    """

    def __init__(self, upstream_rest: str, timeout_s: float, ttl_s: float) -> None:
        self._upstream_rest = upstream_rest
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[str, Optional[int], Optional[str], str], Tuple[float, Dict[str, str]]] = {}

    def dtypes(self, model: str, version: Optional[int], label: Optional[str], signature: str) -> Dict[str, str]:
        """Returns input name -> dtype name of `signature` of the model version asked.

        Raises:
            client.ServingError: when the upstream does not answer the metadata request.
            ValueError: when the model has no such signature.
        """
        key = (model, version, label, signature)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl_s:
            return cached[1]
        metadata = client.model_metadata_rest(self._upstream_rest, model, version, label, self._timeout_s)
        dtypes = client.signature_inputs(metadata, signature)
        with self._lock:
            self._cache[key] = (time.monotonic(), dtypes)
        return dtypes


def _grpc_request_rows(request_bytes: bytes) -> Tuple[Any, List[Dict[str, Any]]]:
    """Returns (model spec, rows) of a serialized PredictRequest: one {input: value} per row."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest.FromString(request_bytes)
    columns = {}
    for name, tensor in request.inputs.items():
        array = tf.make_ndarray(tensor)
        # A [batch] or [batch, 1] input holds one value per row; anything wider is not a raw
        # feature column and is refused by typed_value.
        columns[name] = array.reshape(array.shape[0], -1).tolist() if array.ndim else [array.item()]
    size = min((len(column) for column in columns.values()), default=0)
    return request.model_spec, [{name: column[index] for name, column in columns.items()} for index in range(size)]


class _ProxyMetrics:
    """The proxy's own counters, as Prometheus text (the request log's counters are read live)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.upstream_failures: Dict[str, int] = {"REST": 0, "GRPC": 0}

    def upstream_failed(self, entrypoint: str) -> None:
        with self._lock:
            self.upstream_failures[entrypoint] += 1

    def exposition(self, request_log: RequestLog) -> str:
        stats = request_log.stats()
        lines = []
        for name, help_text, value in [
            ("logging_proxy_sampled_requests_total", "Predict requests sampled for the request log.", stats.sampled_requests),
            ("logging_proxy_logged_rows_total", "Rows written to the request log.", stats.logged_rows),
            ("logging_proxy_dropped_requests_total", "Sampled requests dropped because the log's queue was full.", stats.dropped_requests),
            ("logging_proxy_failed_requests_total", "Sampled requests that could not be typed or written.", stats.failed_requests),
            ("logging_proxy_deleted_files_total", "Complete log files deleted to keep --max_files.", stats.deleted_files),
            ("logging_proxy_recovered_files_total", "Log files a stopped writer left open, completed by this proxy.", stats.recovered_files),
        ]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        name = "logging_proxy_upstream_failures_total"
        lines += [f"# HELP {name} Requests the upstream did not answer (unreachable or too slow).", f"# TYPE {name} counter"]
        with self._lock:
            lines += [f'{name}{{entrypoint="{entrypoint}"}} {count}' for entrypoint, count in sorted(self.upstream_failures.items())]
        return "\n".join(lines) + "\n"


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")


class LoggingProxy:
    """Forwards TensorFlow Serving's REST and gRPC APIs to an upstream and logs a sample.

    Args:
        options: Where to listen, where the upstream is, and how to log.
        request_log: The log to write to; default one built from `options`.
    """

    def __init__(self, options: ProxyOptions, request_log: Optional[RequestLog] = None) -> None:
        if not options.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {options.timeout_s}")
        self.options = options
        self.request_log = request_log or RequestLog(
            options.request_log_dir,
            options.sampling_rate,
            max_file_bytes=options.max_file_bytes,
            max_file_age_s=options.max_file_age_s,
            max_files=options.max_files,
            queue_size=options.queue_size,
        )
        self.signatures = SignatureTypes(options.upstream_rest, options.timeout_s, options.metadata_ttl_s)
        self.metrics = _ProxyMetrics()
        upstream = options.upstream_rest
        self._upstream_url = (upstream if "://" in upstream else f"http://{upstream}").rstrip("/")
        self._rest_loop = LoopThread("proxy-rest")
        self._runner: Optional[web.AppRunner] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._grpc_server: Optional[grpc.Server] = None
        self._grpc_channel: Optional[grpc.Channel] = None
        self._grpc_executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="proxy-grpc")
        self.rest_port: Optional[int] = None
        self.grpc_port: Optional[int] = None
        self._stopped = threading.Event()

    # -- logging ------------------------------------------------------------------------------

    def _wanted(self, model: str) -> bool:
        return self.options.model_name is None or model == self.options.model_name

    def _rest_rows(self, route: Any, body: bytes) -> List[Dict[str, Any]]:
        """The typed rows of a REST predict body (runs on the log's writer thread)."""
        document = json.loads(body)
        signature = (document.get("signature_name") if isinstance(document, dict) else None) or client.SERVER_DEFAULT_SIGNATURE
        if signature != self.options.signature:
            return []
        dtypes = self.signatures.dtypes(route.name, route.version, route.label, signature)
        return typed_rows(rows_from_request(document), dtypes)

    def _grpc_rows(self, request_bytes: bytes) -> List[Dict[str, Any]]:
        """The typed rows of a serialized gRPC PredictRequest (runs on the writer thread)."""
        spec, rows = _grpc_request_rows(request_bytes)
        signature = spec.signature_name or client.SERVER_DEFAULT_SIGNATURE
        if signature != self.options.signature or not self._wanted(spec.name):
            return []
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        label = spec.version_label if choice == "version_label" else None
        return typed_rows(rows, self.signatures.dtypes(spec.name, version, label, signature))

    # -- REST ---------------------------------------------------------------------------------

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if request.method == "GET" and raw_path == self.options.metrics_path:
            return web.Response(text=self.metrics.exposition(self.request_log), content_type="text/plain", charset="utf-8")
        try:
            body = await asyncio.wait_for(request.read(), self.options.timeout_s)
        except asyncio.TimeoutError:
            return web.Response(body=_error_body(f"Request body not received within {self.options.timeout_s:.0f} s"), status=408, content_type=JSON_CONTENT_TYPE)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(
                body=_error_body(f"Request body is larger than the proxy's limit of {self.options.max_request_bytes} bytes"),
                status=413, content_type=JSON_CONTENT_TYPE,
            )
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP_HEADERS}
        url = self._upstream_url + str(request.rel_url)
        assert self._session is not None
        try:
            async with self._session.request(request.method, url, data=body, headers=headers, allow_redirects=False) as answer:
                answer_body = await answer.read()
                status = answer.status
                answer_headers = {name: value for name, value in answer.headers.items() if name.lower() not in _HOP_HEADERS}
        except asyncio.TimeoutError:
            self.metrics.upstream_failed("REST")
            return web.Response(
                body=_error_body(f"logging proxy: upstream {self.options.upstream_rest} did not answer within {self.options.timeout_s:.0f} s"),
                status=504, content_type=JSON_CONTENT_TYPE,
            )
        except aiohttp.ClientError as error:
            self.metrics.upstream_failed("REST")
            return web.Response(
                body=_error_body(f"logging proxy: upstream {self.options.upstream_rest} unreachable: {error}"),
                status=503, content_type=JSON_CONTENT_TYPE,
            )
        if status == 200 and request.method == "POST":
            self._maybe_log_rest(request.method, raw_path, body)
        return web.Response(body=answer_body, status=status, headers=answer_headers)

    def _maybe_log_rest(self, method: str, raw_path: str, body: bytes) -> None:
        try:
            route = parse_route(method, raw_path)
        except StatusError:
            return  # not a TensorFlow Serving route; the upstream answered it anyway
        if route.action == "predict" and self._wanted(route.name) and self.request_log.sample():
            self.request_log.submit(lambda: self._rest_rows(route, body))

    # -- gRPC ---------------------------------------------------------------------------------

    def _forward_grpc(self, method: str, request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
        assert self._grpc_channel is not None
        remaining = context.time_remaining()
        timeout = self.options.timeout_s if remaining is None else min(remaining, self.options.timeout_s)
        metadata = [(key, value) for key, value in context.invocation_metadata() if key not in _GRPC_OWN_METADATA and not key.startswith(":")]
        call = self._grpc_channel.unary_unary(method)  # no (de)serializers: bytes in, bytes out
        try:
            answer, outcome = call.with_call(request_bytes, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.metrics.upstream_failed("GRPC")
            if hasattr(error, "trailing_metadata") and error.trailing_metadata():
                context.set_trailing_metadata(error.trailing_metadata())
            context.abort(code, error.details() if hasattr(error, "details") else str(error))
        if outcome.trailing_metadata():
            context.set_trailing_metadata(outcome.trailing_metadata())
        if method == PREDICT_METHOD and self.request_log.sample():
            self.request_log.submit(lambda: self._grpc_rows(request_bytes))
        return answer

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "LoggingProxy":
        """Starts the gRPC (when an upstream is set) and REST listeners; returns once both accept.

        Raises:
            RuntimeError: when a port cannot be bound.
        """
        try:
            if self.options.upstream_grpc:
                self._start_grpc()
            self._start_rest()
        except BaseException:
            self.stop()
            raise
        logger.info("logging proxy: REST on %s:%s, gRPC on %s:%s", self.options.host, self.rest_port, self.options.host, self.grpc_port)
        return self

    def _start_grpc(self) -> None:
        limits = [("grpc.max_send_message_length", client.MAX_GRPC_MESSAGE_BYTES), ("grpc.max_receive_message_length", client.MAX_GRPC_MESSAGE_BYTES)]
        self._grpc_channel = grpc.insecure_channel(self.options.upstream_grpc, options=limits)
        proxy = self

        class Forwarder(grpc.GenericRpcHandler):
            """Every method of the upstream, unary-unary as all of TensorFlow Serving's are."""

            def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                method = handler_call_details.method
                return grpc.unary_unary_rpc_method_handler(lambda request, context: proxy._forward_grpc(method, request, context))

        server = grpc.server(self._grpc_executor, handlers=[Forwarder()], options=limits)
        address = f"{self.options.host}:{self.options.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise RuntimeError(f"cannot bind gRPC to {address}: {error}") from error
        server.start()
        self._grpc_server = server
        self.grpc_port = port

    def _start_rest(self) -> None:
        async def start_site() -> None:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.timeout_s), auto_decompress=True)
            app = web.Application(client_max_size=self.options.max_request_bytes)
            app.router.add_route("*", "/{tail:.*}", self._handle_rest)
            runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=self.options.shutdown_grace_seconds)
            try:
                await runner.setup()
                await web.TCPSite(runner, self.options.host, self.options.rest_port).start()
            except BaseException:
                # The loop closes after a failed start: free what it holds first.
                await runner.cleanup()
                await session.close()
                raise
            self._session, self._runner = session, runner
            self.rest_port = runner.addresses[0][1]

        try:
            self._rest_loop.start(start_site, _STARTUP_TIMEOUT_S)
        except TimeoutError as error:
            raise RuntimeError("the proxy's REST listener did not start in time") from error
        except Exception as error:
            raise RuntimeError(f"cannot bind REST to {self.options.host}:{self.options.rest_port}: {error}") from error

    async def _close_rest(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()  # stops accepting, then waits up to the grace for handlers
        await self._session.close()

    def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish, then completes the open log file.

        Takes at most `options.longest_stop_seconds()`: REST and gRPC share one grace period.
        """
        if self._stopped.is_set():
            return
        grace = self.options.shutdown_grace_seconds
        grace_ends = time.monotonic() + grace
        grpc_stopped = self._grpc_server.stop(grace) if self._grpc_server is not None else None
        if self._rest_loop.running:
            try:
                self._rest_loop.call(self._close_rest(), timeout_s=grace + 1.0)
            except concurrent.futures.TimeoutError:
                logger.warning("the proxy's REST listener did not drain within %.1f s", grace)
            if not self._rest_loop.stop(timeout_s=2.0):
                logger.warning("the proxy's REST loop did not stop within 2 s")
        if grpc_stopped is not None:
            grpc_stopped.wait(max(0.0, grace_ends - time.monotonic()) + 1.0)
        if self._grpc_channel is not None:
            self._grpc_channel.close()  # cancels forwarded calls still waiting on the upstream
        self._grpc_executor.shutdown(wait=True)
        self.request_log.close(LOG_CLOSE_TIMEOUT_S)
        self._stopped.set()
        logger.info("logging proxy stopped: %s", self.request_log.stats())

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until `stop()` has finished; returns False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> "LoggingProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_EXAMPLES = """\
examples:
  # next to TensorFlow Serving moved to ports 9500/9501; clients keep using 8500/8501
  python -m serving.logging_proxy --upstream_rest=localhost:9501 --upstream_grpc=localhost:9500 \\
      --port=8500 --rest_port=8501 --request_log_dir=/srv/request_log --sampling_rate=0.05
  # only the taxi model, smaller files, keep 20 of them
  python -m serving.logging_proxy --upstream_rest=serving:8501 --upstream_grpc=serving:8500 \\
      --model_name=big_tipper --request_log_dir=/srv/request_log --sampling_rate=0.1 \\
      --max_file_bytes=16777216 --max_files=20
  # then score the logged traffic against the training statistics
  python -m pipeline skew --request-log /srv/request_log --output-dir outputs

The proxy's own counters (sampled, logged, dropped, failed, upstream failures) are Prometheus
text at --metrics_path on the REST port; every other path goes to the upstream.
"""


def parse_flags(argv: Optional[Sequence[str]] = None) -> ProxyOptions:
    """Parses the command line into `ProxyOptions` (`--flag=value` or `--flag value`)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m serving.logging_proxy",
        description="Forward TensorFlow Serving's REST and gRPC APIs and log a sample of the predict requests for the skew check.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = ProxyOptions(upstream_rest="", request_log_dir="", sampling_rate=1.0)
    parser.add_argument("--upstream_rest", required=True, help="host:port of TensorFlow Serving's REST API")
    parser.add_argument("--upstream_grpc", help="host:port of its gRPC API (default: no gRPC listener)")
    parser.add_argument("--request_log_dir", required=True, help="folder for the sampled requests (python -m pipeline skew --request-log)")
    parser.add_argument("--sampling_rate", type=float, required=True, help="share of successful predict requests logged, in (0, 1]")
    parser.add_argument("--port", type=int, default=8500, help="the proxy's gRPC port (default: %(default)s; 0 picks one)")
    parser.add_argument("--rest_port", type=int, default=8501, help="the proxy's REST port (default: %(default)s; 0 picks one)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--model_name", help="log only this model's requests (default: every model)")
    parser.add_argument("--signature", default=defaults.signature, help="log only requests on this signature (default: %(default)s)")
    parser.add_argument("--timeout_s", type=float, default=defaults.timeout_s, help="longest wait for the upstream (default: %(default)s)")
    parser.add_argument("--metadata_ttl_s", type=float, default=defaults.metadata_ttl_s, help="seconds a signature's types are reused (default: %(default)s)")
    parser.add_argument("--metrics_path", default=defaults.metrics_path, help="the proxy's Prometheus page (default: %(default)s)")
    parser.add_argument("--max_request_bytes", type=int, default=defaults.max_request_bytes, help="largest REST body (default: %(default)s)")
    parser.add_argument("--max_file_bytes", type=int, default=defaults.max_file_bytes, help="complete a log file at this size (default: %(default)s)")
    parser.add_argument("--max_file_age_s", type=float, default=defaults.max_file_age_s, help="complete a log file at this age (default: %(default)s)")
    parser.add_argument("--max_files", type=int, default=defaults.max_files, help="complete files kept, oldest deleted first; 0 keeps all (default: %(default)s)")
    parser.add_argument("--queue_size", type=int, default=defaults.queue_size, help="sampled requests waiting to be written (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0.0 < args.sampling_rate <= 1.0:
        parser.error(f"--sampling_rate must be in (0, 1], got {args.sampling_rate}")
    if not args.timeout_s > 0:
        parser.error(f"--timeout_s must be positive, got {args.timeout_s}")
    return ProxyOptions(**vars(args))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the proxy until SIGTERM or SIGINT; returns the exit status."""
    import signal
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_flags(argv)
    try:
        proxy = LoggingProxy(options).start()
    except (RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    print(
        f"logging proxy: gRPC on {options.host}:{proxy.grpc_port}, REST on {options.host}:{proxy.rest_port} "
        f"-> upstream {options.upstream_grpc}, {options.upstream_rest}",
        flush=True,
    )
    stop.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
