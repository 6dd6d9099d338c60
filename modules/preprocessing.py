"""The Transform step: `preprocessing_fn`, run by TFX Transform over the whole training data.

TFX entry point: `modules.preprocessing.preprocessing_fn`.
"""
from typing import Any, Dict, Mapping, Optional, Union

import tensorflow as tf
import tensorflow_transform as tft

from modules import external, features

RawTensor = Union[tf.Tensor, tf.SparseTensor]


def _present(value: RawTensor) -> tf.Tensor:
    """Returns a [batch] bool tensor: True where the row has a value."""
    if isinstance(value, tf.SparseTensor):
        dense_shape = [value.dense_shape[0], 1]
        ones = tf.sparse.to_dense(
            tf.SparseTensor(value.indices, tf.ones_like(value.values, dtype=tf.int32), dense_shape)
        )
        return tf.squeeze(ones, axis=1) > 0
    return tf.ones(tf.shape(value)[:1], dtype=tf.bool)


def _finite_only(value: RawTensor) -> RawTensor:
    """Drops NaN and infinite values of an optional float column, so they are missing values.

    Training data never holds them (the span reader refuses them); a tf.Example sent to the
    serving_tf_example signature may, and the model would answer NaN for it.
    """
    if isinstance(value, tf.SparseTensor) and value.dtype.is_floating:
        return tf.sparse.retain(value, tf.math.is_finite(value.values))
    return value


def _dense(value: RawTensor, default) -> tf.Tensor:
    """Returns a [batch] tensor with `default` where the row has no value."""
    if isinstance(value, tf.SparseTensor):
        dense_shape = [value.dense_shape[0], 1]
        value = tf.sparse.to_dense(tf.SparseTensor(value.indices, value.values, dense_shape), default)
    return tf.reshape(value, [-1])


def _vocabulary_ids(raw: RawTensor, key: str) -> tf.Tensor:
    """Maps a categorical column through its vocabulary, computed over the present values only.

    Returns [batch] ids: `features.VOCABULARY_MISSING_ID` (0) where the value is missing, then the
    vocabulary and its out-of-vocabulary buckets shifted by one, so a missing company and a
    company never seen in training are different inputs.
    """
    if isinstance(raw, tf.SparseTensor):
        values = raw.values if raw.dtype == tf.string else tf.strings.as_string(raw.values)
        strings: RawTensor = tf.SparseTensor(raw.indices, values, raw.dense_shape)
    else:
        strings = raw if raw.dtype == tf.string else tf.strings.as_string(raw)
    ids = tft.compute_and_apply_vocabulary(
        strings,
        top_k=features.VOCABULARY_TOP_K,
        num_oov_buckets=features.NUM_OOV_BUCKETS,
        vocab_filename=features.vocabulary_name(key),
    )
    return tf.where(_present(raw), _dense(ids, -1) + 1, tf.constant(features.VOCABULARY_MISSING_ID, tf.int64))


def _log_scaled(value: tf.Tensor) -> tf.Tensor:
    """Returns the z-score of log1p(value), value clipped at 0 (negative fares are refunds)."""
    return tft.scale_to_z_score(tf.math.log1p(tf.maximum(value, 0.0)))


def _external_tables(custom_config: Optional[Mapping[str, Any]]) -> Dict[str, external.ExternalTable]:
    """Reads every table the model joins from the files named in custom_config."""
    files = (custom_config or {}).get(external.TABLES_CONFIG_KEY) or {}
    missing = sorted(set(external.TABLES) - set(files))
    if missing:
        raise ValueError(
            f"preprocessing_fn joins external tables {missing} but custom_config[{external.TABLES_CONFIG_KEY!r}] "
            f"names no file for them (it names {sorted(files)})"
        )
    return {name: external.read_table(files[name], spec) for name, spec in external.TABLES.items()}


