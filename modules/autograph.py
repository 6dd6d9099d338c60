"""Keeps TensorFlow's autograph out of the libraries that run as plain graph code.

When a `tf.function` is traced, autograph rewrites every Python function it calls into graph
control flow, except those of the libraries TensorFlow lists as written for graphs already
(`tensorflow`, `keras`, numpy, ...). TF 2.16 runs Keras 2 as the `tf_keras` package, which that
list does not name, so the first `fit` of a process transpiles Keras's own training step,
optimizer, metrics and layers. That took 16 of the Trainer's 18 s to its first step on
the shipped data, and gave the same losses and metrics as the unconverted code, to the bit.
`tf_keras` is Keras 2.15's code under a new name and ran unconverted as `keras`. tf.Transform's
analyzers and mappers work unconverted too: they also run in TF1 graphs, which have no autograph.

Functions the project writes are still converted, as are `preprocessing_fn` and each model's
`call`, since Keras converts a layer's `call` itself.
"""
import logging
from typing import Tuple

logger = logging.getLogger(__name__)

# Package prefixes whose functions autograph calls as they are.
UNCONVERTED_LIBRARIES: Tuple[str, ...] = ("tf_keras", "tensorflow_transform")


def leave_libraries_unconverted(libraries: Tuple[str, ...] = UNCONVERTED_LIBRARIES) -> None:
    """Adds `libraries` to autograph's do-not-convert rules for this process (idempotent).

    Tracing only gets faster; a TensorFlow without these rules (a private module) keeps
    converting them, with a warning.
    """
    try:
        from tensorflow.python.autograph.core import config, config_lib
    except ImportError as error:
        logger.warning("autograph's conversion rules are not where TF 2.16 keeps them (%s): %s stay converted", error, libraries)
        return
    rules = tuple(config.CONVERSION_RULES)
    added = tuple(
        config_lib.DoNotConvert(name)
        for name in libraries
        if not any(isinstance(rule, config_lib.DoNotConvert) and rule.matches(name) for rule in rules)
    )
    # Rules are read in order and the first that matches decides, so these go first.
    config.CONVERSION_RULES = added + rules
