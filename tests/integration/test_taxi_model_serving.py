"""The taxi model the pipeline pushed, served by `serving.devserver.server.ModelServer` and queried with
`serving.client` over REST and gRPC.

What a user of the deployed model would notice: the served answers are the SavedModel's own
answers (partial trips included), the metadata names the raw taxi columns, and a new or a
corrupt version appearing under the base path while clients are asking never fails a request.
"""
import logging
import os
import pathlib
import shutil
import threading
import time
from typing import Dict, Iterator, List, Mapping

import numpy as np
import pytest

from modules import features
from modules.signatures import PROBABILITY_OUTPUT, SERVING_DEFAULT, SERVING_TF_EXAMPLE
from pipeline import configs
from serving import client
from tests.conftest import SCHEMA_PATH, trip
from tests.integration.serving_fixtures import add_version, start_server, wait_until

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.slow

MODEL = configs.SERVING_MODEL_NAME
TOLERANCE = 1e-6
# The client load of the reload test: a few threads, each stopping after this many seconds at
# the latest, so a server that hangs fails the test instead of blocking it.
LOAD_THREADS = 3
LOAD_MAX_SECONDS = 30.0
# How long the test waits for the poller (0.2 s) to load or reject a version.
VERSION_WAIT_SECONDS = 15.0

# A handful of trips: complete ones and ones with missing values of every dtype.
TRIPS: List[Dict[str, object]] = [
    trip(),
    trip(payment_type="Cash", tips=0.0),
    trip(fare=None, trip_miles=None),
    trip(company=None, payment_type=None),
    trip(trip_start_hour=None, dropoff_census_tract=None, pickup_community_area=None),
    trip(pickup_latitude=None, pickup_longitude=None, dropoff_latitude=None, dropoff_longitude=None),
    {"trip_miles": 12.0, "fare": 35.25, "payment_type": "Credit Card"},
]

# The schema's column types, as the serving signature must carry them.
_SCHEMA_TO_TF_DTYPE = {"FLOAT": "DT_FLOAT", "INT": "DT_INT64", "BYTES": "DT_STRING"}


def _schema_dtypes() -> Dict[str, str]:
    """Returns raw column -> TensorFlow dtype name, read from the pipeline's curated schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())
    return {
        feature.name: _SCHEMA_TO_TF_DTYPE[schema_pb2.FeatureType.Name(feature.type)]
        for feature in schema.feature
        if feature.name in features.RAW_FEATURE_KEYS
    }


def _pushed_version(serving_model_dir: pathlib.Path) -> pathlib.Path:
    """Returns the one numeric version folder the pipeline pushed."""
    versions = sorted(
        (path for path in serving_model_dir.iterdir() if path.name.isdigit()),
        key=lambda path: int(path.name),
    )
    assert versions, f"the pipeline pushed no version under {serving_model_dir}"
    return versions[-1]


def _in_process_probabilities(version_dir: pathlib.Path, trips: List[Mapping]) -> np.ndarray:
    """P(big tipper) from the SavedModel's `serving_default`, called in this process."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures[SERVING_DEFAULT]
    specs = signature.structured_input_signature[1]
    missing = {tf.float32: features.MISSING_FLOAT, tf.int64: features.MISSING_INT, tf.string: features.MISSING_STRING}
    columns = {
        key: tf.constant(
            [missing[spec.dtype] if one.get(key) is None else one[key] for one in trips], dtype=spec.dtype
        )
        for key, spec in specs.items()
    }
    return signature(**columns)[PROBABILITY_OUTPUT].numpy()


def _copy_base_path(version_dir: pathlib.Path, base_path: pathlib.Path) -> pathlib.Path:
    """Copies a pushed version into a fresh model base path, keeping its version number."""
    base_path.mkdir(parents=True)
    add_version(base_path, version_dir.name, version_dir)
    return base_path


@pytest.fixture(scope="module")
def pushed_version(small_pipeline_run) -> pathlib.Path:
    """The version folder the small pipeline run pushed."""
    return _pushed_version(small_pipeline_run["serving_model_dir"])


