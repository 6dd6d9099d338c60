"""The readiness check of docker-compose and Kubernetes, run with bash against a real server:
ready only once a version of the model is AVAILABLE."""
import pathlib
import subprocess

import yaml

from pipeline.configs import SERVING_MODEL_NAME
from tests.integration.serving_fixtures import OFFSET_V1, add_version, model_templates, rest_call, start_server, wait_until  # noqa: F401

COMPOSE = pathlib.Path(__file__).resolve().parents[2] / "serving" / "deploy" / "docker-compose.yml"
IMAGE_REST_PORT = 8501


def _check(rest_port: int) -> int:
    """Runs the compose healthcheck (the k8s readiness probe is the same script) against a port."""
    script = yaml.safe_load(COMPOSE.read_text())["services"]["serving"]["healthcheck"]["test"][3]
    assert f"/dev/tcp/127.0.0.1/{IMAGE_REST_PORT}" in script
    script = script.replace(f"/dev/tcp/127.0.0.1/{IMAGE_REST_PORT}", f"/dev/tcp/127.0.0.1/{rest_port}")
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=30).returncode


def test_not_ready_without_a_version_ready_once_one_is_available(tmp_path, model_templates):  # noqa: F811
    base_path = tmp_path / SERVING_MODEL_NAME
    base_path.mkdir()
    server = start_server(model_name=SERVING_MODEL_NAME, model_base_path=str(base_path))
    try:
        assert _check(server.rest_port) != 0  # the server answers, but no version is AVAILABLE
        add_version(base_path, "1", model_templates[OFFSET_V1])
        assert wait_until(lambda: _check(server.rest_port) == 0, timeout=60)
    finally:
        server.stop()


def test_not_ready_when_nothing_listens():
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        free_port = probe_socket.getsockname()[1]
    assert _check(free_port) != 0


def test_a_server_of_another_model_is_not_ready(tmp_path, model_templates):  # noqa: F811
    base_path = tmp_path / "other"
    base_path.mkdir()
    add_version(base_path, "1", model_templates[OFFSET_V1])
    server = start_server(model_name="other", model_base_path=str(base_path))
    try:
        def available():
            status = rest_call(f"{server.rest_url}/v1/models/other")[2]
            return isinstance(status, dict) and any(v["state"] == "AVAILABLE" for v in status.get("model_version_status", []))

        assert wait_until(available, timeout=60)
        assert _check(server.rest_port) != 0
    finally:
        server.stop()
