"""Versions, policies, labels, failed loads, batching and shutdown of the local model server."""
import concurrent.futures
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving.devserver.batching import BatchingOptions
from tests.integration.serving_fixtures import model_templates  # noqa: F401 - pytest fixture
from tests.integration.serving_fixtures import (
    HALF_PLUS_TWO_2_VERSIONS,
    OFFSET_V1,
    OFFSET_V2,
    REPO_ROOT,
    add_version,
    make_base_path,
    rest_call,
    shared_model_path,
    start_server,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _plus_offset(server, model: str = "m", suffix: str = "", x: float = 1.0):
    return rest_call(
        f"{server.rest_url}/v1/models/{model}{suffix}:predict",
        {"signature_name": "plus_offset", "instances": [x]},
    )


def _versions(server, model: str = "m"):
    status, _, body = rest_call(f"{server.rest_url}/v1/models/{model}")
    if status != 200:
        return {}
    return {
        int(entry["version"]): (entry["state"], entry["status"])
        for entry in body["model_version_status"]
    }


def _config(name: str, base_path: pathlib.Path, **labels: int):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=name, base_path=str(base_path))
    for label, version in labels.items():
        model.version_labels[label] = version
    return config, model


def test_numeric_folders_are_versions_and_others_are_ignored(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"00000007": OFFSET_V1})
    (base_path / "notes").mkdir()
    (base_path / "9.tmp").mkdir()
    server = start_server(model_name="m", model_base_path=str(base_path))
    try:
        assert _versions(server) == {7: ("AVAILABLE", {"error_code": "OK", "error_message": ""})}
        assert _plus_offset(server, suffix="/versions/7")[0] == 200
    finally:
        server.stop()


def test_new_version_replaces_old_without_a_failed_request(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="m", model_base_path=str(base_path))
    failures = []
    answers = []
    stop = threading.Event()

    def keep_asking() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            status, _, body = _plus_offset(server)
            if status != 200:
                failures.append(body)
            else:
                answers.append(body["predictions"][0])

    clients = [threading.Thread(target=keep_asking) for _ in range(4)]
    try:
        for client in clients:
            client.start()
        assert wait_until(lambda: len(answers) > 20, timeout=30)
        add_version(base_path, "2", model_templates[OFFSET_V2])
        assert wait_until(lambda: _versions(server).get(1, ("",))[0] == "END", timeout=30)
        before = len(answers)
        assert wait_until(lambda: len(answers) > before + 20, timeout=30)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
        server.stop()
    assert failures == []
    assert 1.0 + OFFSET_V1 in answers and answers[-1] == 1.0 + OFFSET_V2


@pytest.mark.filterwarnings("ignore:Unexpected end-group tag")
def test_corrupt_version_reports_its_error_and_old_version_keeps_serving(
    tmp_path, model_templates  # noqa: F811
):
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    server = start_server(model_name="m", model_base_path=str(base_path))
    try:
        broken = base_path / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"this is not a protocol buffer")
        assert wait_until(lambda: 2 in _versions(server), timeout=30)
        state, status = _versions(server)[2]
        assert state == "END"
        assert status["error_code"] == "DATA_LOSS"
        assert "Could not parse SavedModel" in status["error_message"]
        assert _versions(server)[1][0] == "AVAILABLE"
        assert _plus_offset(server)[2] == {"predictions": [1.0 + OFFSET_V1]}

        # Half-written: the folder exists but holds no saved_model.pb yet.
        half_written = base_path / "3"
        half_written.mkdir()
        assert wait_until(lambda: 3 in _versions(server), timeout=30)
        state, status = _versions(server)[3]
        assert state == "END" and status["error_code"] == "NOT_FOUND"
        assert "Could not find SavedModel .pb or .pbtxt" in status["error_message"]
        assert _plus_offset(server)[2] == {"predictions": [1.0 + OFFSET_V1]}

        # A saved_model.pb that cannot be read is reported with the system's reason, not as missing.
        unreadable = base_path / "4"
        (unreadable / "saved_model.pb").mkdir(parents=True)
        assert wait_until(lambda: 4 in _versions(server), timeout=30)
        state, status = _versions(server)[4]
        assert state == "END" and status["error_code"] == "FAILED_PRECONDITION"
        assert "Could not read SavedModel at" in status["error_message"] and "Is a directory" in status["error_message"]
        shutil.rmtree(unreadable)

        # The writer finishes: the changed folder is retried and takes over.
        half_written.rmdir()
        add_version(base_path, "3", model_templates[OFFSET_V2])
        assert wait_until(lambda: _versions(server).get(3, ("",))[0] == "AVAILABLE", timeout=30)
        assert _plus_offset(server)[2] == {"predictions": [1.0 + OFFSET_V2]}
        assert wait_until(lambda: _versions(server)[1][0] == "END", timeout=30)
    finally:
        server.stop()


