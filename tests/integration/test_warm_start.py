"""Warm start on the shared small run's Transform output and pushed model: the weights a fresh
model gets, and run_fn with warm start on."""
import logging
import os
import shutil

import numpy as np
import pytest

from modules import features
from modules.warm_start import COPIED, RECORD_FILE, REMAPPED, WARM_START_KEY, WARM_START_STEPS_KEY, read_record
from pipeline import component_ids, configs

pytestmark = pytest.mark.slow

COMPANY_KEY = "company"
assert COMPANY_KEY in features.VOCABULARY_FEATURE_KEYS
COMPANY_EMBEDDING = features.embedding_layer_name(features.transformed_name(COMPANY_KEY))
PAYMENT_TYPE_EMBEDDING = features.embedding_layer_name(features.transformed_name(features.PAYMENT_TYPE_KEY))
# The first layer of the dense tower (modules.model.build_model).
HIDDEN_0 = "hidden_0"


def _trainer_inputs(connection):
    """The shared run's Trainer inputs as TFX artifacts, by input key."""
    from tfx.orchestration import metadata
    from tfx.types import artifact_utils

    from pipeline.ops import lineage

    with metadata.Metadata(connection) as handler:
        store = handler.store
        context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_ids.TRAINER}")
        trainer = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
        inputs = lineage.MetadataGraph(store, configs.PIPELINE_NAME).inputs(trainer.id)
        types = {artifact_type.id: artifact_type for artifact_type in store.get_artifact_types()}
        return {key: [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts] for key, artifacts in inputs.items()}


def _fn_args(small_pipeline_run, tmp_path, base_model: str):
    from tfx.components.trainer import fn_args_utils

    fn_args = fn_args_utils.get_common_fn_args(
        _trainer_inputs(small_pipeline_run["connection"]),
        {
            "train_args": '{"num_steps": 7}',
            "eval_args": '{"num_steps": 1}',
            "custom_config": f'{{"{WARM_START_KEY}": true, "{WARM_START_STEPS_KEY}": 3}}',
        },
    )
    fn_args.base_model = base_model
    fn_args.serving_model_dir = str(tmp_path / "model" / "Format-Serving")
    return fn_args


def _copy_of_serving_model(small_pipeline_run, target):
    serving_dir = small_pipeline_run["serving_model_dir"]
    shutil.copytree(serving_dir / sorted(os.listdir(serving_dir))[-1], target)
    return target


def _fresh_model(fn_args):
    """The model run_fn builds before it trains, and this training's Transform output."""
    import tensorflow_transform as tft

    from modules.hparams import HParams
    from modules.model import build_model, categorical_sizes

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    hparams = HParams.from_tuned(fn_args.custom_config or {}, fn_args.hyperparameters)
    return build_model(categorical_sizes(tf_transform_output, hparams.external_features), hparams), tf_transform_output


