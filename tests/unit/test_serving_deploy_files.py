"""Offline checks of the production serving files: serving/deploy/docker-compose.yml, serving/deploy/config/,
serving/deploy/k8s/.

No Docker engine or cluster is needed: the YAML and text-format protos are parsed here, and the
facts several files must share (model name, ports, paths, image release, flags) are compared.
When kubectl is installed, the kustomizations are also rendered with `kubectl kustomize`.
"""
import importlib
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
from typing import Any, Dict, List, Optional

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tests.conftest import REPO_ROOT

SERVING = REPO_ROOT / "serving" / "deploy"
CONFIG = SERVING / "config"
K8S = SERVING / "k8s"
COMPOSE_PATH = SERVING / "docker-compose.yml"
MODEL_MOUNT = "/models/big_tipper"
METRICS_PATH = "/monitoring/prometheus/metrics"
GRPC_PORT, REST_PORT = 8500, 8501
# Files the server reads from the ConfigMap; serving/deploy/config/ holds the canonical copies.
CONFIGMAP_FILES = ["models.config", "monitoring.config", "batching.config"]
KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "gcs", K8S / "overlays" / "canary"]


def _load_yaml_documents(path: pathlib.Path) -> List[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def _model_server_config(path: pathlib.Path) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def _only_model(path: pathlib.Path) -> model_server_config_pb2.ModelConfig:
    models = _model_server_config(path).model_config_list.config
    assert len(models) == 1, f"{path} should configure one model, configures {[m.name for m in models]}"
    return models[0]


def _config_proto_class(name: str) -> Any:
    """Returns TF Serving's message class `name` (MonitoringConfig or BatchingParameters).

    The tensorflow-serving-api wheel lacks their generated modules; the project's local model
    server declares the same messages in serving.devserver.config_protos.
    """
    generated = {
        "MonitoringConfig": "tensorflow_serving.config.monitoring_config_pb2",
        "BatchingParameters": "tensorflow_serving.servables.tensorflow.session_bundle_config_pb2",
    }
    for module_name in (generated[name], "serving.devserver.config_protos"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    pytest.skip(f"no {name} message: neither {generated[name]} nor serving.devserver.config_protos provides it")


def _flags(arguments: List[str]) -> Dict[str, Optional[str]]:
    """Returns {"--flag": value or None} for a model server command line."""
    flags: Dict[str, Optional[str]] = {}
    for argument in arguments:
        assert argument.startswith("--"), f"unexpected model server argument {argument!r}"
        name, _, value = argument.partition("=")
        flags[name] = value if value else None
    return flags


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    (document,) = _load_yaml_documents(COMPOSE_PATH)
    return document


@pytest.fixture(scope="module")
def serving_service(compose: Dict[str, Any]) -> Dict[str, Any]:
    return compose["services"]["serving"]


@pytest.fixture(scope="module")
def k8s_base() -> Dict[str, Dict[str, Any]]:
    """The base's resources keyed by kind."""
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    resources: Dict[str, Dict[str, Any]] = {}
    for resource_file in kustomization["resources"]:
        for document in _load_yaml_documents(K8S / "base" / resource_file):
            # The first of a kind: pvc.yaml's first claim is the model store (the request log's
            # claim follows it).
            resources.setdefault(document["kind"], document)
    resources["Kustomization"] = kustomization
    return resources


@pytest.fixture(scope="module")
def tf_serving_container(k8s_base: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    # The pod also runs the logging-proxy sidecar (tests/unit/test_logging_proxy_deploy.py).
    (container,) = [c for c in k8s_base["Deployment"]["spec"]["template"]["spec"]["containers"] if c["name"] == "tensorflow-serving"]
    return container


# --- Every file parses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted([COMPOSE_PATH, CONFIG / "prometheus.yml", *K8S.rglob("*.yaml")]), ids=lambda p: str(p.relative_to(SERVING))
)
def test_yaml_file_parses(path):
    assert _load_yaml_documents(path), f"{path} holds no YAML document"


@pytest.mark.parametrize(
    "path",
    sorted([*CONFIG.glob("models*.config*"), *K8S.rglob("models.config")]),
    ids=lambda p: str(p.relative_to(SERVING)),
)
def test_model_server_config_parses_and_serves_the_pipeline_s_model(path):
    model = _only_model(path)
    assert model.model_platform == "tensorflow", f"{path}: model_platform {model.model_platform!r}"
    assert model.name == "big_tipper", f"{path}: model name {model.name!r}"
    assert model.base_path == MODEL_MOUNT or model.base_path.startswith("gs://"), f"{path}: base_path {model.base_path!r}"


def test_model_name_is_the_pipeline_s_serving_model_name():
    configs = pytest.importorskip("pipeline.configs", reason="pipeline/configs.py is not written yet")
    name = getattr(configs, "SERVING_MODEL_NAME", None)
    if name is None:
        pytest.skip("pipeline.configs has no SERVING_MODEL_NAME yet")
    assert _only_model(CONFIG / "models.config").name == name
    assert MODEL_MOUNT == f"/models/{name}"


# --- serving/config ----------------------------------------------------------------------------


def test_default_policy_keeps_the_previous_version_loaded_and_sets_no_labels():
    model = _only_model(CONFIG / "models.config")
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    # Two versions: a new push is served next to the one it replaces, which stays callable
    # by number for a quick comparison or rollback.
    assert model.model_version_policy.latest.num_versions == 2
    # Labels need loaded versions, which a fresh server does not have yet.
    assert not model.version_labels


def test_rollback_example_pins_versions_and_labels_only_pinned_versions():
    model = _only_model(CONFIG / "models.rollback.config.example")
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    pinned = set(model.model_version_policy.specific.versions)
    assert set(model.version_labels) == {"stable", "canary"}
    assert set(model.version_labels.values()) <= pinned, "a label points to a version the policy does not load"
    assert model.version_labels["stable"] < model.version_labels["canary"], "stable should be the older version"


def test_canary_overlay_uses_the_documented_rollback_config():
    assert _model_server_config(K8S / "overlays" / "canary" / "models.config") == _model_server_config(
        CONFIG / "models.rollback.config.example"
    )


def test_gcs_overlay_differs_from_the_default_only_by_its_bucket_path():
    default = _model_server_config(CONFIG / "models.config")
    on_bucket = _model_server_config(K8S / "overlays" / "gcs" / "models.config")
    assert on_bucket.model_config_list.config[0].base_path.startswith("gs://")
    on_bucket.model_config_list.config[0].base_path = MODEL_MOUNT
    assert on_bucket == default


def test_monitoring_config_exposes_prometheus_metrics():
    monitoring_config_class = _config_proto_class("MonitoringConfig")
    monitoring = text_format.Parse((CONFIG / "monitoring.config").read_text(), monitoring_config_class())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == METRICS_PATH


def test_batching_config_is_valid_for_tf_serving():
    batching_parameters_class = _config_proto_class("BatchingParameters")
    # Strict parse: a misspelt field would be a startup error in tensorflow_model_server.
    batching = text_format.Parse((CONFIG / "batching.config").read_text(), batching_parameters_class())
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        assert batching.HasField(field), f"batching.config does not set {field}"
    sizes = list(batching.allowed_batch_sizes)
    # TF Serving refuses to start otherwise (batching_session.cc).
    assert sizes == sorted(set(sizes)), f"allowed_batch_sizes must increase: {sizes}"
    assert sizes[-1] == batching.max_batch_size.value, "the last allowed batch size must be max_batch_size"
    # A 2-4 core box: a thread per core at most, and batching may not add more than 10 ms.
    assert 1 <= batching.num_batch_threads.value <= 4
    assert 0 < batching.batch_timeout_micros.value <= 10_000


def test_prometheus_scrapes_the_serving_metrics_path(compose):
    (scrape,) = yaml.safe_load((CONFIG / "prometheus.yml").read_text())["scrape_configs"]
    assert scrape["metrics_path"] == METRICS_PATH
    (target,) = scrape["static_configs"][0]["targets"]
    assert target == f"serving:{REST_PORT}" and "serving" in compose["services"]


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_image_is_the_tf_serving_release_of_the_installed_tensorflow(serving_service):
    tensorflow_version = importlib.metadata.version("tensorflow")
    major_minor = ".".join(tensorflow_version.split(".")[:2])
    image = serving_service["image"]
    assert re.fullmatch(rf"tensorflow/serving:{re.escape(major_minor)}\.\d+", image), (
        f"docker-compose.yml runs {image}, but the model is built with TensorFlow {tensorflow_version}"
    )


def test_compose_serves_the_model_folder_the_pusher_writes(serving_service):
    (model_volume,) = [volume for volume in serving_service["volumes"] if volume["target"] == MODEL_MOUNT]
    assert model_volume["read_only"] is True
    match = re.fullmatch(r"\$\{SERVING_MODEL_DIR:-(?P<default>[^}]+)\}", model_volume["source"])
    assert match, f"model folder should be overridable by SERVING_MODEL_DIR: {model_volume['source']!r}"
    # run_local.py writes <output-dir>/serving_model/<version>/, output dir outputs/ by default.
    assert (SERVING / match["default"]).resolve() == REPO_ROOT / "outputs" / "serving_model"


def test_compose_flags_point_at_mounted_config_files(serving_service):
    flags = _flags(serving_service["command"])
    assert serving_service["entrypoint"] == ["tensorflow_model_server"]
    assert flags["--port"] == str(GRPC_PORT) and flags["--rest_api_port"] == str(REST_PORT)
    assert "--enable_batching" in flags and "--file_system_poll_wait_seconds" in flags
    mounts = {volume["target"]: volume["source"] for volume in serving_service["volumes"]}
    for flag, file_name in [
        ("--model_config_file", "models.config"),
        ("--monitoring_config_file", "monitoring.config"),
        ("--batching_parameters_file", "batching.config"),
    ]:
        container_path = pathlib.PurePosixPath(flags[flag])
        assert container_path.name == file_name, f"{flag}={container_path}"
        host_folder = SERVING / mounts[str(container_path.parent)]
        assert (host_folder / file_name).is_file(), f"{flag}: {host_folder / file_name} does not exist"


def test_compose_publishes_grpc_and_rest_ports(compose, serving_service):
    # Clients reach TensorFlow Serving through the logging proxy, which publishes the usual
    # ports (tests/unit/test_logging_proxy_deploy.py); the server's own ports are published on
    # other host ports for operator tools whose requests must not be logged as traffic.
    assert sorted(serving_service["expose"]) == [str(GRPC_PORT), str(REST_PORT)]
    proxy_ports = sorted(port.split(":")[0] for port in compose["services"]["logging-proxy"]["ports"])
    assert proxy_ports == [str(GRPC_PORT), str(REST_PORT)]
    bypass = dict(port.split(":") for port in serving_service["ports"])
    assert sorted(bypass.values()) == [str(GRPC_PORT), str(REST_PORT)]
    assert not set(bypass) & set(proxy_ports), "a host port is published twice"
    prometheus = compose["services"]["prometheus"]
    mounted = {volume["target"]: volume["source"] for volume in prometheus["volumes"]}
    assert (SERVING / mounted["/etc/prometheus/prometheus.yml"]).resolve() == CONFIG / "prometheus.yml"


def test_compose_healthcheck_asks_the_status_endpoint_with_a_tool_the_image_has(serving_service):
    test = serving_service["healthcheck"]["test"]
    # tensorflow/serving has bash but neither curl nor wget; CMD-SHELL would run /bin/sh (dash),
    # which has no /dev/tcp.
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3]
    assert "curl" not in script and "wget" not in script
    assert f"/dev/tcp/127.0.0.1/{REST_PORT}" in script
    assert "GET /v1/models/big_tipper " in script and "AVAILABLE" in script


# --- Kubernetes --------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", CONFIGMAP_FILES)
def test_configmap_copies_are_identical_to_serving_config(file_name):
    canonical = CONFIG / file_name
    copy = K8S / "base" / "config" / file_name
    assert copy.read_bytes() == canonical.read_bytes(), (
        f"{copy} differs from {canonical}; copy it again: cp {canonical.relative_to(REPO_ROOT)} {copy.relative_to(REPO_ROOT)}"
    )


def test_configmap_holds_the_files_the_server_flags_name(k8s_base, tf_serving_container):
    (generator,) = k8s_base["Kustomization"]["configMapGenerator"]
    assert sorted(pathlib.PurePosixPath(f).name for f in generator["files"]) == sorted(CONFIGMAP_FILES)
    volumes = {volume["name"]: volume for volume in k8s_base["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in tf_serving_container["volumeMounts"]}
    config_volumes = [name for name, volume in volumes.items() if volume.get("configMap", {}).get("name") == generator["name"]]
    assert len(config_volumes) == 1, f"no volume mounts ConfigMap {generator['name']}"
    config_dir = mounts[config_volumes[0]]
    flags = _flags(tf_serving_container["args"])
    assert flags["--model_config_file"] == f"{config_dir}/models.config"
    assert flags["--monitoring_config_file"] == f"{config_dir}/monitoring.config"
    assert flags["--batching_parameters_file"] == f"{config_dir}/batching.config"


def test_deployment_runs_the_compose_image_with_the_same_flags(serving_service, tf_serving_container):
    assert tf_serving_container["image"] == serving_service["image"]
    assert tf_serving_container["command"] == ["tensorflow_model_server"]
    compose_flags = _flags(serving_service["command"])
    k8s_flags = _flags(tf_serving_container["args"])
    assert sorted(k8s_flags) == sorted(compose_flags)
    # Poll intervals may differ (a cluster volume is slower to list); everything else is shared.
    for flag in set(compose_flags) - {"--file_system_poll_wait_seconds"}:
        assert k8s_flags[flag] == compose_flags[flag], f"{flag}: k8s {k8s_flags[flag]} vs compose {compose_flags[flag]}"


def test_deployment_mounts_the_claim_at_the_model_base_path(k8s_base, tf_serving_container):
    volumes = {volume["name"]: volume for volume in k8s_base["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    (model_mount,) = [mount for mount in tf_serving_container["volumeMounts"] if mount["mountPath"] == MODEL_MOUNT]
    claim = volumes[model_mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == k8s_base["PersistentVolumeClaim"]["metadata"]["name"]
    assert _only_model(K8S / "base" / "config" / "models.config").base_path == MODEL_MOUNT


def test_readiness_waits_for_an_available_version_with_the_compose_check(tf_serving_container, serving_service):
    # The same script in both files (tests/integration/test_serving_probes.py runs it against a
    # real server): ready only when the status names an AVAILABLE version.
    assert tf_serving_container["readinessProbe"]["exec"]["command"] == serving_service["healthcheck"]["test"][1:]


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe"])
def test_probes_ask_the_rest_status_endpoint(tf_serving_container, probe):
    ports = {port["name"]: port["containerPort"] for port in tf_serving_container["ports"]}
    http_get = tf_serving_container[probe]["httpGet"]
    assert http_get["path"] == "/v1/models/big_tipper"
    assert ports.get(http_get["port"], http_get["port"]) == REST_PORT


def test_service_exposes_grpc_and_rest_to_the_pods(k8s_base, tf_serving_container):
    service = k8s_base["Service"]
    containers = k8s_base["Deployment"]["spec"]["template"]["spec"]["containers"]
    container_ports = {port["name"]: port["containerPort"] for container in containers for port in container["ports"]}
    exposed = {port["port"]: container_ports[port["targetPort"]] for port in service["spec"]["ports"]}
    # The usual ports, served by the logging-proxy sidecar, which forwards to TensorFlow Serving's
    # (tests/unit/test_logging_proxy_deploy.py checks its flags).
    assert sorted(exposed) == [GRPC_PORT, REST_PORT]
    assert {port["containerPort"] for port in tf_serving_container["ports"]} == {GRPC_PORT, REST_PORT}
    pod_labels = k8s_base["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert k8s_base["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("kustomization_dir", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_names_only_files_that_exist(kustomization_dir):
    kustomization = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    paths = list(kustomization.get("resources", []))
    paths += [patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
    for generator in kustomization.get("configMapGenerator", []):
        paths += generator.get("files", [])
    for relative in paths:
        target = (kustomization_dir / relative).resolve()
        assert target.exists(), f"{kustomization_dir / 'kustomization.yaml'} names {relative}, which does not exist"
        # kustomize refuses files outside the kustomization root (folders of other kustomizations are fine).
        assert target.is_dir() or kustomization_dir.resolve() in target.parents, f"{relative} is outside the root"


def _kustomize(kustomization_dir: pathlib.Path) -> Dict[str, Dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the kustomizations are only checked file by file")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(kustomization_dir)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, f"kubectl kustomize {kustomization_dir} failed: {rendered.stderr}"
    return {document["kind"]: document for document in yaml.safe_load_all(rendered.stdout) if document}


def _rendered_model_config(resources: Dict[str, Dict[str, Any]]) -> model_server_config_pb2.ModelServerConfig:
    text = resources["ConfigMap"]["data"]["models.config"]
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_kustomize_renders_the_base():
    resources = _kustomize(K8S / "base")
    assert sorted(resources) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"]
    assert resources["ConfigMap"]["data"]["batching.config"] == (CONFIG / "batching.config").read_text()
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == resources["ConfigMap"]["metadata"]["name"]


def test_kustomize_gcs_overlay_reads_the_bucket_without_a_claim():
    resources = _kustomize(K8S / "overlays" / "gcs")
    # No model claim; the request log's claim (the logging proxy's files) stays.
    assert resources["PersistentVolumeClaim"]["metadata"]["name"] == "big-tipper-request-log"
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    claims = [volume["persistentVolumeClaim"]["claimName"] for volume in pod["volumes"] if "persistentVolumeClaim" in volume]
    assert claims == ["big-tipper-request-log"]
    assert [mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]] == ["/config"]
    assert pod["serviceAccountName"] == resources["ServiceAccount"]["metadata"]["name"]
    assert _rendered_model_config(resources).model_config_list.config[0].base_path.startswith("gs://")
    assert resources["ConfigMap"]["data"]["monitoring.config"] == (CONFIG / "monitoring.config").read_text()


def test_kustomize_canary_overlay_pins_labelled_versions():
    resources = _kustomize(K8S / "overlays" / "canary")
    assert resources["Deployment"]["spec"]["replicas"] == 3
    model = _rendered_model_config(resources).model_config_list.config[0]
    assert set(model.version_labels) == {"stable", "canary"}
