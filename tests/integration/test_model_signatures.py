"""The model's forward pass and its exported signatures, on a Transform graph built from a few
hundred shipped trips: raw features and serialized tf.Examples must give the same answer."""
import csv
import functools
import math
import os
import shutil
import tempfile

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from modules import features, signatures
from modules.hparams import HParams
from modules.model import as_model_inputs, build_model, categorical_sizes
from modules.preprocessing import preprocessing_fn
from pipeline.validation.table_sources import preprocessing_config, shipped_table_path
from tests.conftest import DATA_ROOT, SCHEMA_PATH

# 2014-05-26 00:15, Memorial Day (the shipped timestamps are Chicago wall-clock time as UTC).
MEMORIAL_DAY = 1401063300
DAY = 86400

pytestmark = pytest.mark.slow
NUM_TRIPS = 300


def _shipped_trips(schema):
    types = {feature.name: feature.type for feature in schema.feature}
    rows = []
    with open(DATA_ROOT / "span-1" / "data.csv") as data_file:
        for row in csv.DictReader(data_file):
            trip = {}
            for key, cell in row.items():
                if cell == "":
                    trip[key] = None
                elif types[key] == 2:  # INT
                    trip[key] = int(cell)
                elif types[key] == 3:  # FLOAT
                    trip[key] = float(cell)
                else:
                    trip[key] = cell.encode()
            rows.append(trip)
            if len(rows) == NUM_TRIPS:
                break
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    trips = _shipped_trips(schema)
    instances = [{key: [] if value is None else [value] for key, value in trip.items()} for trip in trips]
    transform_dir = str(tmp_path_factory.mktemp("transform"))
    # A copy of the shipped holiday table, deleted once the model is saved: the exported
    # model must carry the calendar itself.
    table_copy = tmp_path_factory.mktemp("external") / "holidays.csv"
    shutil.copy(shipped_table_path(features.HOLIDAY_TABLE), table_copy)
    custom_config = preprocessing_config({features.HOLIDAY_TABLE: str(table_copy)})
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        raw = pipeline | beam.Create(instances)
        transform_fn = (raw, dataset_metadata.DatasetMetadata(schema)) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config=custom_config)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
        # The raw schema, next to the graph, as TFX's Transform component writes it.
        raw_metadata_dir = os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
        _ = dataset_metadata.DatasetMetadata(schema) | tft_beam.WriteMetadata(raw_metadata_dir, pipeline)
    tf_transform_output = tft.TFTransformOutput(transform_dir)
    parsed = tf.io.parse_example([_example(trip) for trip in trips], tf_transform_output.raw_feature_spec())
    transformed = tf_transform_output.transform_features_layer()(parsed)
    tf.keras.utils.set_random_seed(1)
    model = build_model(categorical_sizes(tf_transform_output), HParams())
    inputs = as_model_inputs(transformed, model.input_names)
    model.fit(inputs, transformed[features.LABEL_KEY], epochs=3, batch_size=64, verbose=0)
    export_dir = str(tmp_path_factory.mktemp("model"))
    model.save(export_dir, save_format="tf", signatures=signatures.make_signatures(model, tf_transform_output))
    table_copy.unlink()
    return {"trips": trips, "model": model, "inputs": inputs, "export_dir": export_dir}


def test_forward_pass_gives_one_probability_per_trip(trained):
    probabilities = trained["model"](trained["inputs"]).numpy()
    assert probabilities.shape == (NUM_TRIPS, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def _raw_request(trips, spec):
    request = {}
    for key, tensor_spec in spec.items():
        missing = {tf.string: features.MISSING_STRING, tf.int64: features.MISSING_INT}.get(tensor_spec.dtype, features.MISSING_FLOAT)
        request[key] = tf.constant([missing if trip[key] is None else trip[key] for trip in trips], dtype=tensor_spec.dtype)
    return request


def _example(trip):
    feature = {}
    for key, value in trip.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, float):
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_raw_and_example_signatures_agree_including_missing_values(trained):
    loaded = tf.saved_model.load(trained["export_dir"])
    serving_default = loaded.signatures[signatures.SERVING_DEFAULT]
    spec = serving_default.structured_input_signature[1]
    assert set(spec) == set(features.RAW_FEATURE_KEYS)
    # The first trips of span 1 include ones with empty coordinates and community areas.
    trips = trained["trips"][:50]
    assert any(trip["dropoff_latitude"] is None for trip in trips) or any(trip["company"] is None for trip in trips)
    from_raw = serving_default(**_raw_request(trips, spec))[signatures.PROBABILITY_OUTPUT].numpy()
    from_examples = loaded.signatures[signatures.SERVING_TF_EXAMPLE](
        examples=tf.constant([_example(trip) for trip in trips])
    )[signatures.PROBABILITY_OUTPUT].numpy()
    np.testing.assert_allclose(from_raw, from_examples, rtol=1e-5, atol=1e-6)
    # The in-memory model on the same trips agrees with the exported one.
    in_memory = trained["model"](trained["inputs"]).numpy()[:50, 0]
    np.testing.assert_allclose(from_raw, in_memory, rtol=1e-5, atol=1e-6)