def test_warm_start_sets_the_base_weights_and_moves_each_embedding_row_to_its_tokens_new_id(small_pipeline_run, tmp_path):
    import tf_keras as keras

    from modules.warm_start import warm_start

    base = _copy_of_serving_model(small_pipeline_run, tmp_path / "base")
    # The base model's company vocabulary, reversed: base row 1 + i now stands for the token
    # that is at id 1 + (n - 1 - i) in this training's vocabulary, so every row must move.
    vocabulary_path = base / "assets" / features.vocabulary_name(COMPANY_KEY)
    tokens = vocabulary_path.read_bytes().rstrip(b"\n").split(b"\n")
    vocabulary_path.write_bytes(b"".join(token + b"\n" for token in reversed(tokens)))
    count = len(tokens)
    base_model = keras.models.load_model(str(base), compile=False)
    base_weights = {name: base_model.get_layer(name).get_weights() for name in (COMPANY_EMBEDDING, PAYMENT_TYPE_EMBEDDING, HIDDEN_0)}
    model, tf_transform_output = _fresh_model(_fn_args(small_pipeline_run, tmp_path, str(base)))
    # This training's vocabulary is the one the base model was trained with, unreversed.
    assert tf_transform_output.vocabulary_by_name(features.vocabulary_name(COMPANY_KEY)) == tokens
    # A fresh model differs from the base, so what follows can only hold if warm start set it.
    assert not np.array_equal(model.get_layer(HIDDEN_0).get_weights()[0], base_weights[HIDDEN_0][0])

    decisions = warm_start(model, str(base), tf_transform_output)

    # Layers of fixed meaning: the base model's weights, kernel and bias.
    for new, old in zip(model.get_layer(HIDDEN_0).get_weights(), base_weights[HIDDEN_0]):
        np.testing.assert_array_equal(new, old)
    assert decisions[HIDDEN_0] == COPIED
    # An unchanged vocabulary: every token keeps its id and its base row.
    np.testing.assert_array_equal(model.get_layer(PAYMENT_TYPE_EMBEDDING).get_weights()[0], base_weights[PAYMENT_TYPE_EMBEDDING][0])
    assert decisions[PAYMENT_TYPE_EMBEDDING].startswith(f"{COPIED}: the same vocabulary")
    # A reordered vocabulary: token j's row is the base row the (reversed) base vocabulary gave it.
    company, base_company = model.get_layer(COMPANY_EMBEDDING).get_weights()[0], base_weights[COMPANY_EMBEDDING][0]
    for new_id in range(count):
        np.testing.assert_array_equal(company[1 + new_id], base_company[1 + (count - 1 - new_id)], err_msg=f"company token {tokens[new_id]!r}")
    assert not np.array_equal(company[1], base_company[1])
    # The missing row and the out-of-vocabulary buckets keep theirs by position.
    np.testing.assert_array_equal(company[features.VOCABULARY_MISSING_ID], base_company[features.VOCABULARY_MISSING_ID])
    np.testing.assert_array_equal(company[1 + count :], base_company[1 + count :])
    moved = count - count % 2  # the middle token of an odd count stays where it was
    assert decisions[COMPANY_EMBEDDING] == (
        f"{REMAPPED}: {count} of {count} tokens keep their base rows ({moved} at a new id), 0 new tokens start fresh, 0 base tokens are gone"
    )


def test_a_base_model_whose_vocabulary_cannot_be_matched_trains_from_scratch_and_says_why(small_pipeline_run, tmp_path, caplog):
    from modules.train import run_fn

    base = _copy_of_serving_model(small_pipeline_run, tmp_path / "base")
    # One token more than the embedding has rows for (as a model made with another number of
    # out-of-vocabulary buckets would have): which company each row stands for is not known.
    with open(base / "assets" / features.vocabulary_name(COMPANY_KEY), "a") as vocabulary:
        vocabulary.write("Imaginary Cab Co\n")
    with caplog.at_level(logging.INFO, logger="modules.train"):
        run_fn(_fn_args(small_pipeline_run, tmp_path, str(base)))
    record = read_record(str(tmp_path / "model"))
    assert record.requested and not record.warm_started
    assert record.base_model == str(base)
    assert record.reason.startswith(f"the serving model's layers do not fit this model: {COMPANY_EMBEDDING}: the base model's embedding has")
    assert record.train_steps == 7  # from scratch: the full steps
    assert "NOT warm-started, training from scratch" in caplog.text and COMPANY_EMBEDDING in caplog.text
    assert (tmp_path / "model" / "Format-Serving" / "saved_model.pb").exists()


def test_the_serving_model_of_the_same_data_warm_starts_every_layer(small_pipeline_run, tmp_path):
    from modules.train import run_fn

    base = str(_copy_of_serving_model(small_pipeline_run, tmp_path / "base"))
    run_fn(_fn_args(small_pipeline_run, tmp_path, base))
    record = read_record(str(tmp_path / "model"))
    assert record.warm_started and record.reason == "" and record.train_steps == 3
    assert record.layers[HIDDEN_0] == COPIED
    assert record.layers[COMPANY_EMBEDDING].startswith(f"{COPIED}: the same vocabulary")
    assert os.path.exists(tmp_path / "model" / RECORD_FILE)