def preprocessing_fn(
    inputs: Dict[str, RawTensor], custom_config: Optional[Mapping[str, Any]] = None
) -> Dict[str, tf.Tensor]:
    """Maps raw taxi columns to model-ready features and the big-tipper label.

    Missing values are handled explicitly: numeric columns get a 0/1 "missing" feature and
    a neutral fill, categorical columns get a bucket of their own (apart from the buckets of
    values unseen in training). Columns of the external
    tables are joined here, so the exported graph carries them.

    Args:
        inputs: Raw columns as parsed with the pipeline's schema; optional columns arrive as
            SparseTensors with at most one value per row.
        custom_config: `{"external_tables": {name: file}}` for every table of
            `modules.external.TABLES`.

    Returns:
        Transformed features keyed by `features.transformed_name(...)` and friends, plus the
        label under `features.LABEL_KEY`.

    Raises:
        ValueError: when custom_config names no file for a table the model joins.
        modules.external.ExternalTableError: when a table's file is malformed.
    """
    inputs = {key: _finite_only(value) for key, value in inputs.items()}
    outputs: Dict[str, tf.Tensor] = {}
    for name, table in _external_tables(custom_config).items():
        join_value = inputs[table.spec.join_feature]
        joined = external.join(_dense(join_value, features.MISSING_INT), _present(join_value), table)
        for key, size in features.EXTERNAL_FEATURE_SIZES[name].items():
            # A trip the table has no row for shares bucket `size` with missing values.
            in_range = tf.logical_and(joined[key] >= 0, joined[key] < size)
            outputs[features.transformed_name(key)] = tf.where(in_range, joined[key], tf.cast(size, tf.int64))

    numeric = {key: tf.cast(_dense(inputs[key], 0), tf.float32) for key in features.NUMERIC_FEATURE_KEYS}
    for key in features.NUMERIC_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = _log_scaled(numeric[key])
        outputs[features.missing_name(key)] = tf.cast(~_present(inputs[key]), tf.float32)
    for key in features.QUANTILE_BUCKET_FEATURE_KEYS:
        value = tf.cast(_dense(inputs[key], 0), tf.float32)
        outputs[features.bucket_name(key)] = tft.bucketize(value, features.NUM_QUANTILE_BUCKETS)

    minutes = numeric["trip_seconds"] / 60.0
    derived = {
        "fare_per_mile": numeric["fare"] / tf.maximum(numeric["trip_miles"], 0.1),
        "fare_per_minute": numeric["fare"] / tf.maximum(minutes, 1.0),
        "miles_per_hour": numeric["trip_miles"] / tf.maximum(minutes / 60.0, 1.0 / 60.0),
    }
    for key in features.DERIVED_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = _log_scaled(derived[key])

    for key in features.COORDINATE_FEATURE_KEYS:
        present = _present(inputs[key])
        buckets = tft.bucketize(_dense(inputs[key], 0.0), features.NUM_COORDINATE_BUCKETS)
        # Missing coordinates get bucket NUM_COORDINATE_BUCKETS, one past the real grid.
        outputs[features.transformed_name(key)] = tf.where(
            present, buckets, tf.constant(features.NUM_COORDINATE_BUCKETS, tf.int64)
        )

    for key in features.VOCABULARY_FEATURE_KEYS + features.INTEGER_VOCABULARY_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = _vocabulary_ids(inputs[key], key)

    for key, size in features.RANGE_FEATURE_SIZES.items():
        value = _dense(inputs[key], features.MISSING_INT)
        in_range = tf.logical_and(value >= 0, value < size)
        # Out-of-range and missing values share bucket `size`, one past the valid codes.
        outputs[features.transformed_name(key)] = tf.where(in_range, value, tf.cast(size, value.dtype))

    # Dollars as float64 cents. Below $131,072 (2^17) the stored float32 is within half a cent of
    # the amount, so rounding gives back the exact cents.
    fare_cents = tf.round(tf.cast(_dense(inputs[features.FARE_KEY], float("nan")), tf.float64) * 100.0)
    tips_cents = tf.round(tf.cast(_dense(inputs[features.TIPS_KEY], 0.0), tf.float64) * 100.0)
    # No fare means no known tip share: such trips are labelled "not a big tipper".
    big_tipper = tf.logical_and(~tf.math.is_nan(fare_cents), features.is_big_tip(tips_cents, fare_cents))
    outputs[features.LABEL_KEY] = tf.cast(big_tipper, tf.int64)
    return outputs
