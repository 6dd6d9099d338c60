"""The warm-up file's records: real trips for both serving signatures, in client batch sizes."""
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving.client import warmup
from tests.conftest import trip

# The raw-feature signature's inputs: every column of a trip but the label's.
RAW_DTYPES = {
    key: "DT_STRING" if isinstance(value, str) else "DT_FLOAT" if isinstance(value, float) else "DT_INT64"
    for key, value in trip().items()
    if key != "tips"
}


def _example(row) -> bytes:
    example = tf.train.Example()
    example.features.feature["fare"].float_list.value.append(row["fare"])
    return example.SerializeToString()


def test_both_signatures_get_every_batch_size_in_order():
    trips = [trip(fare=float(index)) for index in range(200)]
    logs = warmup.warmup_records("big_tipper", trips, [_example(row) for row in trips], RAW_DTYPES, "serving_tf_example")
    sizes = [(log.predict_log.request.model_spec.signature_name, sorted(log.predict_log.request.inputs)) for log in logs]
    assert len(logs) == 2 * sum(count for _, count in warmup.BATCHES) == 30
    assert sizes[0] == ("", sorted(key for key, value in trips[0].items() if key in RAW_DTYPES and value is not None))
    assert sizes[1] == ("serving_tf_example", ["examples"])
    batch = [tf.make_ndarray(log.predict_log.request.inputs["fare"]).shape[0] for log in logs[::2]]
    assert batch == [1] * 8 + [8] * 4 + [32] * 2 + [128]
    # Real trips, a different slice for each record.
    assert tf.make_ndarray(logs[2].predict_log.request.inputs["fare"]).tolist() != tf.make_ndarray(logs[0].predict_log.request.inputs["fare"]).tolist()


def test_a_small_eval_split_leaves_out_the_larger_batches():
    trips = [trip() for _ in range(10)]
    logs = warmup.warmup_records("big_tipper", trips, [_example(row) for row in trips], RAW_DTYPES, "serving_tf_example")
    assert [tf.make_ndarray(log.predict_log.request.inputs["fare"]).shape[0] for log in logs[::2]] == [1] * 8 + [8] * 4


def test_the_file_is_tfrecords_of_prediction_logs(tmp_path):
    trips = [trip() for _ in range(4)]
    logs = warmup.warmup_records("big_tipper", trips, [_example(row) for row in trips], RAW_DTYPES, "serving_tf_example")
    path = warmup.write_warmup(str(tmp_path), logs)
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    read = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    assert read == logs
