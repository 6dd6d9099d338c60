"""Offline checks of the request-logging proxy in serving/deploy/: docker-compose and the
Kubernetes base run `python -m serving.logging_proxy` with flags it accepts, in front of
TensorFlow Serving's ports, writing to a mounted volume, and clients reach it on 8500/8501."""
from typing import Any, Dict, List

import re

import pytest
import yaml

from serving.logging_proxy import parse_flags
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "serving" / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
GRPC_PORT, REST_PORT = 8500, 8501
ENTRY_POINT = ["python", "-m", "serving.logging_proxy"]


def _flag(arguments: List[str], name: str) -> str:
    (value,) = [argument.split("=", 1)[1] for argument in arguments if argument.startswith(f"{name}=")]
    return value


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def pod() -> Dict[str, Any]:
    (deployment,) = [d for d in yaml.safe_load_all((K8S_BASE / "deployment.yaml").read_text()) if d and d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def _container(pod: Dict[str, Any], name: str) -> Dict[str, Any]:
    (container,) = [container for container in pod["containers"] if container["name"] == name]
    return container


def test_compose_runs_the_proxy_with_flags_it_accepts_in_front_of_tf_serving(compose):
    proxy, serving = compose["logging-proxy"], compose["serving"]
    assert proxy["entrypoint"] == ENTRY_POINT
    options = parse_flags(proxy["command"])
    assert options.upstream_rest == f"serving:{_flag(serving['command'], '--rest_api_port')}"
    assert options.upstream_grpc == f"serving:{_flag(serving['command'], '--port')}"
    # Clients keep the usual host ports; they land on the proxy's listeners.
    published = dict(port.split(":") for port in proxy["ports"])
    assert published == {str(GRPC_PORT): str(options.port), str(REST_PORT): str(options.rest_port)}
    mounts = {volume["target"]: volume for volume in proxy["volumes"]}
    assert options.request_log_dir in mounts and not mounts[options.request_log_dir].get("read_only")
    assert 0 < options.sampling_rate < 1 and options.max_files > 0
    assert proxy["depends_on"]["serving"]["condition"] == "service_healthy"


def test_kubernetes_runs_the_proxy_as_a_sidecar_the_service_targets(pod):
    proxy, serving = _container(pod, "logging-proxy"), _container(pod, "tensorflow-serving")
    assert proxy["command"] == ENTRY_POINT
    options = parse_flags(proxy["args"])
    assert options.upstream_rest == f"localhost:{_flag(serving['args'], '--rest_api_port')}"
    assert options.upstream_grpc == f"localhost:{_flag(serving['args'], '--port')}"
    ports = {port["name"]: port["containerPort"] for port in proxy["ports"]}
    (service,) = yaml.safe_load_all((K8S_BASE / "service.yaml").read_text())
    targets = {port["port"]: ports[port["targetPort"]] for port in service["spec"]["ports"]}
    assert targets == {GRPC_PORT: options.port, REST_PORT: options.rest_port}
    # The log goes to the request-log claim, not to the container's disk.
    (mount,) = [m for m in proxy["volumeMounts"] if m["mountPath"] == options.request_log_dir]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claims = [d["metadata"]["name"] for d in yaml.safe_load_all((K8S_BASE / "pvc.yaml").read_text()) if d]
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    for probe in ("readinessProbe", "livenessProbe"):
        assert proxy[probe]["httpGet"] == {"path": options.metrics_path, "port": "proxy-rest"}


def test_compose_and_kubernetes_run_the_proxy_alike(compose, pod):
    in_compose = parse_flags(compose["logging-proxy"]["command"])
    in_kubernetes = parse_flags(_container(pod, "logging-proxy")["args"])
    for options in (in_compose, in_kubernetes):
        options.upstream_rest = options.upstream_rest.split(":")[1]
        options.upstream_grpc = options.upstream_grpc.split(":")[1]
    assert in_compose == in_kubernetes


def test_the_sidecar_image_is_the_project_image_kustomize_names():
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    (deployment,) = yaml.safe_load_all((K8S_BASE / "deployment.yaml").read_text())
    image = _container(deployment["spec"]["template"]["spec"], "logging-proxy")["image"]
    assert image in [entry["name"] for entry in kustomization["images"]]



def _compose_seconds(duration: str) -> float:
    """Seconds of a compose duration such as "40s" or "1m30s"."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"unexpected compose duration {duration!r}"
    return 60 * int(parts[1] or 0) + int(parts[2] or 0)


def test_a_stopping_proxy_is_not_killed_before_it_completes_its_log_file(compose, pod):
    # Past the grace period the proxy is killed and its open file stays hidden (unread by the
    # skew check) until the next proxy starts.
    in_compose = parse_flags(compose["logging-proxy"]["command"])
    assert _compose_seconds(compose["logging-proxy"]["stop_grace_period"]) > in_compose.longest_stop_seconds()
    in_kubernetes = parse_flags(_container(pod, "logging-proxy")["args"])
    assert pod["terminationGracePeriodSeconds"] > in_kubernetes.longest_stop_seconds()


def test_operator_ports_reach_tf_serving_past_the_proxy(compose):
    # `python -m pipeline rollout compare` must not have its requests logged as traffic.
    proxy, serving = compose["logging-proxy"], compose["serving"]
    options = parse_flags(proxy["command"])
    published = dict(port.split(":") for port in serving["ports"])
    assert sorted(published.values()) == sorted([_flag(serving["command"], "--port"), _flag(serving["command"], "--rest_api_port")])
    assert not set(published) & {port.split(":")[0] for port in proxy["ports"]}
    assert options.upstream_grpc.split(":")[1] in published.values()
