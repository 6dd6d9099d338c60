"""The Trainer step: `run_fn` trains the model on Transform's outputs and exports the SavedModel.

TFX entry point: `modules.train.run_fn`.
"""
import logging
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import features
from modules.hparams import HParams
from modules.model import as_model_inputs, build_model, categorical_sizes
from modules.signatures import make_signatures

logger = logging.getLogger(__name__)


def dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    model_input_names: List[str],
    seed: int,
) -> tf.data.Dataset:
    """Returns batches of (model inputs, label) read from transformed examples, shuffled with `seed`."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL_KEY, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema,
    )
    return dataset.map(
        lambda transformed, label: (as_model_inputs(transformed, model_input_names), label)
    ).prefetch(tf.data.AUTOTUNE)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the big-tipper model and saves it with its serving signatures.

    Args:
        fn_args: What TFX's Trainer passes: transformed example files, the Transform graph,
            train/eval steps, the serving model directory, `custom_config` with
            hyperparameter overrides, and the Tuner's best hyperparameters when the pipeline
            ran it (`modules.hparams.HParams.from_tuned`).
    """
    hparams = HParams.from_tuned(fn_args.custom_config or {}, fn_args.hyperparameters)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    keras.utils.set_random_seed(hparams.seed)
    model = build_model(categorical_sizes(tf_transform_output, hparams.external_features), hparams)
    train_dataset = dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, hparams.train_batch_size, model.input_names, hparams.seed
    )
    eval_dataset = dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, hparams.eval_batch_size, model.input_names, hparams.seed
    )
    logger.info("training for %d steps with %s", fn_args.train_steps, hparams)
    model.fit(
        train_dataset,
        epochs=1,
        steps_per_epoch=fn_args.train_steps,
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
