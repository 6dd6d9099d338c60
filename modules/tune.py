"""The Tuner step: `tuner_fn` searches `modules.hparams.SEARCH_SPACE` with KerasTuner.

TFX entry point: `modules.tune.tuner_fn`, run by TFX's Tuner component when the pipeline is
built with `PipelineOptions(tune=True)` (`run_local.py --tune`); the Trainer then trains with
the best values found (`HParams.from_tuned`).

Each trial builds the same model as the Trainer (`modules.model.build_model`) from the trial's
values over the defaults, trains it for the Trainer's steps on the Transform's train split and
scores AUC on the eval split. The model is tf-keras (Keras 2) while KerasTuner 1.4 accepts only
Keras 3 models from a HyperModel, so the search overrides `run_trial`: it builds and trains the
model itself and returns the score, which is the trial's objective.
"""
import logging
from typing import Any, Dict

import keras_tuner
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from modules.autograph import leave_libraries_unconverted
from modules.hparams import SEARCH_SPACE, HParams
from modules.model import build_model, categorical_sizes
from modules.train import dataset

logger = logging.getLogger(__name__)

OBJECTIVE = "val_auc"
# Trials of a search unless the Tuner's custom_config says otherwise ("max_trials").
DEFAULT_MAX_TRIALS = 8


def search_space() -> keras_tuner.HyperParameters:
    """`SEARCH_SPACE` as KerasTuner choices."""
    space = keras_tuner.HyperParameters()
    for name, values in SEARCH_SPACE.items():
        space.Choice(name, list(values))
    return space


class _TaxiSearch(keras_tuner.RandomSearch):
    """A random search whose trials build and train the Trainer's own model."""

    def __init__(self, fn_args: FnArgs, **kwargs: Any):
        super().__init__(hyperparameters=search_space(), **kwargs)
        self._fn_args = fn_args
        self._transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)

    def run_trial(self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any) -> Dict[str, float]:
        del args, kwargs  # the data comes from fn_args
        fn_args = self._fn_args
        hparams = HParams.from_tuned(fn_args.custom_config or {}, {"values": trial.hyperparameters.values})
        keras.utils.set_random_seed(hparams.seed)
        model = build_model(categorical_sizes(self._transform_output, hparams.external_features), hparams)
        names = model.input_names
        train = dataset(fn_args.train_files, fn_args.data_accessor, self._transform_output, hparams.train_batch_size, names, hparams.seed)
        evaluation = dataset(fn_args.eval_files, fn_args.data_accessor, self._transform_output, hparams.eval_batch_size, names, hparams.seed)
        model.fit(train, epochs=1, steps_per_epoch=fn_args.train_steps, verbose=0)
        scores = model.evaluate(evaluation, steps=fn_args.eval_steps, return_dict=True, verbose=0)
        logger.info("trial %s: AUC %.4f", trial.hyperparameters.values, scores["auc"])
        return {OBJECTIVE: float(scores["auc"])}


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """Returns a random search over `SEARCH_SPACE`, scored by eval-split AUC.

    Args:
        fn_args: What TFX's Tuner passes: raw example files, the Transform graph, the
            train/eval steps of each trial, a working directory, and `custom_config` with
            "max_trials" and the hyperparameter overrides every trial starts from.
    """
    leave_libraries_unconverted()
    config = fn_args.custom_config or {}
    tuner = _TaxiSearch(
        fn_args,
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        max_trials=int(config.get("max_trials", DEFAULT_MAX_TRIALS)),
        seed=int(config.get("seed", 0)),
        directory=fn_args.working_dir,
        project_name="big_tipper_search",
        overwrite=True,
    )
    return TunerFnResult(tuner=tuner, fit_kwargs={})
