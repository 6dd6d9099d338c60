"""Which code autograph leaves as it is once the Trainer, Tuner and Transform set their rules."""
import tf_keras as keras
from tensorflow.python.autograph.core import config
from tensorflow.python.autograph.impl import conversion

from modules import features
from modules.autograph import leave_libraries_unconverted


def test_keras_and_tf_transform_run_unconverted_and_project_code_is_converted():
    import tensorflow_transform as tft

    leave_libraries_unconverted()
    assert conversion.is_allowlisted(keras.layers.Dense.call)
    assert conversion.is_allowlisted(keras.Model.train_step)
    assert conversion.is_allowlisted(tft.compute_and_apply_vocabulary)
    assert not conversion.is_allowlisted(features.transformed_name)


def test_the_rules_are_added_once():
    leave_libraries_unconverted()
    rules = config.CONVERSION_RULES
    leave_libraries_unconverted()
    assert config.CONVERSION_RULES == rules
