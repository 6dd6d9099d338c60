"""The baseline resolver on a real ML Metadata store (SQLite): the serving version's Model, nothing
before the first push, and a refusal when what serves is unknown to the store. The whole pipeline
after a rollback is in tests/e2e/test_pipeline.py."""
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from pipeline.components.serving_baseline import MODEL_KEY, PUSHED_MODEL_KEY, ServingBaselineError, ServingModelStrategy
from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops.rollback import model_config
from serving.versions import model_config_path


def _store(tmp_path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.db")
    return metadata_store.MetadataStore(config)


def _put(store, artifact):
    artifact_type = metadata_store_pb2.ArtifactType(name=artifact.type_name)
    artifact.type_id = store.put_artifact_type(artifact_type, can_add_fields=True)
    [artifact.id] = store.put_artifacts([artifact.mlmd_artifact])
    return artifact


def _push(store, serving_dir, version):
    """A Model, and a Pusher execution that pushed it as `version` (a complete folder)."""
    model = _put(store, standard_artifacts.Model())
    model.uri = f"/root/Trainer/model/{version}"
    pushed = standard_artifacts.PushedModel()
    pushed.set_int_custom_property("pushed", 1)
    pushed.set_string_custom_property("pushed_version", str(version))
    pushed.set_string_custom_property("pushed_destination", str(serving_dir / str(version)))
    pushed = _put(store, pushed)
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Pusher"))
    events = []
    for artifact, kind, key in ((model, metadata_store_pb2.Event.INPUT, "model"), (pushed, metadata_store_pb2.Event.OUTPUT, "pushed_model")):
        event = metadata_store_pb2.Event(artifact_id=artifact.id, type=kind)
        event.path.steps.add().key = key
        events.append((artifact.mlmd_artifact, event))
    store.put_execution(metadata_store_pb2.Execution(type_id=execution_type), artifact_and_events=events, contexts=[])
    (serving_dir / str(version)).mkdir(parents=True)
    (serving_dir / str(version) / "saved_model.pb").write_bytes(b"")
    return model, pushed


def _resolve(store, serving_dir, models, pushes):
    strategy = ServingModelStrategy(serving_model_dir=str(serving_dir), model_name=SERVING_MODEL_NAME)
    return strategy.resolve_artifacts(store, {MODEL_KEY: list(models), PUSHED_MODEL_KEY: list(pushes)})


def test_the_newest_version_serves_until_a_rollback_pins_another(tmp_path):
    from google.protobuf import text_format

    store, serving_dir = _store(tmp_path), tmp_path / "serving_model"
    first_model, first_push = _push(store, serving_dir, 100)
    second_model, second_push = _push(store, serving_dir, 200)
    models, pushes = [first_model, second_model], [first_push, second_push]
    assert [m.id for m in _resolve(store, serving_dir, models, pushes)[MODEL_KEY]] == [second_model.id]
    with open(model_config_path(str(serving_dir)), "w") as config_file:
        config_file.write(text_format.MessageToString(model_config(str(serving_dir), 100)))
    resolved = _resolve(store, serving_dir, models, pushes)
    assert [m.id for m in resolved[MODEL_KEY]] == [first_model.id]
    assert [p.id for p in resolved[PUSHED_MODEL_KEY]] == [first_push.id]


def test_no_baseline_before_the_first_push(tmp_path):
    assert _resolve(_store(tmp_path), tmp_path / "serving_model", [], []) == {MODEL_KEY: [], PUSHED_MODEL_KEY: []}


def test_a_serving_version_the_store_never_pushed_fails_the_run(tmp_path):
    store, serving_dir = _store(tmp_path), tmp_path / "serving_model"
    model, push = _push(store, serving_dir, 100)
    (serving_dir / "300").mkdir()
    (serving_dir / "300" / "saved_model.pb").write_bytes(b"")  # copied in from elsewhere
    with pytest.raises(ServingBaselineError, match="version 300 serves from .* has no push of it"):
        _resolve(store, serving_dir, [model], [push])
