"""`python -m serving.model_server`: a local stand-in for tensorflow_model_server.

Speaks TensorFlow Serving's REST and gRPC APIs and takes its flags, so one client, one set of
tests and one set of habits work against both. Examples:

    python -m serving.model_server --model_name=taxi --model_base_path=/abs/serving_model/taxi
    python -m serving.model_server --model_config_file=serving/deploy/config/models.config \\
        --monitoring_config_file=serving/deploy/config/monitoring.config \\
        --enable_batching --batching_parameters_file=serving/deploy/config/batching.config
    python -m serving.model_server --port=0 --rest_api_port=0 --model_base_path=...  # free ports

Once serving it prints one line to stdout, e.g.
`serving: gRPC on 0.0.0.0:8500, REST on 0.0.0.0:8501`, and runs until SIGTERM or SIGINT, then
stops accepting, finishes in-flight requests and exits 0.
"""
import os

from serving.console import import_tensorflow  # noqa: E402

# Before anything below imports TensorFlow: hide its INFO/WARNING console chatter by default
# but keep errors; an explicit TF_CPP_MIN_LOG_LEVEL wins.
import_tensorflow()

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import List, Optional  # noqa: E402

from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from serving.devserver.batching import BatchingOptions  # noqa: E402
from serving.devserver.config_protos import (  # noqa: E402
    BatchingParameters,
    MonitoringConfig,
    parse_text_proto,
    read_text_proto,
)
from serving.devserver.errors import StatusError  # noqa: E402
from serving.devserver.request_log import RequestLogger  # noqa: E402
from serving.devserver.inference import DEFAULT_MAX_REQUEST_ROWS  # noqa: E402
from serving.devserver.rest_api import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PROMETHEUS_PATH  # noqa: E402
from serving.devserver.server import (  # noqa: E402
    DEFAULT_GRPC_PORT,
    DEFAULT_REST_API_PORT,
    ModelServer,
    ServerOptions,
)

logger = logging.getLogger(__name__)

__all__ = ["ModelServer", "ServerOptions", "build_options", "main", "parse_flags"]


