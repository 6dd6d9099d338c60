"""Logs a sample of served predict requests as tf.Examples, for skew checks and new spans.

The idea of TF Serving's request logging (`logging_config { sampling_config {
sampling_rate } }` per model): a share of requests is written down as they arrive. Here each
sampled row of a Predict request on `serving_default` becomes one tf.Example of the raw
features, in TFRecord files under a directory; missing markers (NaN, -1, "") are left out,
just as an empty CSV cell is. `python -m pipeline skew` compares such a log with the
training statistics and turns it into a span for labelling.
"""
import base64
import json
import logging
import math
import os
import random
import threading
import time
from typing import Dict, Iterable, List, Optional

import tensorflow as tf

from modules import features
from serving.devserver.inference import RequestRecord

logger = logging.getLogger(__name__)

LOG_FILE_PREFIX = "requests-"
LOG_FILE_SUFFIX = ".tfrecord"


def _plain(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def rows_from_request(request: object) -> List[Dict[str, object]]:
    """Returns one {input: value} dict per instance of a predict request: a REST body (bytes,
    text or parsed JSON object) or a gRPC PredictRequest."""
    if isinstance(request, (bytes, str)):
        try:
            request = json.loads(request)
        except ValueError:
            return []  # the server already answered this body with a JSON parse error
    if isinstance(request, dict):
        if isinstance(request.get("instances"), list):
            return [
                {key: _plain(value) for key, value in row.items()}
                for row in request["instances"]
                if isinstance(row, dict)
            ]
        inputs = request.get("inputs")
        if isinstance(inputs, dict):
            columns = {key: [_plain(v) for v in value] for key, value in inputs.items() if isinstance(value, list)}
            size = min((len(column) for column in columns.values()), default=0)
            return [{key: column[index] for key, column in columns.items()} for index in range(size)]
        return []
    inputs = getattr(request, "inputs", None)
    if inputs is None:
        return []
    columns = {key: tf.make_ndarray(tensor).reshape(-1).tolist() for key, tensor in inputs.items()}
    size = min((len(column) for column in columns.values()), default=0)
    return [{key: column[index] for key, column in columns.items()} for index in range(size)]


def to_example(row: Dict[str, object]) -> tf.train.Example:
    """Turns one request row into a tf.Example, leaving out the missing markers of
    `modules.features` (NaN, -1, "")."""
    feature = {}
    for key, value in row.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if value is None or value == features.MISSING_STRING or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, bool) or (isinstance(value, int) and value == features.MISSING_INT):
            continue
        if isinstance(value, str):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, int):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif isinstance(value, float):
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


class RequestLogger:
    """A request hook that writes a sample of predict rows to TFRecord files in `log_dir`."""

    def __init__(self, log_dir: str, sampling_rate: float, model_name: Optional[str] = None, seed: Optional[int] = None):
        if not 0.0 < sampling_rate <= 1.0:
            raise ValueError(f"request log sampling rate must be in (0, 1], got {sampling_rate}")
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.sampling_rate = sampling_rate
        self.model_name = model_name
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        path = os.path.join(log_dir, f"{LOG_FILE_PREFIX}{int(time.time())}-{os.getpid()}{LOG_FILE_SUFFIX}")
        self._writer = tf.io.TFRecordWriter(path)
        self.path = path
        self.logged_rows = 0

    def __call__(self, record: RequestRecord) -> None:
        """Logs the rows of a successful Predict request, when it is sampled."""
        if record.api != "Predict" or record.status != "OK":
            return
        if self.model_name is not None and record.model_name != self.model_name:
            return
        with self._lock:
            if self._random.random() >= self.sampling_rate:
                return
            for row in rows_from_request(record.request):
                self._writer.write(to_example(row).SerializeToString())
                self.logged_rows += 1
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the current log file."""
        with self._lock:
            self._writer.close()


def read_log(log_dir: str) -> Iterable[tf.train.Example]:
    """Yields the logged examples of every log file in `log_dir`, oldest file first."""
    names = sorted(name for name in os.listdir(log_dir) if name.startswith(LOG_FILE_PREFIX))
    for name in names:
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            yield tf.train.Example.FromString(record.numpy())
