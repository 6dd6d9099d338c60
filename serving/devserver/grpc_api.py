"""TensorFlow Serving's gRPC API, on the official generated stubs of tensorflow-serving-api.

PredictionService (Predict, Classify, Regress, MultiInference, GetModelMetadata) and
ModelService (GetModelStatus, HandleReloadConfigRequest). Failures abort the call with the
canonical code TensorFlow Serving uses (see `serving.devserver.errors`); responses echo the model spec
actually served (name, version, signature_name). Message limits are raised to TensorFlow
Serving's (2 GiB - 1) since Python gRPC's default of 4 MiB refuses ordinary batches.
"""
import concurrent.futures
import logging
import time
from typing import Callable, Optional, TypeVar

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.devserver import deadlines
from serving.devserver.errors import StatusError, invalid_argument
from serving.devserver.inference import InferenceService, RequestRecord, array_from_tensor_proto, check_metadata_fields, predict_response
from serving.devserver.metrics import ServerMetrics
from serving.devserver.servables import Servable, model_spec_for

logger = logging.getLogger(__name__)

# Answers may be as large as gRPC allows; requests are limited by `max_request_bytes`.
MAX_MESSAGE_BYTES = 2**31 - 1

Response = TypeVar("Response")


def _resolve(service: InferenceService, model_spec, has_spec: bool) -> Servable:
    if not has_spec:
        raise invalid_argument("Missing ModelSpec")
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return service.manager.get_servable(model_spec.name, version, label)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService backed by an `InferenceService`."""

    def __init__(self, service: InferenceService, metrics: ServerMetrics) -> None:
        self._service = service
        self._metrics = metrics

    def _call(
        self,
        api: Optional[str],
        model_name: str,
        request,
        context: grpc.ServicerContext,
        work: Callable[[], Response],
    ) -> Response:
        started = time.perf_counter()
        status = "OK"
        response = None
        # The client's deadline, and the call's end (a cancel, a dropped connection): the
        # stages check it, so work nobody waits for stops (serving.devserver.deadlines).
        deadline = deadlines.Deadline.after(
            context.time_remaining(), "the client's gRPC deadline, or the call was cancelled", self._metrics.record_abandoned
        )
        context.add_callback(deadline.cancel)
        try:
            with deadlines.bound(deadline):
                response = work()
            return response
        except StatusError as error:
            status = error.code.name
            context.abort(error.code, error.message)
        except Exception as error:  # noqa: BLE001 - answer INTERNAL instead of a bare UNKNOWN.
            status = grpc.StatusCode.INTERNAL.name
            logger.exception("unexpected error in %s", api)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            if api is not None:
                latency = (time.perf_counter() - started) * 1e6
                self._metrics.record_request(model_name, api, "GRPC", status, latency)
                self._service.notify(
                    RequestRecord(
                        api=api, entrypoint="GRPC", model_name=model_name, status=status,
                        latency_micros=latency, request=request, response=response,
                    )
                )

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        def work() -> predict_pb2.PredictResponse:
            servable = _resolve(self._service, request.model_spec, request.HasField("model_spec"))
            inputs = {
                alias: array_from_tensor_proto(alias, proto)
                for alias, proto in request.inputs.items()
            }
            deadlines.check("after decoding the request")
            key, outputs = self._service.predict(
                servable, request.model_spec.signature_name, inputs, list(request.output_filter)
            )
            return predict_response(servable, key, outputs)

        return self._call("Predict", request.model_spec.name, request, context, work)

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        def work() -> classification_pb2.ClassificationResponse:
            servable = _resolve(self._service, request.model_spec, request.HasField("model_spec"))
            key, result = self._service.classify(
                servable, request.model_spec.signature_name, request.input
            )
            response = classification_pb2.ClassificationResponse(result=result)
            response.model_spec.CopyFrom(model_spec_for(servable, key))
            return response

        return self._call("Classify", request.model_spec.name, request, context, work)

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        def work() -> regression_pb2.RegressionResponse:
            servable = _resolve(self._service, request.model_spec, request.HasField("model_spec"))
            key, result = self._service.regress(
                servable, request.model_spec.signature_name, request.input
            )
            response = regression_pb2.RegressionResponse(result=result)
            response.model_spec.CopyFrom(model_spec_for(servable, key))
            return response

        return self._call("Regress", request.model_spec.name, request, context, work)

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        model_name = request.tasks[0].model_spec.name if request.tasks else ""

        def work() -> inference_pb2.MultiInferenceResponse:
            if not request.tasks:
                raise invalid_argument("MultiInferenceRequest must have at least one task")
            first = request.tasks[0]
            servable = _resolve(self._service, first.model_spec, first.HasField("model_spec"))
            return self._service.multi_inference(servable, request)

        return self._call("MultiInference", model_name, request, context, work)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def work() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            fields = list(request.metadata_field)
            # Validate the request before looking the model up, as TensorFlow Serving does.
            check_metadata_fields(fields)
            servable = _resolve(self._service, request.model_spec, True)
            return self._service.metadata(servable, fields)

        return self._call(None, request.model_spec.name, request, context, work)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService: status of versions, and swapping the model config at run time."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            spec = request.model_spec
            choice = spec.WhichOneof("version_choice")
            return self._service.manager.model_status(
                spec.name,
                spec.version.value if choice == "version" else None,
                spec.version_label if choice == "version_label" else None,
            )
        except StatusError as error:
            context.abort(error.code, error.message)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            for model in request.config.model_config_list.config:
                logger.info("reload config: model %s at %s", model.name, model.base_path)
            self._service.manager.reload_config(request.config)
        except StatusError as error:
            logger.error("ReloadConfig failed: %s", error.message)
            response.status.error_code = error.code.value[0]
            response.status.error_message = error.message
            context.set_code(error.code)
            context.set_details(error.message)
            return response
        response.status.SetInParent()
        return response


def make_grpc_server(
    service: InferenceService,
    metrics: ServerMetrics,
    executor: concurrent.futures.ThreadPoolExecutor,
    max_request_bytes: int = MAX_MESSAGE_BYTES,
) -> grpc.Server:
    """Builds (without starting) a gRPC server with both services; a request message larger than
    `max_request_bytes` is refused by gRPC with RESOURCE_EXHAUSTED before it is decoded."""
    options = (("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.max_receive_message_length", max_request_bytes))
    server = grpc.server(executor, options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
    return server
