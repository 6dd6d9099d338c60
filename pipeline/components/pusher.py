"""TFX's Pusher, minus one needless push: a model identical to the version that serves.

What it pushes is the ServingCheck's stamped copy of the model, with its warm-up file
(`pipeline.components.serving_check`), when the InfraBlessing holds one; else the Trainer's
model, as TFX's Pusher does.

Re-running the pipeline on unchanged data reuses the cached model, which the Evaluator then
blesses against itself. TFX's Pusher would copy it again as a new version, identical to the
one serving. This executor compares the candidate's files with the version that serves from
the push destination (`serving.versions.serving_version`: what the model config beside it
pins, else the newest) and, when they match, records "not pushed" with the reason instead.
"""
import hashlib
import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils, proto_utils

from pipeline.components.artifacts import HAS_MODEL_PROPERTY, NOT_PUSHED_REASON_PROPERTY
from pipeline.configs import SERVING_MODEL_NAME
from serving.versions import MODEL_CARD_FILES, serving_version, version_dir


def model_digest(model_dir: str) -> str:
    """Returns a SHA-256 over every file of a SavedModel folder, by relative path, its model
    card left out (written next to the model after the push)."""
    digest = hashlib.sha256()
    for root, _, files in sorted(tf.io.gfile.walk(model_dir)):
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, model_dir).replace(os.sep, "/")
            if relative in MODEL_CARD_FILES:
                continue
            digest.update(relative.encode())
            with tf.io.gfile.GFile(path, "rb") as model_file:
                digest.update(model_file.read())
    return digest.hexdigest()


class Executor(tfx_pusher_executor.Executor):
    """Pushes like TFX's Pusher unless the serving version is the same model."""

    def GetModelPath(self, input_dict: Dict[str, List[Any]]) -> str:
        """The stamped model of the InfraBlessing (with its warm-up file) when it has one; else
        the Trainer's model, as TFX's Pusher chooses."""
        infra_blessings = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY)
        if infra_blessings:
            infra_blessing = artifact_utils.get_single_instance(infra_blessings)
            if infra_blessing.get_int_custom_property(HAS_MODEL_PROPERTY):
                return path_utils.stamped_model_path(infra_blessing.uri)
        return super().GetModelPath(input_dict)

    def Do(
        self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]
    ) -> None:
        """Skips the push of an already-served model, else defers to TFX's Pusher."""
        push_destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination)
        base_directory = push_destination.filesystem.base_directory
        served = serving_version(base_directory, SERVING_MODEL_NAME) if base_directory else None
        if served is not None and self.CheckBlessing(input_dict):
            candidate = self.GetModelPath(input_dict)
            if model_digest(candidate) == model_digest(version_dir(base_directory, served)):
                model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                self._MarkNotPushed(model_push)
                model_push.set_string_custom_property(
                    NOT_PUSHED_REASON_PROPERTY, json.dumps({"already_serving_version": str(served)})
                )
                return
        super().Do(input_dict, output_dict, exec_properties)
