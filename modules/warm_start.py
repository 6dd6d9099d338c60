"""Warm start: a new model begins from the weights of the pipeline's baseline model, where they fit.

The Trainer passes the model resolver's output as `fn_args.base_model` when the pipeline asks
for it (`PipelineOptions.warm_start`): the same model the Evaluator compares with, which is the
version that serves from the Pusher's destination with `PipelineOptions.baseline` "serving" (the
default), and TFX's latest blessed model with "latest_blessed" (Vertex AI Pipelines), which need
not be the one an Endpoint serves. Each layer is decided on its own, and the decisions are all or
nothing: either every layer with weights takes the base model's, or none does and the model
trains from scratch, with the reason recorded.

Why per token for the vocabulary embeddings: Transform orders a vocabulary by frequency over the
whole training window, so a new span reorders it (and adds tokens), and row i of the base model's
`company` embedding is in general another company than row i here. Copying such a matrix by
position would give each company another company's embedding. So the rows are matched by token:
the base model's SavedModel carries its vocabulary files as assets, a token found in both keeps
its row, a new token keeps its fresh initialisation, and the "missing" row and the
out-of-vocabulary buckets keep theirs by position (their meaning does not depend on the
vocabulary). A vocabulary whose base file is absent, or whose base embedding is not laid out as
`1 + tokens + NUM_OOV_BUCKETS` rows of the same width, cannot be matched: the model then trains
from scratch and says why.

Layers of fixed meaning (hour, month, community areas, the coordinate grid, the holiday
calendar, the dense tower) are copied when their shapes match. Quantile buckets and z-scores are
recomputed over the new window, so bucket k covers nearly, not exactly, the same fares as before;
a few training steps adapt to that, as they do to the new span itself.
"""
import dataclasses
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import features

logger = logging.getLogger(__name__)

# Written beside the Trainer's SavedModel (in the Model artifact, outside what is pushed), so
# lineage shows for each model whether and how it was warm-started.
RECORD_FILE = "warm_start.json"
# Keys of the Trainer's custom_config (set by the pipeline when PipelineOptions.warm_start is on).
WARM_START_KEY = "warm_start"
WARM_START_STEPS_KEY = "warm_start_steps"

COPIED = "copied"
REMAPPED = "remapped by token"


