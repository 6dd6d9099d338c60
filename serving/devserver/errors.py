"""One error type for the model server, carrying TensorFlow Serving's canonical status code.

Every layer (JSON decoding, servable lookup, inference, batching) raises `StatusError`; the REST
front end turns it into `{"error": message}` with the HTTP status TensorFlow Serving uses for
that code (`model_servers/http_server.cc`), and the gRPC front end aborts the call with the
same code, so both APIs fail the same way for the same cause.
"""
from typing import Dict

import grpc

# HTTP status for each canonical code, as tensorflow_model_server maps them. Codes missing
# here (UNKNOWN, INTERNAL, DATA_LOSS) answer 500.
_HTTP_STATUS_BY_CODE: Dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class StatusError(Exception):
    """A request failed with a canonical status code and a message meant for the caller.

    Attributes:
        code: The canonical (gRPC) status code, e.g. `grpc.StatusCode.NOT_FOUND`.
        message: The text the caller sees, in REST as `{"error": message}`.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TensorFlow Serving's REST API answers for this error's code."""
        return http_status_for(self.code)


def http_status_for(code: grpc.StatusCode) -> int:
    """Returns the HTTP status that tensorflow_model_server uses for a canonical code.

    Args:
        code: A canonical status code.

    Returns:
        The HTTP status, 500 for codes without a more specific mapping.
    """
    return _HTTP_STATUS_BY_CODE.get(code, 500)


def invalid_argument(message: str) -> StatusError:
    """Returns an INVALID_ARGUMENT error (HTTP 400) with `message`."""
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> StatusError:
    """Returns a NOT_FOUND error (HTTP 404) with `message`."""
    return StatusError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> StatusError:
    """Returns a FAILED_PRECONDITION error (HTTP 400) with `message`."""
    return StatusError(grpc.StatusCode.FAILED_PRECONDITION, message)
