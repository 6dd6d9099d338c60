"""Rollback: serving goes back to an earlier version, nothing is deleted, lineage records it."""
import os
import shutil
import time

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops.rollback import ROLLBACK_EXECUTION_TYPE, RollbackError, main, model_config, rollback, write_config
from serving import client
from serving.devserver.server import ModelServer, ServerOptions

pytestmark = pytest.mark.slow


@pytest.fixture
def two_versions(small_pipeline_run, tmp_path):
    """A copy of the pipeline's output where a newer version (a copy) was pushed after the first."""
    output_dir = tmp_path / "output"
    output_dir.mkdir()
    shutil.copy(small_pipeline_run["output_dir"] / "metadata.db", output_dir / "metadata.db")
    serving_dir = output_dir / "serving_model"
    shutil.copytree(small_pipeline_run["serving_model_dir"], serving_dir)
    old = int(sorted(os.listdir(serving_dir))[0])
    shutil.copytree(serving_dir / str(old), serving_dir / str(old + 100))
    return output_dir, serving_dir, old, old + 100


def _available(rest_address):
    status = client.model_status_rest(rest_address, SERVING_MODEL_NAME)
    return sorted(int(v["version"]) for v in status["model_version_status"] if v["state"] == "AVAILABLE")


def _wait_for(rest_address, expected, seconds=30.0):
    deadline = time.monotonic() + seconds
    while _available(rest_address) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return _available(rest_address)


def test_rollback_serves_the_chosen_version_and_deletes_nothing(two_versions):
    output_dir, serving_dir, old, new = two_versions
    before = sorted(os.listdir(serving_dir))
    options = ServerOptions(model_name=SERVING_MODEL_NAME, model_base_path=str(serving_dir), port=0, rest_api_port=0)
    with ModelServer(options) as server:
        rest_address = f"127.0.0.1:{server.rest_port}"
        assert _wait_for(rest_address, [new]) == [new]
        config_file = output_dir / "models.config"
        exit_code = main(
            ["--serving-dir", str(serving_dir), "--to", str(old), "--config-file", str(config_file),
             "--grpc", server.grpc_target, "--output-dir", str(output_dir)]
        )
        assert exit_code == 0
        assert _wait_for(rest_address, [old]) == [old]
        trip = {"trip_miles": 1.0, "fare": 6.0, "payment_type": "Credit Card"}
        assert len(client.predict_trips_rest(rest_address, SERVING_MODEL_NAME, [trip], label="stable")) == 1
        assert f"versions: {old}" in config_file.read_text()
        # Back to "the newest version serves".
        assert main(["--serving-dir", str(serving_dir), "--latest", "--config-file", str(config_file), "--grpc", server.grpc_target]) == 0
        assert _wait_for(rest_address, [new]) == [new]
    assert sorted(os.listdir(serving_dir)) == before


def test_rollback_is_recorded_in_ml_metadata(two_versions):
    output_dir, serving_dir, old, _ = two_versions
    rollback(str(serving_dir), old, str(output_dir / "models.config"), output_dir=str(output_dir))
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(output_dir / "metadata.db")
    store = metadata_store.MetadataStore(connection)
    [execution] = store.get_executions_by_type(ROLLBACK_EXECUTION_TYPE)
    assert execution.properties["to_version"].string_value == str(old)
    [event] = store.get_events_by_execution_ids([execution.id])
    [pushed] = store.get_artifacts_by_id([event.artifact_id])
    assert pushed.custom_properties["pushed_version"].string_value == str(old)


def test_rollback_to_a_version_that_is_not_there_is_refused(two_versions, capsys):
    output_dir, serving_dir, _, _ = two_versions
    with pytest.raises(RollbackError, match="version 42 is not a complete pushed version"):
        rollback(str(serving_dir), 42, str(output_dir / "models.config"))
    assert main(["--serving-dir", str(serving_dir), "--to", "42"]) == 2
    assert "there are" in capsys.readouterr().err
    assert not (output_dir / "models.config").exists()


def test_a_version_that_fails_to_load_stops_the_rollback_and_the_server_gets_its_config_back(two_versions, capsys):
    output_dir, serving_dir, old, new = two_versions
    # A folder that looks complete but holds no SavedModel: the server reports it END with the
    # load error, as TensorFlow Serving does.
    broken = new + 100
    (serving_dir / str(broken)).mkdir()
    (serving_dir / str(broken) / "saved_model.pb").write_bytes(b"not a SavedModel")
    config_file = output_dir / "models.config"
    served = model_config(str(serving_dir), new)
    before = write_config(served, str(config_file))
    with ModelServer(ServerOptions(model_config=served, port=0, rest_api_port=0)) as server:
        rest_address = f"127.0.0.1:{server.rest_port}"
        started = time.monotonic()
        assert main(["--serving-dir", str(serving_dir), "--to", str(broken), "--config-file", str(config_file), "--grpc", server.grpc_target]) == 1
        # At once, not after the 300 s a version gets to load.
        assert time.monotonic() - started < 60
        error = capsys.readouterr().err
        # The server's own message: what failed and why.
        assert f"version {broken} of {SERVING_MODEL_NAME!r} failed to load: DATA_LOSS: Could not parse SavedModel at {serving_dir / str(broken)}" in error
        assert f"The server was given its previous config ({config_file}) back" in error
        # The stable label, which the first reload took away while `broken` loaded, is back.
        status = client.model_status_rest(rest_address, SERVING_MODEL_NAME, label="stable")
        assert [int(entry["version"]) for entry in status["model_version_status"]] == [new]
    assert config_file.read_text() == before
