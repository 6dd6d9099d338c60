"""Text-format configs of tensorflow_model_server that the tensorflow-serving-api wheel lacks.

The wheel ships `model_server_config_pb2` but not `monitoring_config_pb2` nor
`session_bundle_config_pb2`, so `--monitoring_config_file` and `--batching_parameters_file`
cannot be parsed with generated modules. This module declares the same messages (package,
message and field names, numbers and types as in TensorFlow Serving's `monitoring_config.proto`
and `session_bundle_config.proto`) in a private descriptor pool, so the very same files that
configure the real server configure this one. Unknown fields (from newer releases) are skipped
with a warning instead of failing, since they only tune the real batch scheduler.
"""
import logging
from typing import Type

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format, wrappers_pb2

logger = logging.getLogger(__name__)

_PACKAGE = "tensorflow.serving"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _add_field(
    message_proto: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    field_type: int,
    type_name: str = "",
    repeated: bool = False,
) -> None:
    field = message_proto.field.add()
    field.name = name
    field.number = number
    field.type = field_type
    field.label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers_file = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers_file)
    pool.Add(wrappers_file)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="serving_local/monitoring_config.proto", package=_PACKAGE, syntax="proto3"
    )
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    _add_field(prometheus, "enable", 1, _FIELD.TYPE_BOOL)
    _add_field(prometheus, "path", 2, _FIELD.TYPE_STRING)
    monitoring_config = monitoring.message_type.add(name="MonitoringConfig")
    _add_field(
        monitoring_config, "prometheus_config", 1, _FIELD.TYPE_MESSAGE,
        f".{_PACKAGE}.PrometheusConfig",
    )
    pool.Add(monitoring)

    batching = descriptor_pb2.FileDescriptorProto(
        name="serving_local/session_bundle_config.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[wrappers_file.name],
    )
    parameters = batching.message_type.add(name="BatchingParameters")
    int64_value = ".google.protobuf.Int64Value"
    _add_field(parameters, "max_batch_size", 1, _FIELD.TYPE_MESSAGE, int64_value)
    _add_field(parameters, "batch_timeout_micros", 2, _FIELD.TYPE_MESSAGE, int64_value)
    _add_field(parameters, "max_enqueued_batches", 3, _FIELD.TYPE_MESSAGE, int64_value)
    _add_field(parameters, "num_batch_threads", 4, _FIELD.TYPE_MESSAGE, int64_value)
    _add_field(
        parameters, "thread_pool_name", 5, _FIELD.TYPE_MESSAGE, ".google.protobuf.StringValue"
    )
    _add_field(parameters, "allowed_batch_sizes", 6, _FIELD.TYPE_INT64, repeated=True)
    _add_field(parameters, "pad_variable_length_inputs", 7, _FIELD.TYPE_BOOL)
    pool.Add(batching)
    return pool


_POOL = _build_pool()
_FACTORY = message_factory.MessageFactory(_POOL)


def _message_class(full_name: str) -> Type[message.Message]:
    return _FACTORY.GetPrototype(_POOL.FindMessageTypeByName(full_name))


MonitoringConfig = _message_class(f"{_PACKAGE}.MonitoringConfig")
PrometheusConfig = _message_class(f"{_PACKAGE}.PrometheusConfig")
BatchingParameters = _message_class(f"{_PACKAGE}.BatchingParameters")


def parse_text_proto(text: str, message_class: Type[message.Message], source: str) -> message.Message:
    """Parses a text-format config, naming the file at fault when it is malformed.

    Args:
        text: The file's contents.
        message_class: The message type to parse into.
        source: Where the text came from, for the error message.

    Returns:
        The parsed message.

    Raises:
        ValueError: When the text is not a valid `message_class` in text format.
    """
    parsed = message_class()
    try:
        text_format.Parse(text, parsed, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise ValueError(
            f"{source}: not a valid text-format {message_class.DESCRIPTOR.name}: {error}"
        ) from error
    return parsed


def read_text_proto(path: str, message_class: Type[message.Message]) -> message.Message:
    """Reads and parses a text-format config file.

    Raises:
        ValueError: When the file is malformed.
        OSError: When the file cannot be read.
    """
    with open(path, encoding="utf-8") as config_file:
        return parse_text_proto(config_file.read(), message_class, path)
