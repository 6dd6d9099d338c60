"""The Keras model on Transform's outputs: embeddings for categories, a dense tower on top."""
from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import features
from modules.hparams import HParams


def categorical_sizes(tf_transform_output: tft.TFTransformOutput, external_features: bool = True) -> Dict[str, int]:
    """Returns, for every categorical Transform output the model reads, how many ids it can take.

    Args:
        tf_transform_output: Transform's output, for vocabulary sizes.
        external_features: Include the columns joined from external tables.
    """
    sizes: Dict[str, int] = {}
    if external_features:
        for columns in features.EXTERNAL_FEATURE_SIZES.values():
            for key, size in columns.items():
                sizes[features.transformed_name(key)] = size + 1
    for key in features.QUANTILE_BUCKET_FEATURE_KEYS:
        sizes[features.bucket_name(key)] = features.NUM_QUANTILE_BUCKETS
    for key in features.COORDINATE_FEATURE_KEYS:
        sizes[features.transformed_name(key)] = features.NUM_COORDINATE_BUCKETS + 1
    for key in features.VOCABULARY_FEATURE_KEYS + features.INTEGER_VOCABULARY_FEATURE_KEYS:
        vocabulary_size = tf_transform_output.vocabulary_size_by_name(features.vocabulary_name(key))
        # One id for "missing", then the vocabulary, then its out-of-vocabulary buckets.
        sizes[features.transformed_name(key)] = 1 + vocabulary_size + features.NUM_OOV_BUCKETS
    for key, size in features.RANGE_FEATURE_SIZES.items():
        sizes[features.transformed_name(key)] = size + 1
    return sizes


def dense_feature_names() -> List[str]:
    """Returns the float Transform outputs the model reads directly."""
    names = [features.transformed_name(key) for key in features.NUMERIC_FEATURE_KEYS]
    names += [features.missing_name(key) for key in features.NUMERIC_FEATURE_KEYS]
    names += [features.transformed_name(key) for key in features.DERIVED_FEATURE_KEYS]
    return names


def build_model(sizes: Dict[str, int], hparams: HParams) -> keras.Model:
    """Builds and compiles the big-tipper classifier.

    Args:
        sizes: Number of ids per categorical input, from `categorical_sizes`.
        hparams: Layer sizes, dropout and learning rate.

    Returns:
        A compiled model that maps the dict of transformed features to P(big tipper), shape [batch, 1].
    """
    inputs: Dict[str, keras.Input] = {}
    parts = []
    dense_names = dense_feature_names()
    for name in dense_names:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.float32)
    parts.append(keras.layers.Concatenate(name="dense_features")([inputs[name] for name in dense_names]))
    for name, size in sorted(sizes.items()):
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.int64)
        dim = min(hparams.embedding_dim, size)
        embedded = keras.layers.Embedding(size, dim, name=features.embedding_layer_name(name))(inputs[name])
        parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    hidden = keras.layers.Concatenate(name="all_features")(parts)
    for index, units in enumerate(hparams.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(hidden)
        if hparams.dropout:
            hidden = keras.layers.Dropout(hparams.dropout, name=f"dropout_{index}")(hidden)
    probability = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    model = keras.Model(inputs=inputs, outputs=probability, name="big_tipper")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="binary_accuracy")],
    )
    return model


def as_model_inputs(transformed: Dict[str, tf.Tensor], input_names: List[str]) -> Dict[str, tf.Tensor]:
    """Picks the model's inputs out of Transform's outputs, shaped [batch, 1]."""
    return {name: tf.reshape(transformed[name], [-1, 1]) for name in input_names}
