"""TF Serving's warm-up file: real requests a server replays when it loads a version.

TensorFlow Serving initialises a model lazily, so the first requests to a new version can be
orders of magnitude slower than the rest. A SavedModel that carries
`assets.extra/tf_serving_warmup_requests` (a TFRecord file of `PredictionLog` protos) is warmed
up with those requests before the version is reported AVAILABLE; TF Serving reads at most 1,000
of them. `write_warmup` writes one for the big_tipper model from real trips: PredictRequests on
the raw-feature signature (`serving_default`, what clients call) and on the tf.Example
signature, in batch sizes clients send, so each batch shape's graph is built before traffic.
"""
import os
from typing import Mapping, Sequence

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# (batch size, records) per signature: single trips as most clients send them, then the
# larger batches of a batch client.
BATCHES = ((1, 8), (8, 4), (32, 2), (128, 1))


def warmup_records(
    model_name: str,
    trips: Sequence[Mapping[str, object]],
    serialized_examples: Sequence[bytes],
    raw_dtypes: Mapping[str, str],
    example_signature: str,
) -> list:
    """The warm-up `PredictionLog`s of real trips.

    Args:
        model_name: The model's name in the requests.
        trips: Raw trips (feature -> value or None), for the raw-feature signature.
        serialized_examples: The same kind of trips as serialized tf.Examples, for the
            tf.Example signature.
        raw_dtypes: Input alias -> dtype name of `serving_default` (`signature_inputs`).
        example_signature: The tf.Example signature's name.

    Returns:
        PredictionLog protos, batch sizes in `BATCHES` order, raw signature first; batch sizes
        larger than the trips given are left out.

    Raises:
        ValueError: when no trip is given, or not as many tf.Examples as trips.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from serving.client import build_predict_grpc_request, trips_to_instances

    if not trips or len(serialized_examples) != len(trips):
        raise ValueError(f"the warm-up needs trips and as many tf.Examples, got {len(trips)} trips and {len(serialized_examples)} tf.Examples")
    logs = []
    offset = 0
    for size, count in BATCHES:
        if size > len(trips):
            continue
        for _ in range(count):
            start = offset % (len(trips) - size + 1)
            offset += size
            raw = build_predict_grpc_request(model_name, trips_to_instances(trips[start : start + size], raw_dtypes), raw_dtypes)
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=raw)))
            examples = predict_pb2.PredictRequest()
            examples.model_spec.name = model_name
            examples.model_spec.signature_name = example_signature
            examples.inputs["examples"].CopyFrom(
                tf.make_tensor_proto(np.asarray(list(serialized_examples[start : start + size]), dtype=object), dtype=tf.string)
            )
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=examples)))
    return logs


def write_warmup(saved_model_dir: str, logs: Sequence) -> str:
    """Writes `logs` as the SavedModel's warm-up file; returns its path."""
    import tensorflow as tf

    path = os.path.join(saved_model_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path
