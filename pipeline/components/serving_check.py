"""Before a push: load the candidate in the project's model server and send it real requests.

TFX's InfraValidator does this job with Docker and the real TF Serving binary, neither of
which runs here. This component copies the candidate SavedModel into a fresh base path,
serves it with `serving.devserver.server.ModelServer` on free loopback ports, waits for the version to
be AVAILABLE, and sends trips from the evaluation split over REST and gRPC. A model that
fails to load or to answer (wrong count, a probability outside [0, 1], REST and gRPC
disagreeing) gets an InfraBlessing with `blessed` = 0, and TFX's Pusher then pushes nothing.

A model that passes is also stamped with a warm-up file, as InfraValidator's
`RequestSpec(make_warmup=True)` does: a copy of the SavedModel with
`assets.extra/tf_serving_warmup_requests` (`serving.client.warmup`, real eval trips for both
serving signatures) goes into the InfraBlessing artifact, marked `has_model`, and the Pusher
pushes that copy. The stamped copy is served once more and must load (the server replays the
warm-up before AVAILABLE) and answer the same, so what is pushed is what was checked.
"""
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import path_constants

from pipeline.components.artifacts import BLESSED_PROPERTY, DETAIL_PROPERTY, HAS_MODEL_PROPERTY, read_serialized_examples, read_trips
from pipeline.configs import EVAL_SPLIT, SERVING_MODEL_NAME

logger = logging.getLogger(__name__)

LOAD_TIMEOUT_SECONDS = 60.0
CANDIDATE_VERSION = "1"
STAMPED_MODEL_FOLDER = path_constants.STAMPED_MODEL_DIR
# Eval trips the warm-up file is made of (its largest batch is 128).
WARMUP_TRIPS = 256


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


def check_model_serves(
    saved_model_dir: str, trips: List[Dict[str, object]], raw_dtypes: Optional[Dict[str, str]] = None
) -> Tuple[bool, str]:
    """Serves `saved_model_dir` locally and asks it about `trips` over REST and gRPC.

    Args:
        saved_model_dir: The SavedModel (with its warm-up file, if it has one: replayed first).
        trips: Raw trips to ask about.
        raw_dtypes: Filled with the raw-feature signature's input dtypes, when given.

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
        if raw_dtypes is not None:
            raw_dtypes.update(client.signature_inputs(client.model_metadata_rest(rest_address, SERVING_MODEL_NAME)))
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


@component
def ServingCheck(
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    infra_blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    num_trips: Parameter[int] = 32,
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Blesses the candidate for the Pusher only if the local model server loads and answers it.

    `code_fingerprint` (the project's code, which holds the model server) is part of the cache
    key only.
    """
    del code_fingerprint
    trips = read_trips(examples.uri, EVAL_SPLIT, num_trips)
    serving_model_dir = os.path.join(model.uri, "Format-Serving")
    raw_dtypes: Dict[str, str] = {}
    passed, detail = check_model_serves(serving_model_dir, trips, raw_dtypes)
    if passed:
        passed, detail = _stamp_with_warmup(serving_model_dir, examples.uri, trips, raw_dtypes, infra_blessing)
    infra_blessing.set_int_custom_property(BLESSED_PROPERTY, int(passed))
    infra_blessing.set_string_custom_property(DETAIL_PROPERTY, detail)
    logger.info("serving check %s: %s", "passed" if passed else "FAILED", detail)


def _stamp_with_warmup(serving_model_dir: str, examples_uri: str, trips, raw_dtypes: Dict[str, str], infra_blessing) -> Tuple[bool, str]:
    """Writes the candidate with a warm-up file into the InfraBlessing and checks it serves."""
    from modules.signatures import SERVING_TF_EXAMPLE
    from serving.client import warmup

    warmup_trips = read_trips(examples_uri, EVAL_SPLIT, WARMUP_TRIPS)
    serialized = read_serialized_examples(examples_uri, EVAL_SPLIT, WARMUP_TRIPS)
    try:
        logs = warmup.warmup_records(SERVING_MODEL_NAME, warmup_trips, serialized, raw_dtypes, SERVING_TF_EXAMPLE)
    except ValueError as error:
        return False, f"no warm-up file: {error}"
    stamped = os.path.join(infra_blessing.uri, STAMPED_MODEL_FOLDER)
    _copy_tree(serving_model_dir, stamped)
    warmup.write_warmup(stamped, logs)
    passed, detail = check_model_serves(stamped, trips)
    if not passed:
        return False, f"with its warm-up file: {detail}"
    infra_blessing.set_int_custom_property(HAS_MODEL_PROPERTY, 1)
    return True, f"{detail}; warmed up with {len(logs)} requests of {len(warmup_trips)} eval trips"