def test_version_policies_all_specific_and_latest_n(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(
        tmp_path / "m", model_templates, {"1": OFFSET_V1, "2": OFFSET_V2, "3": OFFSET_V1}
    )
    for policy, expected in (("all", {1, 2, 3}), ("specific", {1, 3}), ("latest", {2, 3})):
        config, model = _config("m", base_path)
        if policy == "all":
            model.model_version_policy.all.SetInParent()
        elif policy == "specific":
            model.model_version_policy.specific.versions.extend([1, 3, 9])
        else:
            model.model_version_policy.latest.num_versions = 2
        server = start_server(model_config=config)
        try:
            available = {v for v, (state, _) in _versions(server).items() if state == "AVAILABLE"}
            assert available == expected, policy
            # The newest available version (3, built with OFFSET_V1) answers unversioned calls.
            assert _plus_offset(server)[2] == {"predictions": [1.0 + OFFSET_V1]}
        finally:
            server.stop()


def test_default_policy_serves_only_the_latest(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1, "2": OFFSET_V2})
    server = start_server(model_name="m", model_base_path=str(base_path))
    try:
        assert set(_versions(server)) == {2}
        assert _plus_offset(server, suffix="/versions/1")[0] == 404
    finally:
        server.stop()


def test_labels_route_to_their_versions(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1, "2": OFFSET_V2})
    config, model = _config("m", base_path, stable=1, canary=2)
    model.model_version_policy.all.SetInParent()
    server = start_server(model_config=config)
    try:
        assert _plus_offset(server, suffix="/labels/stable")[2] == {"predictions": [1.0 + OFFSET_V1]}
        assert _plus_offset(server, suffix="/labels/canary")[2] == {"predictions": [1.0 + OFFSET_V2]}
        status, _, body = rest_call(f"{server.rest_url}/v1/models/m/labels/canary")
        assert [entry["version"] for entry in body["model_version_status"]] == ["2"]
    finally:
        server.stop()


def test_label_of_unavailable_version_fails_startup(tmp_path, model_templates):  # noqa: F811
    from serving.devserver.errors import StatusError

    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    config, _ = _config("m", base_path, stable=5)
    with pytest.raises(StatusError, match="version 5 of model m, which is not currently available"):
        start_server(model_config=config)


def test_missing_base_path_fails_startup_with_its_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="base path .*nowhere does not exist"):
        start_server(model_name="m", model_base_path=str(tmp_path / "nowhere"))


def test_shared_two_version_model_with_all_policy():
    base_path = shared_model_path(HALF_PLUS_TWO_2_VERSIONS)
    config, model = _config("default", base_path, stable=123, canary=124)
    model.model_version_policy.all.SetInParent()
    server = start_server(model_config=config)
    try:
        assert set(_versions(server, "default")) == {123, 124}
        for suffix in ("/versions/123", "/versions/124", "/labels/stable", "/labels/canary", ""):
            status, _, body = rest_call(
                f"{server.rest_url}/v1/models/default{suffix}:predict", {"instances": [2.0]}
            )
            assert (status, body) == (200, {"predictions": [3.0]}), suffix
    finally:
        server.stop()