def test_transform_signature_computes_the_label(trained):
    loaded = tf.saved_model.load(trained["export_dir"])
    trips = trained["trips"][:20]
    transformed = loaded.signatures[signatures.TRANSFORM_FEATURES](examples=tf.constant([_example(t) for t in trips]))
    expected = [int(t["fare"] is not None and features.is_big_tip(features.cents(t["tips"] or 0.0), features.cents(t["fare"]))) for t in trips]
    assert transformed[features.LABEL_KEY].numpy().tolist() == expected
    # The Evaluators' signature: the same label, nothing else.
    label_only = loaded.signatures[signatures.TRANSFORM_LABEL](examples=tf.constant([_example(t) for t in trips]))
    assert set(label_only) == {features.LABEL_KEY}
    assert label_only[features.LABEL_KEY].numpy().tolist() == expected


def test_missing_marker_is_the_same_as_an_absent_value(trained):
    loaded = tf.saved_model.load(trained["export_dir"])
    serving_default = loaded.signatures[signatures.SERVING_DEFAULT]
    spec = serving_default.structured_input_signature[1]
    trip = dict(trained["trips"][0])
    without_fare = dict(trip, fare=None)
    answer = serving_default(**_raw_request([without_fare], spec))[signatures.PROBABILITY_OUTPUT].numpy()
    expected = loaded.signatures[signatures.SERVING_TF_EXAMPLE](examples=tf.constant([_example(without_fare)]))
    assert math.isclose(answer[0], expected[signatures.PROBABILITY_OUTPUT].numpy()[0], rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_float_is_a_missing_value_in_both_signatures(trained, value):
    # An infinite fare is no measurement: both signatures answer what they answer without a
    # fare, never NaN (TF Serving writes a NaN answer as a bare NaN token).
    loaded = tf.saved_model.load(trained["export_dir"])
    serving_default = loaded.signatures[signatures.SERVING_DEFAULT]
    spec = serving_default.structured_input_signature[1]
    trip = dict(trained["trips"][0], trip_miles=3.0)
    bad = [dict(trip, fare=value), dict(trip, trip_miles=value)]
    without = [dict(trip, fare=None), dict(trip, trip_miles=None)]
    from_raw = serving_default(**_raw_request(bad, spec))[signatures.PROBABILITY_OUTPUT].numpy()
    example_signature = loaded.signatures[signatures.SERVING_TF_EXAMPLE]
    from_examples = example_signature(examples=tf.constant([_example(t) for t in bad]))[signatures.PROBABILITY_OUTPUT].numpy()
    expected = example_signature(examples=tf.constant([_example(t) for t in without]))[signatures.PROBABILITY_OUTPUT].numpy()
    assert np.all(np.isfinite(from_raw)) and np.all(np.isfinite(from_examples))
    np.testing.assert_allclose(from_raw, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_examples, expected, rtol=1e-5, atol=1e-6)


def test_the_served_model_joins_the_holiday_calendar_from_the_raw_timestamp(trained):
    loaded = tf.saved_model.load(trained["export_dir"])  # the table file is gone by now
    spec = loaded.signatures[signatures.SERVING_DEFAULT].structured_input_signature[1]
    assert features.TIMESTAMP_KEY in spec
    assert not set(features.external_feature_names()) & set(spec)  # clients send raw trips only
    days = [MEMORIAL_DAY - DAY, MEMORIAL_DAY, MEMORIAL_DAY + DAY, 4102444800]  # ..., 2100-01-01
    trips = [dict(trained["trips"][0], trip_start_timestamp=day) for day in days]
    transformed = loaded.signatures[signatures.TRANSFORM_FEATURES](examples=tf.constant([_example(t) for t in trips]))
    sizes = features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE]
    assert transformed[features.transformed_name("is_holiday")].numpy().tolist() == [0, 1, 0, sizes["is_holiday"]]
    assert transformed[features.transformed_name("is_day_before_holiday")].numpy().tolist() == [1, 0, 0, sizes["is_day_before_holiday"]]
    assert transformed[features.transformed_name("day_of_week")].numpy().tolist() == [6, 0, 1, sizes["day_of_week"]]