@pytest.fixture(scope="module")
def expected(pushed_version: pathlib.Path) -> np.ndarray:
    """The in-process answers for TRIPS."""
    return _in_process_probabilities(pushed_version, TRIPS)


@pytest.fixture(scope="module")
def taxi_server(pushed_version: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The taxi model served from a copy of the pushed version (REST and gRPC)."""
    base_path = _copy_base_path(pushed_version, tmp_path_factory.mktemp("served") / MODEL)
    server = start_server(model_name=MODEL, model_base_path=str(base_path), file_system_poll_wait_seconds=0)
    yield server
    server.stop()


def _host_port(url_or_target: str) -> str:
    return url_or_target.split("://", 1)[-1]


def test_rest_answers_equal_the_saved_model(taxi_server, expected):
    answers = client.predict_trips_rest(_host_port(taxi_server.rest_url), MODEL, TRIPS)
    np.testing.assert_allclose(answers, expected, rtol=0, atol=TOLERANCE)
    assert all(0.0 <= answer <= 1.0 for answer in answers)


def test_grpc_answers_equal_the_saved_model(taxi_server, expected):
    answers = client.predict_trips_grpc(taxi_server.grpc_target, MODEL, TRIPS)
    np.testing.assert_allclose(answers, expected, rtol=0, atol=TOLERANCE)


def test_one_trip_at_a_time_equals_the_batch(taxi_server, expected):
    rest = _host_port(taxi_server.rest_url)
    dtypes = client.signature_inputs(client.model_metadata_rest(rest, MODEL))
    for index in (0, 2, 4):
        (answer,) = client.predict_trips_rest(rest, MODEL, [TRIPS[index]], dtypes=dtypes)
        assert answer == pytest.approx(float(expected[index]), abs=TOLERANCE)


def test_metadata_lists_the_raw_features_as_inputs(taxi_server):
    schema_dtypes = _schema_dtypes()
    assert sorted(schema_dtypes) == sorted(features.RAW_FEATURE_KEYS)
    rest_metadata = client.model_metadata_rest(_host_port(taxi_server.rest_url), MODEL)
    grpc_metadata = client.model_metadata_grpc(taxi_server.grpc_target, MODEL)
    for metadata in (rest_metadata, grpc_metadata):
        assert client.signature_inputs(metadata) == schema_dtypes
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        assert list(signatures[SERVING_DEFAULT]["outputs"]) == [PROBABILITY_OUTPUT]
        assert client.signature_inputs(metadata, SERVING_TF_EXAMPLE) == {"examples": "DT_STRING"}


def test_an_unknown_feature_is_refused_before_sending(taxi_server):
    with pytest.raises(ValueError, match="unknown taxi features \\['trip_mile'\\]"):
        client.predict_trips_rest(_host_port(taxi_server.rest_url), MODEL, [{"trip_mile": 1.0}])


def _status(rest: str) -> Dict[int, Dict]:
    body = client.model_status_rest(rest, MODEL)
    return {int(entry["version"]): entry for entry in body["model_version_status"]}


def _publish_corrupt_version(base_path: pathlib.Path, folder: str, template: pathlib.Path) -> pathlib.Path:
    """Publishes a copy of `template` whose saved_model.pb is garbage (copy aside, then rename)."""
    staging = base_path / f".staging-{folder}"
    shutil.copytree(template, staging)
    (staging / "saved_model.pb").write_bytes(b"\x00\xffthis is not a SavedModel\xff" * 64)
    target = base_path / folder
    os.rename(staging, target)
    return target


class _Load:
    """Client threads looping predict over REST and gRPC until stopped (or LOAD_MAX_SECONDS)."""

    def __init__(self, server, dtypes: Mapping[str, str], expected_first: float) -> None:
        self._rest = _host_port(server.rest_url)
        self._grpc = server.grpc_target
        self._dtypes = dtypes
        self._expected_first = expected_first
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failures: List[str] = []
        self.answers = 0
        self.wrong_answers: List[float] = []
        self._threads = [
            threading.Thread(target=self._loop, args=(index,), name=f"load-{index}", daemon=True)
            for index in range(LOAD_THREADS)
        ]

    def __enter__(self) -> "_Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=LOAD_MAX_SECONDS + 5.0)

    def answered(self) -> int:
        """Requests answered so far."""
        with self._lock:
            return self.answers

    def _loop(self, index: int) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if index % 2 == 0:
                    answer = client.predict_trips_rest(self._rest, MODEL, TRIPS[:1], dtypes=self._dtypes)
                else:
                    answer = client.predict_trips_grpc(self._grpc, MODEL, TRIPS[:1], dtypes=self._dtypes)
            except client.ServingError as error:
                with self._lock:
                    self.failures.append(str(error))
                continue
            with self._lock:
                self.answers += 1
                # Every version is a copy of one SavedModel, so every answer is the same.
                if abs(answer[0] - self._expected_first) > TOLERANCE:
                    self.wrong_answers.append(answer[0])
            # Leave CPU to the poller loading the next version on this small machine.
            self._stop.wait(0.005)


def _wait_for_more_answers(load: _Load, count: int = 5) -> bool:
    start = load.answered()
    return wait_until(lambda: load.answered() >= start + count, timeout=5.0, interval=0.02)


def test_new_and_corrupt_versions_appear_under_load_without_a_failed_request(
    pushed_version, expected, tmp_path
):
    base_path = _copy_base_path(pushed_version, tmp_path / MODEL)
    old_version = int(pushed_version.name)
    new_version, corrupt_version = old_version + 1, old_version + 2
    server = start_server(model_name=MODEL, model_base_path=str(base_path), file_system_poll_wait_seconds=0.2)
    rest = _host_port(server.rest_url)
    try:
        dtypes = client.signature_inputs(client.model_metadata_rest(rest, MODEL))
        with _Load(server, dtypes, float(expected[0])) as load:
            assert _wait_for_more_answers(load), "the clients got no answers from the first version"

            add_version(base_path, str(new_version), pushed_version)
            assert wait_until(
                lambda: _status(rest).get(new_version, {}).get("state") == "AVAILABLE",
                timeout=VERSION_WAIT_SECONDS,
            ), f"version {new_version} did not become AVAILABLE: {_status(rest)}"
            assert _wait_for_more_answers(load), "no answers after the new version loaded"

            corrupt_dir = _publish_corrupt_version(base_path, str(corrupt_version), pushed_version)
            assert wait_until(
                lambda: _status(rest).get(corrupt_version, {}).get("status", {}).get("error_code", "OK") != "OK",
                timeout=VERSION_WAIT_SECONDS,
            ), f"the corrupt version {corrupt_version} was not reported: {_status(rest)}"
            assert _wait_for_more_answers(load), "no answers after the corrupt version appeared"

        assert load.failures == [], f"{len(load.failures)} of {load.answers + len(load.failures)} failed"
        assert load.wrong_answers == []
        logger.info("reload under load: %d answers, no failures", load.answers)

        status = _status(rest)
        assert status[new_version]["state"] == "AVAILABLE"
        assert status[new_version]["status"] == {"error_code": "OK", "error_message": ""}
        assert status[corrupt_version]["state"] == "END"
        assert status[corrupt_version]["status"]["error_code"] == "DATA_LOSS"
        assert str(corrupt_dir) in status[corrupt_version]["status"]["error_message"]
        # Availability first: the old version went only once the new one served.
        assert status[old_version]["state"] == "END"

        # Still answering, from the newest good version, over both APIs.
        np.testing.assert_allclose(
            client.predict_trips_rest(rest, MODEL, TRIPS, dtypes=dtypes), expected, atol=TOLERANCE, rtol=0
        )
        np.testing.assert_allclose(
            client.predict_trips_grpc(server.grpc_target, MODEL, TRIPS, dtypes=dtypes), expected, atol=TOLERANCE, rtol=0
        )
        grpc_status = client.model_status_grpc(server.grpc_target, MODEL)
        assert {entry["version"]: entry["state"] for entry in grpc_status["model_version_status"]}[
            str(new_version)
        ] == "AVAILABLE"
        with pytest.raises(client.ServingError, match=f"Specific\\({MODEL}, {corrupt_version}\\)"):
            client.predict_trips_rest(rest, MODEL, TRIPS[:1], version=corrupt_version, dtypes=dtypes)
    finally:
        server.stop()
