"""Before a push: load the candidate in the project's model server and send it real requests.

TFX's InfraValidator does this job with Docker and the real TF Serving binary, neither of
which runs here. This component copies the candidate SavedModel into a fresh base path,
serves it with `serving.devserver.server.ModelServer` on free loopback ports, waits for the version to
be AVAILABLE, and sends trips from the evaluation split over REST and gRPC. A model that
fails to load or to answer (wrong count, a probability outside [0, 1], REST and gRPC
disagreeing) gets an InfraBlessing with `blessed` = 0, and TFX's Pusher then pushes nothing.
"""
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, List, Tuple

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from pipeline.components.artifacts import BLESSED_PROPERTY, DETAIL_PROPERTY, read_trips
from pipeline.configs import EVAL_SPLIT, SERVING_MODEL_NAME

logger = logging.getLogger(__name__)

LOAD_TIMEOUT_SECONDS = 60.0
CANDIDATE_VERSION = "1"


def _copy_tree(source: str, target: str) -> None:
    """Copies a folder tree from any filesystem TensorFlow reads to a local folder."""
    for root, _, files in tf.io.gfile.walk(source):
        local_root = os.path.join(target, os.path.relpath(root, source))
        os.makedirs(local_root, exist_ok=True)
        for name in files:
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(local_root, name), overwrite=True)


def _wait_available(rest_address: str) -> None:
    from serving import client

    deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
    while True:
        status = client.model_status_rest(rest_address, SERVING_MODEL_NAME)
        version = status["model_version_status"][0]
        if version["state"] == "AVAILABLE":
            return
        if version["status"]["error_code"] != "OK":
            raise RuntimeError(f"the model did not load: {version['status']['error_message']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the model was not AVAILABLE after {LOAD_TIMEOUT_SECONDS:.0f}s (state {version['state']})")
        time.sleep(0.2)


def check_model_serves(saved_model_dir: str, trips: List[Dict[str, object]]) -> Tuple[bool, str]:
    """Serves `saved_model_dir` locally and asks it about `trips` over REST and gRPC.

    Returns:
        (True, what was checked) when every answer is sound, else (False, what went wrong).
    """
    from serving import client
    from serving.devserver.server import ModelServer, ServerOptions

    base_path = tempfile.mkdtemp(prefix="serving_check_")
    server = None
    try:
        # Through tf.io.gfile, so a candidate on a bucket (Vertex AI) is copied like a local one.
        _copy_tree(saved_model_dir, os.path.join(base_path, CANDIDATE_VERSION))
        server = ModelServer(
            ServerOptions(
                model_name=SERVING_MODEL_NAME,
                model_base_path=base_path,
                port=0,
                rest_api_port=0,
                file_system_poll_wait_seconds=0,
            )
        ).start()
        rest_address = f"127.0.0.1:{server.rest_port}"
        _wait_available(rest_address)
        over_rest = client.predict_trips_rest(rest_address, SERVING_MODEL_NAME, trips)
        over_grpc = client.predict_trips_grpc(server.grpc_target, SERVING_MODEL_NAME, trips)
        if len(over_rest) != len(trips) or len(over_grpc) != len(trips):
            return False, f"asked about {len(trips)} trips, got {len(over_rest)} answers over REST and {len(over_grpc)} over gRPC"
        bad = [p for p in over_rest if not (0.0 <= p <= 1.0) or math.isnan(p)]
        if bad:
            return False, f"probabilities outside [0, 1]: {bad[:5]}"
        differences = [abs(a - b) for a, b in zip(over_rest, over_grpc)]
        if max(differences, default=0.0) > 1e-5:
            return False, f"REST and gRPC answers differ by up to {max(differences):.2e}"
        return True, f"loaded and answered {len(trips)} trips over REST and gRPC"
    except Exception as error:  # noqa: BLE001 - any failure to load or answer refuses the push
        logger.warning("serving check failed: %s", error)
        return False, f"{type(error).__name__}: {error}"
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base_path, ignore_errors=True)


@tfx.dsl.components.component
def ServingCheck(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    infra_blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
    num_trips: tfx.dsl.components.Parameter[int] = 32,
    code_fingerprint: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Blesses the candidate for the Pusher only if the local model server loads and answers it.

    `code_fingerprint` (the project's code, which holds the model server) is part of the cache
    key only.
    """
    del code_fingerprint
    trips = read_trips(examples.uri, EVAL_SPLIT, num_trips)
    serving_model_dir = os.path.join(model.uri, "Format-Serving")
    passed, detail = check_model_serves(serving_model_dir, trips)
    infra_blessing.set_int_custom_property(BLESSED_PROPERTY, int(passed))
    infra_blessing.set_string_custom_property(DETAIL_PROPERTY, detail)
    logger.info("serving check %s: %s", "passed" if passed else "FAILED", detail)
