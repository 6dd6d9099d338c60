"""Lineage of the served version of the shared small pipeline run, read from ML Metadata."""
import hashlib
import json

import pytest

from pipeline import configs
from pipeline.ops import lineage
from pipeline.runners.code_fingerprint import module_fingerprint

pytestmark = pytest.mark.slow


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(small_pipeline_run):
    """The lineage of the highest version under the run's serving_model/."""
    output_dir = small_pipeline_run["output_dir"]
    version = lineage.latest_serving_version(str(small_pipeline_run["serving_model_dir"]))
    return lineage.trace_version(str(output_dir), version)


def test_served_version_traces_to_the_exact_span_files(served, small_pipeline_run):
    data_root = small_pipeline_run["data_root"]
    on_disk = {str(path): _sha256(path) for path in sorted(data_root.glob("span-*/*.csv"))}
    assert {f.path: f.sha256 for f in served.data.files} == on_disk
    assert {f.status_now for f in served.data.files} == {"unchanged"}
    assert served.data.spans == [1, 2, 3]


def test_served_version_traces_to_the_module_code_and_training_run(served):
    trainer = served.trainer
    assert trainer.module_fingerprint == module_fingerprint(), (
        "the Trainer recorded module fingerprint %r; tests/conftest.py's run_small_pipeline must pass "
        "module_fingerprint=module_fingerprint(), as run_local.py does" % trainer.module_fingerprint
    )
    assert served.transform.module_fingerprint == trainer.module_fingerprint
    assert trainer.run_fn == configs.RUN_FN
    assert (trainer.train_steps, trainer.eval_steps) == (150, 5)
    assert served.transform.preprocessing_fn == configs.PREPROCESSING_FN


def test_served_version_traces_to_schema_evaluation_blessing_and_push(served, small_pipeline_run, schema_path):
    assert served.schema.sha256 == _sha256(schema_path)
    assert served.schema.imported_from == str(schema_path)
    assert served.blessed is True
    assert served.evaluation.metrics["auc"][0] == pytest.approx(small_pipeline_run["summary"].metrics["auc"][0])
    assert served.evaluation.thresholds["auc"].startswith(">= 0.85")
    assert served.evaluation.failed_thresholds == []
    assert served.push.destination == str(small_pipeline_run["serving_model_dir"] / served.version)
    # Every part of the walk is in the list of artifacts, so housekeeping can protect them.
    for part in (served.push.pushed_model, served.blessing, served.trainer.model, served.transform.transform_graph,
                 served.schema.schema, served.data.examples):
        assert part.id in served.artifact_ids


def test_command_line_prints_text_and_json(small_pipeline_run, served, capsys):
    output_dir = str(small_pipeline_run["output_dir"])
    assert lineage.main(["--output-dir", output_dir]) == lineage.EXIT_OK
    text = capsys.readouterr().out
    assert f"Lineage of serving version {served.version}" in text
    assert served.data.files[0].sha256 in text
    assert lineage.main(["--output-dir", output_dir, "--version", served.version, "--json"]) == lineage.EXIT_OK
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["version"] == served.version
    assert as_json["trainer"]["module_fingerprint"] == served.trainer.module_fingerprint


def test_unknown_version_is_reported_not_crashed_on(small_pipeline_run, capsys):
    output_dir = small_pipeline_run["output_dir"]
    assert lineage.main(["--output-dir", str(output_dir), "--version", "123"]) == lineage.EXIT_UNKNOWN_VERSION
    error = capsys.readouterr().err
    assert "version 123 is unknown to ML Metadata" in error
    assert str(output_dir / "metadata.db") in error


def test_missing_metadata_file_is_named_and_not_created(tmp_path, capsys):
    (tmp_path / "serving_model" / "7").mkdir(parents=True)
    (tmp_path / "serving_model" / "7" / "saved_model.pb").write_bytes(b"")  # a complete version
    assert lineage.main(["--output-dir", str(tmp_path)]) == lineage.EXIT_ERROR
    assert f"no ML Metadata file at {tmp_path / 'metadata.db'}" in capsys.readouterr().err
    assert not (tmp_path / "metadata.db").exists()


def test_version_asked_from_a_running_server(small_pipeline_run, served, capsys):
    from serving.devserver.server import ModelServer, ServerOptions

    server = ModelServer(
        ServerOptions(
            model_name=configs.SERVING_MODEL_NAME,
            model_base_path=str(small_pipeline_run["serving_model_dir"]),
            port=0,
            rest_api_port=0,
        )
    ).start()
    try:
        assert lineage.server_version(server.rest_url, configs.SERVING_MODEL_NAME) == served.version
        argv = ["--output-dir", str(small_pipeline_run["output_dir"]), "--server", server.rest_url, "--json"]
        assert lineage.main(argv) == lineage.EXIT_OK
        assert json.loads(capsys.readouterr().out)["version"] == served.version
        with pytest.raises(lineage.LineageError, match="answered HTTP 404"):
            lineage.server_version(server.rest_url, "no_such_model")
    finally:
        server.stop()


def test_unreachable_server_is_named():
    with pytest.raises(lineage.LineageError, match=r"cannot reach the model server at http://127\.0\.0\.1:9/v1/models/big_tipper"):
        lineage.server_version("http://127.0.0.1:9", "big_tipper", timeout_seconds=2)
