"""The in-process model server: gRPC + REST + version polling, startable from tests.

    from serving.devserver.server import ModelServer, ServerOptions

    server = ModelServer(ServerOptions(model_name="taxi", model_base_path="/models/taxi",
                                       port=0, rest_api_port=0))
    server.start()                      # loads the models, binds, returns when serving
    server.rest_url                     # "http://127.0.0.1:PORT"
    server.grpc_target                  # "127.0.0.1:PORT"
    server.stop()                       # stop accepting, finish in-flight requests, unload

`ModelServer` is also a context manager (`with ModelServer(options) as server: ...`).
`python -m serving.model_server` wraps it with tensorflow_model_server's flags.
"""
import concurrent.futures
import dataclasses
import logging
import os
import threading
from typing import Optional

import grpc
from aiohttp import web
from tensorflow_serving.config import model_server_config_pb2

from serving.devserver.batching import Batcher, BatchingOptions
from serving.devserver.grpc_api import make_grpc_server
from serving.devserver.inference import DEFAULT_MAX_REQUEST_ROWS, InferenceService
from serving.devserver.loop_thread import LoopThread
from serving.devserver.metrics import ServerMetrics
from serving.devserver.rest_api import DEFAULT_MAX_REQUEST_BYTES, RestApi
from serving.devserver.servables import ServableManager, config_for_single_model, validate_config

logger = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_API_PORT = 8501
_STARTUP_TIMEOUT_S = 60.0


@dataclasses.dataclass
class ServerOptions:
    """How to run a `ModelServer`; mirrors tensorflow_model_server's flags.

    Attributes:
        model_name: Name of the single model served from `model_base_path`.
        model_base_path: Folder of numeric version folders; exclusive with `model_config`.
        model_config: Several models, policies and labels (a ModelServerConfig).
        port: gRPC port; 0 picks a free one.
        rest_api_port: REST port; 0 picks a free one, None disables REST.
        host: Address both APIs bind to.
        file_system_poll_wait_seconds: Seconds between base path polls; 0 disables polling.
        prometheus_path: Path of the Prometheus page on the REST port; None disables it.
        batching: Batching options; None disables batching.
        rest_api_timeout_in_ms: REST per-request limit; 0 or less means none.
        rest_api_num_threads: Threads for REST parsing and inference.
        grpc_max_threads: Threads serving gRPC calls.
        max_request_bytes: Largest request accepted: a REST body (413 beyond) or a gRPC message
            (RESOURCE_EXHAUSTED beyond).
        max_request_rows: Most rows (first dimension of predict inputs, or tf.Examples) one
            request may ask for (INVALID_ARGUMENT beyond); 0 means no limit.
        shutdown_grace_seconds: How long `stop()` waits for in-flight requests.
    """

    model_name: str = "default"
    model_base_path: Optional[str] = None
    model_config: Optional[model_server_config_pb2.ModelServerConfig] = None
    port: int = 0
    rest_api_port: Optional[int] = 0
    host: str = "127.0.0.1"
    file_system_poll_wait_seconds: float = 1.0
    prometheus_path: Optional[str] = None
    batching: Optional[BatchingOptions] = None
    rest_api_timeout_in_ms: int = 30000
    rest_api_num_threads: int = max(4, 4 * (os.cpu_count() or 1))
    grpc_max_threads: int = 32
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS
    shutdown_grace_seconds: float = 30.0

    def resolved_model_config(self) -> model_server_config_pb2.ModelServerConfig:
        """The ModelServerConfig to serve, from `model_config` or name + base path.

        Raises:
            ValueError: When both or neither of `model_config` and `model_base_path` are set.
        """
        if self.model_config is not None and self.model_base_path:
            raise ValueError("give either a model config or a model base path, not both")
        if self.model_config is not None:
            return self.model_config
        if not self.model_base_path:
            raise ValueError("a model base path (--model_base_path) or a model config is required")
        return config_for_single_model(self.model_name, self.model_base_path)


