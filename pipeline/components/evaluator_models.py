"""The model loaders of the Evaluators' executor (`pipeline.components.evaluator`).

They are in a module of their own because TFX's Evaluator takes its `custom_eval_shared_model`
by dotted name and reloads the module that holds it on every execution
(`tfx.utils.import_utils.import_func_from_module`). This module keeps no state, so reloading it
changes nothing. Reloading the executor's module would define its functions again while an
Evaluator runs beside it, and its saved reference to TFMA's signature lookup would then point
at the module's own replacement, which calls itself.
"""
from typing import Any

import tensorflow_model_analysis as tfma

from pipeline.components import evaluator


def keyword_eval_shared_model(**kwargs: Any) -> tfma.types.EvalSharedModel:
    """TFMA's `default_eval_shared_model(**kwargs)`, with its model loader's construct function
    wrapped in `evaluator.KeywordSignaturesLoader`: the process that loads the model, a Beam
    worker in another process included, then calls the model's signatures by keyword."""
    shared = tfma.default_eval_shared_model(**kwargs)
    shared.model_loader.construct_fn = evaluator.KeywordSignaturesLoader(shared.model_loader.construct_fn)
    return shared
