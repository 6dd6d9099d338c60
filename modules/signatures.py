"""The SavedModel's signatures: raw JSON-friendly features, serialized tf.Examples, Transform.

`serving_default` is what TF Serving answers by default: one input per raw column, named
like the column, so `{"instances": [{"trip_miles": 1.2, "payment_type": "Cash", ...}]}`
works. A value a client does not know is sent as the column's missing marker (NaN for
floats, -1 for integers, "" for strings; `serving.client` fills these in) and is then
handled exactly like an empty CSV cell in training. An infinite float is missing too, so no
answer is NaN.
"""
from typing import Callable, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import features
from modules.model import as_model_inputs

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
TRANSFORM_FEATURES = "transform_features"
TRANSFORM_LABEL = "transform_label"
# Output of the prediction signatures: P(big tipper), one float per trip.
PROBABILITY_OUTPUT = "big_tipper_probability"


def _raw_serving_spec(tf_transform_output: tft.TFTransformOutput) -> Dict[str, tf.dtypes.DType]:
    """Returns the dtype of every raw column the serving signature takes."""
    raw_spec = tf_transform_output.raw_feature_spec()
    missing = [key for key in features.RAW_FEATURE_KEYS if key not in raw_spec]
    if missing:
        raise ValueError(f"the schema has no column for model features {missing}")
    return {key: raw_spec[key].dtype for key in features.RAW_FEATURE_KEYS}


def _missing_mask(value: tf.Tensor) -> tf.Tensor:
    """Returns True where a serving value is the missing marker of its dtype."""
    if value.dtype == tf.string:
        return tf.equal(value, features.MISSING_STRING)
    if value.dtype.is_floating:
        # NaN is the marker; an infinite number is no measurement either, and the model would
        # answer NaN for it, so it is missing too (as it is in a tf.Example, see preprocessing).
        return ~tf.math.is_finite(value)
    return tf.equal(value, tf.cast(features.MISSING_INT, value.dtype))


def _as_parsed(value: tf.Tensor) -> tf.SparseTensor:
    """Turns a [batch] serving tensor into the [batch, 1] SparseTensor an optional CSV column
    parses to, with no entry where the value is the missing marker."""
    value = tf.reshape(value, [-1])
    rows = tf.where(~_missing_mask(value))
    indices = tf.concat([rows, tf.zeros_like(rows)], axis=1)
    batch_size = tf.shape(value, out_type=tf.int64)[0]
    return tf.SparseTensor(indices, tf.gather_nd(value, rows), tf.stack([batch_size, 1]))


def _predict(model: keras.Model, transformed: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    probability = model(as_model_inputs(transformed, model.input_names), training=False)
    return {PROBABILITY_OUTPUT: tf.reshape(probability, [-1])}


def make_serving_default(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> Callable:
    """Returns the signature that takes one [batch] tensor per raw column."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    input_signature = {
        key: tf.TensorSpec([None], dtype, name=key)
        for key, dtype in _raw_serving_spec(tf_transform_output).items()
    }

    @tf.function(input_signature=[input_signature])
    def serve_raw(raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        parsed = {key: _as_parsed(value) for key, value in raw.items()}
        return _predict(model, model.tft_layer(parsed))

    return serve_raw.get_concrete_function()


def _raw_example_spec(tf_transform_output: tft.TFTransformOutput, with_label: bool) -> Dict:
    spec = tf_transform_output.raw_feature_spec()
    if not with_label:
        spec.pop(features.TIPS_KEY, None)
    return spec


def make_serving_tf_example(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> Callable:
    """Returns the signature that takes serialized tf.Examples of raw columns (the Evaluator's)."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    spec = _raw_example_spec(tf_transform_output, with_label=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, spec)
        return _predict(model, model.tft_layer(parsed))

    return serve_examples.get_concrete_function()


def make_transform_features(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> Callable:
    """Returns the signature that maps serialized tf.Examples to Transform's outputs, label included.

    The Evaluator calls it to get the label, which is computed from `tips` and `fare`.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    spec = _raw_example_spec(tf_transform_output, with_label=True)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return model.tft_layer(tf.io.parse_example(examples, spec))

    return transform_features.get_concrete_function()


def make_transform_label(transform_features: Callable) -> Callable:
    """Returns the signature that maps serialized tf.Examples to the label alone, as Transform
    computes it: `transform_features` (the signature of `make_transform_features`) with every
    other output left out.

    The Evaluators call it instead of `transform_features`: TFMA splits every output of the
    preprocessing signature into one value per trip, and the label is all they read.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_label(examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {features.LABEL_KEY: transform_features(examples)[features.LABEL_KEY]}

    return transform_label.get_concrete_function()


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> Dict[str, Callable]:
    """Returns every signature the pushed SavedModel carries, keyed by signature name."""
    transform_features = make_transform_features(model, tf_transform_output)
    return {
        SERVING_DEFAULT: make_serving_default(model, tf_transform_output),
        SERVING_TF_EXAMPLE: make_serving_tf_example(model, tf_transform_output),
        TRANSFORM_FEATURES: transform_features,
        TRANSFORM_LABEL: make_transform_label(transform_features),
    }