class ModelServer:
    """A TensorFlow-Serving-compatible server running in background threads.

    Args:
        options: What to serve and where.
    """

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.metrics = ServerMetrics()
        config = options.resolved_model_config()
        validate_config(config)
        self._config = config
        self._inference_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.rest_api_num_threads, thread_name_prefix="rest-inference"
        )
        self._grpc_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.grpc_max_threads, thread_name_prefix="grpc"
        )
        batcher = Batcher(options.batching) if options.batching is not None else None
        self.manager = ServableManager(
            config,
            poll_wait_seconds=options.file_system_poll_wait_seconds,
            # Warm-up replays records through the service, which needs the manager first.
            warmup_runner=lambda servable, log: self.service.replay_warmup(servable, log),
            load_observer=self.metrics.record_load,
        )
        self.service = InferenceService(self.manager, batcher, options.max_request_rows)
        self._grpc_server: Optional[grpc.Server] = None
        self._rest_loop = LoopThread("rest-api")
        self._runner: Optional[web.AppRunner] = None
        self._grpc_port: Optional[int] = None
        self._rest_port: Optional[int] = None
        self._stopped = threading.Event()
        self._started = False

    # -- addresses --------------------------------------------------------------------------

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port (after `start()`)."""
        if self._grpc_port is None:
            raise RuntimeError("the server is not started")
        return self._grpc_port

    @property
    def rest_port(self) -> int:
        """The bound REST port (after `start()`).

        Raises:
            RuntimeError: When not started or REST is disabled.
        """
        if self._rest_port is None:
            raise RuntimeError("the server is not started or REST is disabled")
        return self._rest_port

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.options.host in ("0.0.0.0", "::", "[::]", "") else self.options.host

    @property
    def grpc_target(self) -> str:
        """`host:port` for `grpc.insecure_channel`."""
        return f"{self._client_host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        """`http://host:port` of the REST API."""
        return f"http://{self._client_host}:{self.rest_port}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "ModelServer":
        """Loads the models, then starts gRPC and REST; returns once both accept connections.

        Returns:
            self, for chaining.

        Raises:
            FileNotFoundError: When a model base path does not exist.
            RuntimeError: When a port cannot be bound.
            StatusError: When a configured label names a version that did not load.
        """
        if self._started:
            raise RuntimeError("the server is already started")
        for model in self._config.model_config_list.config:
            if not os.path.isdir(model.base_path):
                raise FileNotFoundError(
                    f"model {model.name}: base path {model.base_path} does not exist"
                )
        self._started = True
        try:
            self.manager.start()
            self._start_grpc()
            if self.options.rest_api_port is not None:
                self._start_rest()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "serving %s: gRPC on %s:%s, REST on %s:%s",
            ", ".join(self.manager.model_names()), self.options.host, self._grpc_port,
            self.options.host, self._rest_port,
        )
        return self

    def _start_grpc(self) -> None:
        server = make_grpc_server(self.service, self.metrics, self._grpc_executor, self.options.max_request_bytes)
        address = f"{self.options.host}:{self.options.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise RuntimeError(f"cannot bind gRPC to {address}: {error}") from error
        if port == 0:
            raise RuntimeError(f"cannot bind gRPC to {address}")
        server.start()
        self._grpc_server = server
        self._grpc_port = port

    def _start_rest(self) -> None:
        rest_api = RestApi(
            self.service,
            self.metrics,
            self._inference_executor,
            timeout_ms=self.options.rest_api_timeout_in_ms,
            prometheus_path=self.options.prometheus_path,
            max_request_bytes=self.options.max_request_bytes,
        )

        async def start_site() -> None:
            runner = web.AppRunner(
                rest_api.make_app(),
                handle_signals=False,
                access_log=None,
                shutdown_timeout=self.options.shutdown_grace_seconds,
                # A connection that has not sent a whole request (slow or stalled headers) or
                # idles between requests is closed after the request timeout, so a few slow
                # clients cannot hold the server's connections.
                keepalive_timeout=self.options.rest_api_timeout_in_ms / 1000 if self.options.rest_api_timeout_in_ms > 0 else 75.0,
            )
            await runner.setup()
            site = web.TCPSite(runner, self.options.host, self.options.rest_api_port)
            await site.start()
            self._runner = runner
            self._rest_port = runner.addresses[0][1]

        try:
            self._rest_loop.start(start_site, _STARTUP_TIMEOUT_S)
        except TimeoutError as error:
            raise RuntimeError("the REST server did not start in time") from error
        except Exception as error:
            raise RuntimeError(f"cannot bind REST to {self.options.host}:{self.options.rest_api_port}: {error}") from error

    def stop(self, grace_seconds: Optional[float] = None) -> None:
        """Stops accepting requests, lets in-flight ones finish, then unloads the models.

        Args:
            grace_seconds: How long to wait for in-flight requests; defaults to the options'.
        """
        if self._stopped.is_set():
            return
        grace = self.options.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        grpc_stopped = self._grpc_server.stop(grace) if self._grpc_server is not None else None
        if self._rest_loop.running and self._runner is not None:
            try:
                self._rest_loop.call(self._runner.cleanup(), timeout_s=grace + 5.0)
            except concurrent.futures.TimeoutError:
                logger.warning("REST server did not drain within %.1fs", grace)
        self._rest_loop.stop(timeout_s=10.0)
        if grpc_stopped is not None:
            grpc_stopped.wait(grace + 5.0)
        self.manager.stop()
        self._inference_executor.shutdown(wait=True)
        self._grpc_executor.shutdown(wait=True)
        self._stopped.set()
        logger.info("model server stopped")

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until `stop()` has finished; returns False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
