"""Warm start: the Trainer gets the serving model only when asked, and embedding rows follow their tokens."""
import json

import numpy as np
import pytest

from modules import features
from modules.warm_start import WARM_START_KEY, WARM_START_STEPS_KEY, WarmStartMismatch, remap_embedding
from pipeline import component_ids, configs
from pipeline.dag import create_pipeline
from pipeline.validation.table_sources import resolve_sources

OOV = features.NUM_OOV_BUCKETS
COMPANY_EMBEDDING = features.embedding_layer_name(features.transformed_name("company"))
PAYMENT_TYPE_EMBEDDING = features.embedding_layer_name(features.transformed_name(features.PAYMENT_TYPE_KEY))


def _trainer(**options):
    built = create_pipeline(
        "p", "/tmp/root", "/tmp/data", [1, 2], "/tmp/serving", None,
        configs.PipelineOptions(external_tables=resolve_sources(), **options),
    )
    return {node.id: node for node in built.components}[component_ids.TRAINER]


def test_the_trainer_gets_the_serving_model_only_when_warm_start_is_asked_for():
    default = _trainer()
    assert "base_model" not in default.inputs
    assert WARM_START_KEY not in json.loads(default.exec_properties["custom_config"])

    warm = _trainer(warm_start=True, warm_start_steps=60)
    assert warm.inputs["base_model"].producer_component_id == component_ids.MODEL_RESOLVER
    config = json.loads(warm.exec_properties["custom_config"])
    assert config[WARM_START_KEY] is True and config[WARM_START_STEPS_KEY] == 60
    # A model with nothing to start from trains the full steps.
    assert json.loads(warm.exec_properties["train_args"])["num_steps"] == configs.PipelineOptions().train_steps


def test_warm_start_steps_must_be_positive():
    with pytest.raises(ValueError, match="warm_start_steps must be at least 1, got 0"):
        configs.PipelineOptions(warm_start_steps=0)


def _matrix(tokens, width=2, offset=0.0):
    """Rows: missing, one per token, OOV buckets; row r holds r + offset in every column."""
    rows = 1 + len(tokens) + OOV
    return np.repeat(np.arange(rows, dtype=np.float32)[:, None] + offset, width, axis=1)


def test_embedding_rows_follow_their_tokens_when_the_vocabulary_is_reordered():
    base_tokens = [b"Cash", b"Credit Card", b"No Charge"]
    new_tokens = [b"Credit Card", b"Mobile", b"Cash"]
    base = _matrix(base_tokens)
    fresh = _matrix(new_tokens, offset=100.0)
    remapped = remap_embedding(base, base_tokens, fresh, new_tokens, PAYMENT_TYPE_EMBEDDING)
    assert remapped[features.VOCABULARY_MISSING_ID, 0] == 0  # missing keeps its row
    assert remapped[1, 0] == 2  # Credit Card: base row 2
    assert remapped[2, 0] == 102  # Mobile is new: fresh initialisation
    assert remapped[3, 0] == 1  # Cash: base row 1
    assert list(remapped[4:, 0]) == [4 + bucket for bucket in range(OOV)]  # OOV buckets by position


def test_an_embedding_not_laid_out_as_its_vocabulary_is_refused_by_name():
    tokens = [b"a", b"b"]
    with pytest.raises(WarmStartMismatch, match=f"{COMPANY_EMBEDDING}: the base model's embedding has 9 rows for 2 vocabulary tokens"):
        remap_embedding(np.zeros((9, 2)), tokens, _matrix(tokens), tokens, COMPANY_EMBEDDING)
    with pytest.raises(WarmStartMismatch, match=f"{COMPANY_EMBEDDING}: embedding width 4 in the base model, 2 here"):
        remap_embedding(_matrix(tokens, width=4), tokens, _matrix(tokens), tokens, COMPANY_EMBEDDING)


def test_every_vocabulary_embedding_warm_start_matches_by_token_is_a_layer_of_the_model():
    import tf_keras as keras

    from modules.hparams import HParams
    from modules.model import build_model
    from modules.warm_start import _vocabulary_layers

    # A model of the vocabulary columns alone (3 tokens each): its embeddings are theirs.
    keys = features.VOCABULARY_FEATURE_KEYS + features.INTEGER_VOCABULARY_FEATURE_KEYS
    model = build_model({features.transformed_name(key): 1 + 3 + OOV for key in keys}, HParams())
    embeddings = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Embedding)}
    assert set(_vocabulary_layers()) == embeddings
    assert _vocabulary_layers()[PAYMENT_TYPE_EMBEDDING] == features.vocabulary_name(features.PAYMENT_TYPE_KEY)
