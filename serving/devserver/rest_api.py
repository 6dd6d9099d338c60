"""TensorFlow Serving's REST API on aiohttp.

Routes, as `http_rest_api_util.cc` matches them (case-insensitive; model names and labels are
URL-decoded after matching, so `%2F` never splits a path segment):

    GET  /v1/models/{M}[/versions/{V}|/labels/{L}]            model status
    GET  /v1/models/{M}[/versions/{V}|/labels/{L}]/metadata   model metadata
    POST /v1/models/{M}[/versions/{V}|/labels/{L}]:predict|:classify|:regress

Any other method/path under /v1/ answers 400 `Malformed request: ...`; paths outside /v1/
answer 404; `GET /v1/models` answers 400 `Missing model name in request.`. Every reply carries
`Content-Type: application/json` (the Prometheus page, when enabled, is Prometheus text).
Errors are `{"error": "..."}` with the HTTP status of the canonical code.

Bodies larger than `max_request_bytes` (default 256 MiB) are refused with 413 and a JSON
error. Parsing, inference and JSON writing run on a thread pool, never on the event loop, and a
request taking longer than `--rest_api_timeout_in_ms` answers 504.
"""
import asyncio
import concurrent.futures
import json
import logging
import re
import time
import urllib.parse
from typing import Any, Awaitable, Callable, Optional, Tuple

import grpc
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format

from serving.devserver import deadlines, json_tensor
from serving.devserver.errors import StatusError, invalid_argument
from serving.devserver.inference import InferenceService, RequestRecord, signature_def_map
from serving.devserver.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from serving.devserver.metrics import ServerMetrics
from serving.devserver.servables import DEFAULT_SIGNATURE, model_spec_for

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
JSON_CONTENT_TYPE = "application/json"

_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_API_NAMES = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
_MAX_INT64 = 2**63 - 1


def json_response(body: str, status: int = 200) -> web.Response:
    """A reply with TensorFlow Serving's exact `Content-Type: application/json` header."""
    return web.Response(
        body=body.encode("utf-8"), status=status, headers={"Content-Type": JSON_CONTENT_TYPE}
    )


def error_response(message: str, status: int) -> web.Response:
    """A `{"error": message}` reply."""
    return json_response(json_tensor.error_to_json(message), status)


def _proto_to_json(message: Any) -> Any:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, including_default_value_fields=True
    )


class _Route:
    """What a /v1/ path addresses."""

    def __init__(self, name: str, version: Optional[int], label: Optional[str], action: str) -> None:
        self.name = name
        self.version = version
        self.label = label
        self.action = action  # predict, classify, regress, status or metadata


def parse_route(method: str, raw_path: str) -> _Route:
    """Matches a request against TensorFlow Serving's REST routes.

    Args:
        method: The HTTP method.
        raw_path: The still percent-encoded path (no query string).

    Returns:
        The model name, version or label, and action.

    Raises:
        StatusError: INVALID_ARGUMENT `Malformed request: ...`, `Missing model name in
            request.`, `Failed to convert version: ...`, or when both version and label are set.
    """
    match = None
    if method == "POST":
        match = _PREDICTION_PATH.fullmatch(raw_path)
    elif method == "GET":
        match = _STATUS_PATH.fullmatch(raw_path)
    if match is None:
        raise invalid_argument(f"Malformed request: {method} {urllib.parse.unquote(raw_path)}")
    raw_name, raw_version, raw_label, suffix = match.groups()
    name = urllib.parse.unquote(raw_name) if raw_name else ""
    version = None
    if raw_version:
        version = int(raw_version)
        if version > _MAX_INT64:
            raise invalid_argument(f"Failed to convert version: {raw_version} to numeric.")
    label = urllib.parse.unquote(raw_label) if raw_label else None
    if method == "POST":
        action = suffix.lower()
    else:
        action = "metadata" if suffix else "status"
    if not name:
        raise invalid_argument("Missing model name in request.")
    return _Route(name, version, label, action)