@dataclasses.dataclass
class WarmStartRecord:
    """What the Trainer did about warm starting one model."""

    requested: bool
    base_model: Optional[str]
    warm_started: bool
    # Why the model trained from scratch ("" when it was warm-started).
    reason: str
    # Layer name -> what was done with its weights (only when warm-started).
    layers: Dict[str, str] = dataclasses.field(default_factory=dict)
    train_steps: int = 0

    def write(self, model_artifact_dir: str) -> str:
        """Writes the record as `RECORD_FILE` into the Model artifact's folder; returns the path."""
        path = os.path.join(model_artifact_dir, RECORD_FILE)
        tf.io.gfile.makedirs(model_artifact_dir)
        with tf.io.gfile.GFile(path, "w") as record_file:
            record_file.write(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")
        return path


def read_record(model_artifact_dir: str) -> Optional[WarmStartRecord]:
    """The record a Trainer wrote into a Model artifact's folder, or None for a model trained before it existed."""
    path = os.path.join(model_artifact_dir, RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as record_file:
        return WarmStartRecord(**json.loads(record_file.read()))


class WarmStartMismatch(ValueError):
    """A layer of the new model cannot take the base model's weights; the message says which and why."""


def _read_tokens(path: str) -> List[bytes]:
    with tf.io.gfile.GFile(path, "rb") as vocabulary_file:
        return [line.rstrip(b"\n") for line in vocabulary_file]


def _vocabulary_layers() -> Dict[str, str]:
    """Embedding layer name -> vocabulary name, for every column mapped through a vocabulary."""
    keys = features.VOCABULARY_FEATURE_KEYS + features.INTEGER_VOCABULARY_FEATURE_KEYS
    return {features.embedding_layer_name(features.transformed_name(key)): features.vocabulary_name(key) for key in keys}


def remap_embedding(
    base_matrix: np.ndarray, base_tokens: List[bytes], new_matrix: np.ndarray, new_tokens: List[bytes], layer: str
) -> np.ndarray:
    """The new embedding matrix with the base model's rows moved to where each token's id is now.

    Rows follow `modules.preprocessing._vocabulary_ids`: row 0 for a missing value, then one row per
    vocabulary token, then `features.NUM_OOV_BUCKETS` out-of-vocabulary buckets.

    Raises:
        WarmStartMismatch: when either matrix is not laid out that way or their widths differ.
    """
    for name, matrix, tokens in (("base model's", base_matrix, base_tokens), ("new", new_matrix, new_tokens)):
        expected = 1 + len(tokens) + features.NUM_OOV_BUCKETS
        if matrix.shape[0] != expected:
            raise WarmStartMismatch(
                f"{layer}: the {name} embedding has {matrix.shape[0]} rows for {len(tokens)} vocabulary tokens, "
                f"not 1 + {len(tokens)} + {features.NUM_OOV_BUCKETS} (missing, tokens, out-of-vocabulary buckets)"
            )
    if base_matrix.shape[1] != new_matrix.shape[1]:
        raise WarmStartMismatch(f"{layer}: embedding width {base_matrix.shape[1]} in the base model, {new_matrix.shape[1]} here")
    remapped = new_matrix.copy()
    remapped[features.VOCABULARY_MISSING_ID] = base_matrix[features.VOCABULARY_MISSING_ID]
    base_row = {token: 1 + index for index, token in enumerate(base_tokens)}
    for index, token in enumerate(new_tokens):
        if token in base_row:
            remapped[1 + index] = base_matrix[base_row[token]]
    oov = features.NUM_OOV_BUCKETS
    remapped[1 + len(new_tokens) :] = base_matrix[1 + len(base_tokens) :][:oov]
    return remapped


def _vocabulary_decision(base_tokens: List[bytes], new_tokens: List[bytes]) -> str:
    if base_tokens == new_tokens:
        return f"{COPIED}: the same vocabulary ({len(new_tokens)} tokens)"
    base_index = {token: index for index, token in enumerate(base_tokens)}
    kept = sum(token in base_index for token in new_tokens)
    moved = sum(1 for index, token in enumerate(new_tokens) if base_index.get(token, index) != index)
    return (
        f"{REMAPPED}: {kept} of {len(new_tokens)} tokens keep their base rows ({moved} at a new id), "
        f"{len(new_tokens) - kept} new tokens start fresh, {len(base_index) - kept} base tokens are gone"
    )


def warm_start(model: keras.Model, base_model_dir: str, tf_transform_output: tft.TFTransformOutput) -> Dict[str, str]:
    """Sets every weight of `model` from the base model's, or none of them.

    Args:
        model: The freshly built model, whose layers are named as `modules.model.build_model` names them.
        base_model_dir: The base model's SavedModel (the Trainer's `fn_args.base_model`).
        tf_transform_output: This training's Transform output, for its vocabularies.

    Returns:
        Layer name -> what was done with its weights.

    Raises:
        WarmStartMismatch: when some layer cannot take the base model's weights (the model is
            left as it was built).
        OSError, ValueError: when the base model does not load (the Evaluator could not compare
            with it either).
    """
    base = keras.models.load_model(base_model_dir, compile=False)
    base_layers = {layer.name: layer for layer in base.layers}
    vocabulary_layers = _vocabulary_layers()
    new_weights: Dict[str, List[np.ndarray]] = {}
    decisions: Dict[str, str] = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in base_layers:
            raise WarmStartMismatch(f"{layer.name}: the base model has no layer of that name")
        base_weights = base_layers[layer.name].get_weights()
        if layer.name in vocabulary_layers:
            vocabulary = vocabulary_layers[layer.name]
            base_vocabulary_path = os.path.join(base_model_dir, "assets", vocabulary)
            if not tf.io.gfile.exists(base_vocabulary_path):
                raise WarmStartMismatch(
                    f"{layer.name}: the base model carries no vocabulary file {base_vocabulary_path}, so which token "
                    "each of its rows embeds is unknown"
                )
            base_tokens = _read_tokens(base_vocabulary_path)
            new_tokens = _read_tokens(tf_transform_output.vocabulary_file_by_name(vocabulary))
            new_weights[layer.name] = [remap_embedding(base_weights[0], base_tokens, weights[0], new_tokens, layer.name)]
            decisions[layer.name] = _vocabulary_decision(base_tokens, new_tokens)
            continue
        shapes, base_shapes = [w.shape for w in weights], [w.shape for w in base_weights]
        if shapes != base_shapes:
            raise WarmStartMismatch(f"{layer.name}: weight shapes {base_shapes} in the base model, {shapes} here")
        new_weights[layer.name] = base_weights
        decisions[layer.name] = COPIED
    for layer in model.layers:
        if layer.name in new_weights:
            layer.set_weights(new_weights[layer.name])
    return decisions