def test_batching_merges_concurrent_requests_and_splits_answers(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    server = start_server(
        model_name="m",
        model_base_path=str(base_path),
        batching=BatchingOptions(
            max_batch_size=8, batch_timeout_micros=200_000, allowed_batch_sizes=(4, 8)
        ),
    )
    try:
        def one_call(index: int):
            return rest_call(
                f"{server.rest_url}/v1/models/m:predict",
                {"signature_name": "plus_offset", "instances": [float(index), float(index) + 0.5]},
            )

        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(one_call, range(12)))
        assert [body for _, _, body in results] == [
            {"predictions": [float(i), float(i) + 0.5]} for i in range(12)
        ]
        batcher = server.service.batcher
        assert batcher.largest_batch > 1
        assert batcher.executions < 12

        status, _, body = rest_call(
            f"{server.rest_url}/v1/models/m:predict",
            {"signature_name": "plus_offset", "instances": [1.0] * 9},
        )
        assert status == 400
        assert body["error"] == "Task size 9 is larger than maximum input batch size 8"
    finally:
        server.stop()


def test_batching_options_are_validated():
    with pytest.raises(ValueError, match="must equal max_batch_size"):
        BatchingOptions(max_batch_size=8, allowed_batch_sizes=(2, 4)).validate()
    with pytest.raises(ValueError, match="num_batch_threads must be >= 1"):
        BatchingOptions(num_batch_threads=0).validate()


def _write(path: pathlib.Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.timeout(180)
def test_command_line_server_prints_ports_and_drains_on_sigterm(tmp_path, model_templates):  # noqa: F811
    base_path = make_base_path(tmp_path / "m", model_templates, {"1": OFFSET_V1})
    monitoring = _write(
        tmp_path / "monitoring.config", 'prometheus_config { enable: true, path: "/metrics" }'
    )
    batching = _write(
        tmp_path / "batching.config",
        "max_batch_size { value: 500000 } batch_timeout_micros { value: 1000 }",
    )
    process = subprocess.Popen(
        [
            sys.executable, "-m", "serving.model_server",
            "--port=0", "--rest_api_port=0", "--bind_address=127.0.0.1",
            "--model_name=m", f"--model_base_path={base_path}",
            f"--monitoring_config_file={monitoring}",
            "--enable_batching", f"--batching_parameters_file={batching}",
            "--file_system_poll_wait_seconds=0.5",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()  # Blocks until the server is up (or exits).
        match = re.fullmatch(r"serving: gRPC on 127\.0\.0\.1:(\d+), REST on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        rest_url = f"http://127.0.0.1:{match.group(2)}"
        assert rest_call(f"{rest_url}/v1/models/m")[0] == 200
        status, _, text = rest_call(f"{rest_url}/metrics")
        assert status == 200 and "# TYPE :tensorflow:serving:request_count counter" in text

        # A large request in flight when SIGTERM arrives still gets its answer.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(
                rest_call,
                f"{rest_url}/v1/models/m:predict",
                {"signature_name": "plus_offset", "instances": [0.5] * 200_000},
            )
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            status, _, body = in_flight.result(timeout=60)
        assert status == 200 and len(body["predictions"]) == 200_000
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_command_line_rejects_conflicting_flags(tmp_path):
    from serving.model_server import build_options, parse_flags

    with pytest.raises(ValueError, match="exclusive"):
        build_options(parse_flags(["--model_base_path=/a", "--model_config_file=/b"]))
    with pytest.raises(ValueError, match="model base path"):
        build_options(parse_flags([]))
    bad = _write(tmp_path / "monitoring.config", "prometheus_config { enable: maybe }")
    with pytest.raises(ValueError, match="monitoring.config: not a valid text-format MonitoringConfig"):
        build_options(parse_flags(["--model_base_path=/a", f"--monitoring_config_file={bad}"]))
    config = _write(
        tmp_path / "models.config",
        'model_config_list { config { name: "a" base_path: "/models/a" model_platform: "tensorflow" '
        'model_version_policy { latest { num_versions: 2 } } version_labels { key: "stable" value: 1 } } }',
    )
    options = build_options(parse_flags([f"--model_config_file={config}", "--enable_batching"]))
    model = options.model_config.model_config_list.config[0]
    assert (model.name, model.model_version_policy.latest.num_versions) == ("a", 2)
    assert dict(model.version_labels) == {"stable": 1}
    assert options.batching == BatchingOptions()
    assert os.path.isabs(build_options(parse_flags(["--model_base_path=rel"])).model_base_path)