class RestApi:
    """The aiohttp application serving TensorFlow Serving's REST API.

    Args:
        service: Runs the inference.
        metrics: Where request counts and latencies go.
        executor: Thread pool for parsing, inference and JSON writing.
        timeout_ms: Per-request limit (`--rest_api_timeout_in_ms`); 0 or less means none.
        prometheus_path: Path of the Prometheus page, or None when monitoring is off.
        max_request_bytes: Largest accepted request body.
    """

    def __init__(
        self,
        service: InferenceService,
        metrics: ServerMetrics,
        executor: concurrent.futures.Executor,
        timeout_ms: int = 30000,
        prometheus_path: Optional[str] = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self._service = service
        self._metrics = metrics
        self._executor = executor
        self._timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else None
        self._prometheus_path = prometheus_path
        self._max_request_bytes = max_request_bytes

    def make_app(self) -> web.Application:
        """Builds the aiohttp application (one catch-all route; routing is done here)."""
        app = web.Application(
            client_max_size=self._max_request_bytes, middlewares=[self._error_middleware]
        )
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @web.middleware
    async def _error_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            # aiohttp's own refusals (bad framing, ...) still answer in TF Serving's JSON shape.
            return error_response(error.reason or str(error), error.status)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a bug must answer 500, not drop the socket.
            logger.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(f"Internal error: {type(error).__name__}: {error}", 500)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if (
            self._prometheus_path is not None
            and request.method == "GET"
            and raw_path == self._prometheus_path
        ):
            return web.Response(
                body=self._metrics.exposition(),
                headers={"Content-Type": PROMETHEUS_CONTENT_TYPE},
            )
        if not _API_PATH.fullmatch(raw_path):
            return error_response(f"Not found: {request.method} {raw_path}", 404)
        try:
            route = parse_route(request.method, raw_path)
        except StatusError as error:
            return error_response(error.message, error.http_status)

        try:
            # A client that sends its body slowly (or never finishes it) holds the connection
            # no longer than a request may take.
            body = await asyncio.wait_for(request.read(), self._timeout_s)
        except asyncio.TimeoutError:
            return error_response(
                f"Request body not received within {self._timeout_s * 1000:.0f} ms (--rest_api_timeout_in_ms)", 408
            )
        except RequestPayloadError as error:
            # A body that does not decode as its Content-Encoding says (bad gzip or deflate).
            reason = re.sub(r"^\d+, message:\s*", "", str(error)).strip()
            return error_response(f"Request body cannot be read: {reason}", 400)
        except web.HTTPRequestEntityTooLarge as error:
            return error_response(
                f"Request body is larger than the server's limit of {self._max_request_bytes} "
                f"bytes ({error.text or 'too large'})",
                413,
            )
        started = time.perf_counter()
        api = _API_NAMES.get(route.action)
        status = "OK"
        try:
            handler = {
                "status": self._status,
                "metadata": self._metadata,
                "predict": self._predict,
                "classify": self._classify,
                "regress": self._regress,
            }[route.action]
            text, http_status = await self._run(handler, route, body)
        except StatusError as error:
            status = error.code.name
            text, http_status = json_tensor.error_to_json(error.message), error.http_status
        if api is not None:
            latency = (time.perf_counter() - started) * 1e6
            self._metrics.record_request(route.name, api, "REST", status, latency)
            self._service.notify(
                RequestRecord(
                    api=api, entrypoint="REST", model_name=route.name, status=status,
                    latency_micros=latency, request=body,
                    response=text if status == "OK" else None,
                )
            )
        return json_response(text, http_status)

    async def _run(
        self, handler: Callable[[_Route, bytes], str], route: _Route, body: bytes
    ) -> Tuple[str, int]:
        loop = asyncio.get_running_loop()
        deadline = deadlines.Deadline.after(
            self._timeout_s,
            f"--rest_api_timeout_in_ms {self._timeout_s * 1000:.0f}" if self._timeout_s else "the request was dropped",
            self._metrics.record_abandoned,
        )

        def work() -> str:
            # The stages check `deadline`: once the 504 below is sent, the rest is not done.
            with deadlines.bound(deadline):
                return handler(route, body)

        future = loop.run_in_executor(self._executor, work)
        try:
            text = await asyncio.wait_for(future, self._timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError) as error:
            deadline.cancel()
            if isinstance(error, asyncio.CancelledError):
                raise  # the client went away: nothing to answer
            raise StatusError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"Deadline exceeded: the request took longer than {self._timeout_s * 1000:.0f} ms "
                "(--rest_api_timeout_in_ms)",
            ) from error
        return text, 200

    # -- handlers (run on the thread pool) --------------------------------------------------

    def _status(self, route: _Route, body: bytes) -> str:
        response = self._service.manager.model_status(route.name, route.version, route.label)
        return json.dumps(_proto_to_json(response), indent=1)

    def _metadata(self, route: _Route, body: bytes) -> str:
        servable = self._service.manager.get_servable(route.name, route.version, route.label)
        document = {
            "model_spec": _proto_to_json(model_spec_for(servable, "")),
            "metadata": {"signature_def": _proto_to_json(signature_def_map(servable))},
        }
        return json.dumps(document, indent=1)

    def _predict(self, route: _Route, body: bytes) -> str:
        doc = json_tensor.parse_request_body(body)
        deadlines.check("after decoding the request")
        signature_name = json_tensor.signature_name_of(doc)
        servable = self._service.manager.get_servable(route.name, route.version, route.label)
        key = signature_name or DEFAULT_SIGNATURE
        if key not in servable.signature_defs:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        input_dtypes = servable.input_dtypes(key)
        inputs, request_format = json_tensor.predict_inputs_from_json(doc, input_dtypes, signature_name)
        _, outputs = self._service.predict(servable, signature_name, inputs)
        return json_tensor.predict_outputs_to_json(outputs, request_format)

    def _classify(self, route: _Route, body: bytes) -> str:
        doc = json_tensor.parse_request_body(body)
        signature_name = json_tensor.signature_name_of(doc)
        request_input = json_tensor.input_from_json(doc)
        servable = self._service.manager.get_servable(route.name, route.version, route.label)
        _, result = self._service.classify(servable, signature_name, request_input)
        return json_tensor.classification_to_json(
            [[(entry.label, entry.score) for entry in row.classes] for row in result.classifications]
        )

    def _regress(self, route: _Route, body: bytes) -> str:
        doc = json_tensor.parse_request_body(body)
        signature_name = json_tensor.signature_name_of(doc)
        request_input = json_tensor.input_from_json(doc)
        servable = self._service.manager.get_servable(route.name, route.version, route.label)
        _, result = self._service.regress(servable, signature_name, request_input)
        return json_tensor.regression_to_json([entry.value for entry in result.regressions])
