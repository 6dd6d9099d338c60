"""The Evaluator's baseline: the model that serves now, not merely the latest blessed one.

TFX's LatestBlessedModelStrategy hands the Evaluator the newest blessed Model. After
`python -m pipeline rollback` pins an older version, that is no longer what serves, so a
candidate would be compared with a model no client sees. This resolver strategy asks
`serving.versions.serving_version` which version serves from the Pusher's destination (what
the model config beside it pins, else the newest), finds the PushedModel that recorded that
version in ML Metadata, and resolves the Model the Pusher pushed then.

When nothing is pushed yet there is no baseline, and the Evaluator judges the floors only.
When a version serves that ML Metadata never saw pushed, or the model config cannot say which
version serves, the resolver fails the run: comparing with nothing would bless a candidate
that was never measured against what serves.
"""
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver

from serving.versions import serving_version

# The Resolver's input channels.
MODEL_KEY = "model"
PUSHED_MODEL_KEY = "pushed_model"
# What TFX's Pusher records on its PushedModel output, and the key of the Pusher's model input.
_PUSHED = "pushed"
_PUSHED_VERSION = "pushed_version"
_PUSHED_DESTINATION = "pushed_destination"
_PUSHER_MODEL_INPUT = "model"


class ServingBaselineError(RuntimeError):
    """The model that serves cannot be found in ML Metadata; the message says what is missing."""


def _string(artifact: types.Artifact, name: str) -> str:
    return str(artifact.get_string_custom_property(name) or artifact.get_int_custom_property(name) or "")


def pushes_of(pushed_models: List[types.Artifact], version: int, serving_model_dir: str) -> List[types.Artifact]:
    """The completed pushes that recorded `version`, newest first; pushes into
    `serving_model_dir/<version>` come before pushes of the same number elsewhere."""
    pushes = [
        artifact
        for artifact in pushed_models
        if artifact.get_int_custom_property(_PUSHED) == 1 and _string(artifact, _PUSHED_VERSION) == str(version)
    ]
    wanted = os.path.realpath(os.path.join(serving_model_dir, str(version)))
    return sorted(pushes, key=lambda a: (os.path.realpath(_string(a, _PUSHED_DESTINATION)) == wanted, a.id), reverse=True)


def model_of_push(store: mlmd.MetadataStore, push_id: int) -> Optional[int]:
    """The id of the Model the Pusher execution that wrote a PushedModel took as its input."""
    outputs = [
        event for event in store.get_events_by_artifact_ids([push_id]) if event.type == metadata_store_pb2.Event.OUTPUT
    ]
    for output in outputs:
        for event in store.get_events_by_execution_ids([output.execution_id]):
            key = event.path.steps[0].key if event.path.steps else ""
            if event.type == metadata_store_pb2.Event.INPUT and key == _PUSHER_MODEL_INPUT:
                return event.artifact_id
    return None


class ServingModelStrategy(resolver.ResolverStrategy):
    """Resolves the Model that serves from a Pusher destination, and its PushedModel.

    Use with `tfx.dsl.Resolver(strategy_class=ServingModelStrategy, config={"serving_model_dir":
    ..., "model_name": ...}, model=Channel(type=Model), pushed_model=Channel(type=PushedModel))`.
    """

    def __init__(self, serving_model_dir: str, model_name: str):
        self._serving_model_dir = serving_model_dir
        self._model_name = model_name

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
    ) -> Optional[Dict[str, List[types.Artifact]]]:
        """Returns {model: [the serving Model], pushed_model: [its push]}, both empty when
        nothing serves yet.

        Raises:
            ServingBaselineError: when a version serves that ML Metadata has no push of, or
                whose pushed Model is not among the pipeline's models.
            serving.versions.ServingConfigError: when the model config cannot say which
                version serves.
        """
        version = serving_version(self._serving_model_dir, self._model_name)
        if version is None:
            return {MODEL_KEY: [], PUSHED_MODEL_KEY: []}
        pushes = pushes_of(input_dict.get(PUSHED_MODEL_KEY, []), version, self._serving_model_dir)
        if not pushes:
            raise ServingBaselineError(
                f"version {version} serves from {self._serving_model_dir}, but this pipeline's ML Metadata has no push of it, "
                "so the candidate cannot be compared with what serves. Point --metadata-url at the store that pushed it, "
                "pin a version this store pushed (python -m pipeline rollback --list), or move the versions it does not "
                "know out of the serving directory"
            )
        models = {model.id: model for model in input_dict.get(MODEL_KEY, [])}
        model_id = model_of_push(store, pushes[0].id)
        if model_id not in models:
            raise ServingBaselineError(
                f"version {version} was pushed by PushedModel #{pushes[0].id}, whose Model "
                f"{'#' + str(model_id) if model_id else '(none recorded)'} is not among this pipeline's models"
            )
        return {MODEL_KEY: [models[model_id]], PUSHED_MODEL_KEY: [pushes[0]]}