def _bool_flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_flags(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses tensorflow_model_server-style flags (`--port=8500` or `--port 8500`).

    Args:
        argv: Arguments without the program name; sys.argv[1:] when None.

    Returns:
        The parsed flags.
    """
    parser = argparse.ArgumentParser(
        prog="python -m serving.model_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=DEFAULT_GRPC_PORT,
                        help="gRPC port (0 picks a free one). Default %(default)s.")
    parser.add_argument("--rest_api_port", type=int, default=DEFAULT_REST_API_PORT,
                        help="REST port (0 picks a free one). Default %(default)s.")
    parser.add_argument("--bind_address", default="0.0.0.0",
                        help="Address both APIs listen on (not a tensorflow_model_server flag). "
                             "Default %(default)s, as the real server.")
    parser.add_argument("--model_name", default="default",
                        help="Name of the model served from --model_base_path.")
    parser.add_argument("--model_base_path", default="",
                        help="Folder holding numeric version folders of one SavedModel.")
    parser.add_argument("--model_config_file", default="",
                        help="Text-format ModelServerConfig (several models, version policies, "
                             "labels). Exclusive with --model_base_path.")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="Seconds between polls for new versions; 0 disables polling.")
    parser.add_argument("--monitoring_config_file", default="",
                        help="Text-format MonitoringConfig (prometheus_config { enable path }).")
    parser.add_argument("--enable_batching", type=_bool_flag, nargs="?", const=True,
                        default=False, help="Merge concurrent predict requests.")
    parser.add_argument("--batching_parameters_file", default="",
                        help="Text-format BatchingParameters (max_batch_size, "
                             "batch_timeout_micros, ...). Implies nothing unless batching is on.")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                        help="REST per-request timeout in ms. Default %(default)s.")
    parser.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="Largest request accepted, a REST body (413 beyond) or a gRPC message "
                             "(RESOURCE_EXHAUSTED beyond). Default %(default)s (256 MiB).")
    parser.add_argument("--max_request_rows", type=int, default=DEFAULT_MAX_REQUEST_ROWS,
                        help="Most rows one request may ask for: the first dimension of predict inputs, or "
                             "tf.Examples (INVALID_ARGUMENT beyond); 0 means no limit. Default %(default)s.")
    parser.add_argument("--rest_api_num_threads", type=int, default=0,
                        help="Threads for REST inference; 0 means 4 x CPUs.")
    parser.add_argument("--request_log_dir", default="",
                        help="Log a sample of predict requests as tf.Examples in this directory "
                             "(for `python -m pipeline skew`); off when empty.")
    parser.add_argument("--request_log_sampling_rate", type=float, default=0.1,
                        help="Share of predict requests logged, in (0, 1] (default 0.1).")
    return parser.parse_args(argv)


def build_options(flags: argparse.Namespace) -> ServerOptions:
    """Turns parsed flags into `ServerOptions`, reading the config files they name.

    Raises:
        ValueError: When flags conflict or a config file is malformed (names the file).
        OSError: When a config file cannot be read.
    """
    if flags.model_config_file and flags.model_base_path:
        raise ValueError("--model_config_file and --model_base_path are exclusive; give one")
    model_config = None
    if flags.model_config_file:
        model_config = read_text_proto(
            flags.model_config_file, model_server_config_pb2.ModelServerConfig
        )
    prometheus_path = None
    if flags.monitoring_config_file:
        monitoring = read_text_proto(flags.monitoring_config_file, MonitoringConfig)
        if monitoring.prometheus_config.enable:
            prometheus_path = monitoring.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
    batching = None
    if flags.enable_batching:
        parameters = (
            read_text_proto(flags.batching_parameters_file, BatchingParameters)
            if flags.batching_parameters_file
            else parse_text_proto("", BatchingParameters, "<defaults>")
        )
        batching = BatchingOptions.from_proto(parameters)
    options = ServerOptions(
        model_name=flags.model_name,
        model_base_path=os.path.abspath(flags.model_base_path) if flags.model_base_path else None,
        model_config=model_config,
        port=flags.port,
        rest_api_port=flags.rest_api_port,
        host=flags.bind_address,
        file_system_poll_wait_seconds=flags.file_system_poll_wait_seconds,
        prometheus_path=prometheus_path,
        batching=batching,
        rest_api_timeout_in_ms=flags.rest_api_timeout_in_ms,
        max_request_bytes=flags.max_request_bytes,
        max_request_rows=flags.max_request_rows,
    )
    if flags.rest_api_num_threads > 0:
        options.rest_api_num_threads = flags.rest_api_num_threads
    options.resolved_model_config()  # Fail now, with the flag names, if no model is given.
    return options


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the server until SIGTERM/SIGINT.

    Returns:
        0 after a clean shutdown, 1 when the server cannot start.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # TensorFlow's Python logger has its own handler: keep it from printing twice through the
    # root logger, and keep only its errors (deprecation notes and checkpoint chatter are noise
    # to someone running a server).
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.propagate = False
    tf_logger.setLevel(logging.ERROR)
    flags = parse_flags(argv)
    request_logger = None
    try:
        server = ModelServer(build_options(flags))
        if flags.request_log_dir:
            request_logger = RequestLogger(flags.request_log_dir, flags.request_log_sampling_rate)
            server.service.request_hooks.append(request_logger)
        server.start()
    except (ValueError, OSError, RuntimeError, StatusError) as error:
        logger.error("cannot start the model server: %s", error)
        return 1

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s: shutting down", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Tests and scripts read the bound ports from this line.
    print(
        f"serving: gRPC on {server.options.host}:{server.grpc_port}, "
        f"REST on {server.options.host}:{server.rest_port}",
        flush=True,
    )
    # A bounded wait in a loop keeps the main thread responsive to signals.
    while not stop_requested.wait(1.0):
        pass
    server.stop()
    if request_logger is not None:
        request_logger.close()
        logger.info("logged %d request rows to %s", request_logger.logged_rows, request_logger.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
