"""Helpers and fixtures for the model server tests: test models, servers, HTTP calls.

Import what a test module needs, e.g.
`from tests.integration.serving_fixtures import model_templates, rest_call, start_server`.

`model_templates` builds small SavedModels once per session (a tf.Module whose default
signature takes a float, an int64 and a string input, like the taxi model's raw columns);
`make_base_path` copies them into numbered version folders. The TensorFlow Serving reference
models live outside the repository; `shared_model_path` skips the test when they are absent.
"""
import json
import os
import pathlib
import shutil
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SHARED_TF_SERVING = REPO_ROOT.parent / "shared" / "testdata" / "tf_serving"
HALF_PLUS_TWO = "saved_model_half_plus_two_cpu"
HALF_PLUS_THREE = "saved_model_half_plus_three"
HALF_PLUS_TWO_2_VERSIONS = "saved_model_half_plus_two_2_versions"
HALF_PLUS_TWO_METADATA = "half_plus_two_model_metadata.json"

# Offsets baked into the test model versions; a response tells which version answered.
OFFSET_V1 = 0.0
OFFSET_V2 = 1000.0
MODEL_INPUTS = ("payment_type", "trip_miles", "trip_start_hour")


def shared_model_path(name: str) -> pathlib.Path:
    """Path of a TensorFlow Serving reference file/model; skips the test when absent."""
    path = SHARED_TF_SERVING / name
    if not path.exists():
        pytest.skip(f"TensorFlow Serving test data not available at {path}")
    return path


def _build_test_model(export_dir: pathlib.Path, offset: float) -> pathlib.Path:
    """Saves a small SavedModel whose answers depend on `offset`."""
    import tensorflow as tf

    class TripScorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.offset = tf.Variable(offset, dtype=tf.float32)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32, name="trip_miles"),
                tf.TensorSpec([None], tf.int64, name="trip_start_hour"),
                tf.TensorSpec([None], tf.string, name="payment_type"),
            ]
        )
        def score(self, trip_miles, trip_start_hour, payment_type):
            cash = tf.cast(tf.equal(payment_type, "Cash"), tf.float32)
            score = trip_miles * 2.0 + tf.cast(trip_start_hour, tf.float32) + self.offset
            return {
                "score": score + 100.0 * cash,
                "payment_bytes": payment_type,
                "payment_upper": tf.strings.upper(payment_type),
                "hour": trip_start_hour,
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def plus_offset(self, x):
            return {"y": x + self.offset}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="pairs")])
        def sum_pairs(self, pairs):
            return {"total": tf.reduce_sum(pairs, axis=1) + self.offset}

    module = TripScorer()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.score,
            "plus_offset": module.plus_offset,
            "sum_pairs": module.sum_pairs,
        },
    )
    return export_dir


@pytest.fixture(scope="session")
def model_templates(tmp_path_factory: pytest.TempPathFactory) -> Dict[float, pathlib.Path]:
    """Offset -> a saved test model (built once per session, copied by tests)."""
    root = tmp_path_factory.mktemp("model_templates")
    return {
        offset: _build_test_model(root / f"offset_{int(offset)}", offset)
        for offset in (OFFSET_V1, OFFSET_V2)
    }


def make_base_path(
    base_path: pathlib.Path,
    templates: Mapping[float, pathlib.Path],
    versions: Mapping[str, float],
) -> pathlib.Path:
    """Creates a model base path with version folders copied from templates.

    Args:
        base_path: The folder to create (may exist).
        templates: The `model_templates` fixture value.
        versions: Folder name (e.g. "1", "00000002") -> offset of the template to copy.

    Returns:
        base_path.
    """
    base_path.mkdir(parents=True, exist_ok=True)
    for folder, offset in versions.items():
        add_version(base_path, folder, templates[offset])
    return base_path


def add_version(base_path: pathlib.Path, folder: str, template: pathlib.Path) -> pathlib.Path:
    """Publishes a version the way a pusher should: copy aside, then rename into place."""
    staging = base_path / f".staging-{folder}"
    shutil.copytree(template, staging)
    target = base_path / folder
    os.rename(staging, target)
    return target


def start_server(**options: Any):
    """Starts an in-process ModelServer on free local ports; the caller stops it."""
    from serving.devserver.server import ModelServer, ServerOptions

    options.setdefault("port", 0)
    options.setdefault("rest_api_port", 0)
    options.setdefault("file_system_poll_wait_seconds", 0.2)
    options.setdefault("shutdown_grace_seconds", 10.0)
    return ModelServer(ServerOptions(**options)).start()


def rest_call(
    url: str,
    body: Optional[Any] = None,
    method: Optional[str] = None,
    timeout: float = 30.0,
    raw: Optional[bytes] = None,
) -> Tuple[int, Mapping[str, str], Any]:
    """Calls the REST API; returns (HTTP status, headers, decoded JSON or text).

    Args:
        url: Full URL.
        body: A JSON-able request body (POST); None for GET unless `raw` is given.
        method: Overrides the HTTP method.
        timeout: Socket timeout in seconds.
        raw: Raw bytes to send instead of `body`.
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method or ("GET" if data is None else "POST")
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, payload = error.code, error.headers, error.read()
    text = payload.decode("utf-8")
    try:
        return status, headers, json.loads(text)
    except json.JSONDecodeError:
        return status, headers, text


def wait_until(
    condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1
) -> bool:
    """Polls `condition` until it is true or `timeout` seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def slow_down(servable, seconds: float) -> List[float]:
    """Makes every model call of `servable` (in this process) take `seconds` longer, so a test
    can pass a deadline deterministically. Returns the list the call times are appended to."""
    original_run = servable.run
    calls: List[float] = []

    def slow_run(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(seconds)
        return original_run(*args, **kwargs)

    servable.run = slow_run
    return calls
