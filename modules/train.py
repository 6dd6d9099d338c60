"""The Trainer step: `run_fn` trains the model on the raw examples put through the Transform graph
and exports the SavedModel.

TFX entry point: `modules.train.run_fn`.
"""
import logging
import os
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from modules import features
from modules.autograph import leave_libraries_unconverted
from modules.hparams import HParams
from modules.model import as_model_inputs, build_model, categorical_sizes
from modules.signatures import make_signatures
from modules.warm_start import WARM_START_KEY, WARM_START_STEPS_KEY, WarmStartMismatch, WarmStartRecord, warm_start

logger = logging.getLogger(__name__)


def dataset(
    file_pattern: List[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    model_input_names: List[str],
    seed: int,
) -> tf.data.Dataset:
    """Returns batches of (model inputs, label) from raw examples put through the Transform
    graph as they are read, shuffled with `seed`.

    The raw trips are read with the schema Transform read them with, and transformed by the
    graph's Keras layer, the one the serving signatures carry: training sees what serving
    computes. Transform writes no transformed examples (`EnrichingTransform`).
    """
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle_seed=seed),
        tf_transform_output.raw_metadata.schema,
    )
    transform_layer = tf_transform_output.transform_features_layer()

    def model_inputs_and_label(raw):
        transformed = transform_layer(raw)
        return as_model_inputs(transformed, model_input_names), transformed[features.LABEL_KEY]

    return dataset.map(model_inputs_and_label, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def run_fn(fn_args: FnArgs) -> None:
    """Trains the big-tipper model and saves it with its serving signatures.

    Args:
        fn_args: What TFX's Trainer passes: raw example files, the Transform graph,
            train/eval steps, the serving model directory, `custom_config` with
            hyperparameter overrides, and the Tuner's best hyperparameters when the pipeline
            ran it (`modules.hparams.HParams.from_tuned`). With warm start on
            (`custom_config["warm_start"]`), `base_model` is the serving model's SavedModel, or
            None when nothing serves yet.

    A warm-started model trains `custom_config["warm_start_steps"]` steps (default: the
    Trainer's); whether it was warm-started, and why not, is logged and written as
    `modules.warm_start.RECORD_FILE` into the Model artifact.

    Raises:
        OSError, ValueError: when warm start is on and the base model does not load.
    """
    leave_libraries_unconverted()
    hparams = HParams.from_tuned(fn_args.custom_config or {}, fn_args.hyperparameters)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    keras.utils.set_random_seed(hparams.seed)
    model = build_model(categorical_sizes(tf_transform_output, hparams.external_features), hparams)
    record = _warm_start(model, fn_args, tf_transform_output)
    train_dataset = dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, hparams.train_batch_size, model.input_names, hparams.seed
    )
    eval_dataset = dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, hparams.eval_batch_size, model.input_names, hparams.seed
    )
    logger.info("training for %d steps with %s", record.train_steps, hparams)
    model.fit(
        train_dataset,
        epochs=1,
        steps_per_epoch=record.train_steps,
        validation_data=eval_dataset,
        validation_steps=fn_args.eval_steps,
        verbose=2,
    )
    # save_traces=False: the signatures are what serving and the Evaluator call; tracing every
    # Keras layer's call function on top took about 9 s of the Trainer's time, and the model
    # still reloads with tf_keras from its config (standard layers only).
    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        signatures=make_signatures(model, tf_transform_output),
        save_traces=False,
    )
    # Beside the SavedModel, in the Model artifact: lineage shows it, the Pusher does not push it.
    record.write(os.path.dirname(os.path.normpath(fn_args.serving_model_dir)))


def _warm_start(model: keras.Model, fn_args: FnArgs, tf_transform_output: tft.TFTransformOutput) -> WarmStartRecord:
    """Warm-starts `model` from `fn_args.base_model` when asked and possible; returns what was done."""
    config = fn_args.custom_config or {}
    requested = bool(config.get(WARM_START_KEY, False))
    record = WarmStartRecord(requested=requested, base_model=fn_args.base_model, warm_started=False, reason="", train_steps=fn_args.train_steps)
    if not requested:
        record.reason = "warm start is off (PipelineOptions.warm_start)"
    elif not fn_args.base_model:
        record.reason = "no model serves yet: nothing to start from"
    else:
        try:
            record.layers = warm_start(model, fn_args.base_model, tf_transform_output)
        except WarmStartMismatch as error:
            record.reason = f"the serving model's layers do not fit this model: {error}"
            logger.warning("warm start from %s: NOT warm-started, training from scratch: %s", fn_args.base_model, error)
        else:
            record.warm_started = True
            record.train_steps = int(config.get(WARM_START_STEPS_KEY) or fn_args.train_steps)
    if record.warm_started:
        for layer, decision in sorted(record.layers.items()):
            logger.info("warm start: %s %s", layer, decision)
        logger.info("warm-started from %s; training %d steps (from scratch: %d)", fn_args.base_model, record.train_steps, fn_args.train_steps)
    else:
        logger.info("training from scratch: %s", record.reason)
    return record
