"""The output dir's layout and the ML Metadata connection (`pipeline.ops.metadata`)."""
from ml_metadata import metadata_store

from pipeline.ops import metadata


def test_the_layout_names_the_four_places_under_the_output_dir():
    layout = metadata.OutputLayout("/runs/a")
    assert (layout.metadata_path, layout.pipeline_root, layout.serving_model_dir, layout.reports_dir) == (
        "/runs/a/metadata.db",
        "/runs/a/pipeline_root",
        "/runs/a/serving_model",
        "/runs/a/reports",
    )


def test_a_first_run_creates_the_output_dir_and_the_metadata(tmp_path):
    # As TFX's own sqlite_metadata_connection_config does: a run into a new output dir
    # (the Airflow DAG's first task) must be able to create the file.
    path = tmp_path / "new" / "out" / "metadata.db"
    store = metadata_store.MetadataStore(metadata.sqlite_connection_config(str(path)))
    assert store.get_artifacts() == [] and path.is_file()


def test_readers_never_create_a_file(tmp_path):
    path = tmp_path / "metadata.db"
    try:
        metadata_store.MetadataStore(metadata.sqlite_connection_config(str(path), metadata.READ))
    except RuntimeError:
        pass
    assert not path.exists()


def test_executions_a_killed_run_left_running_are_marked_failed(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    config = metadata.sqlite_connection_config(str(tmp_path / "metadata.db"))
    store = metadata_store.MetadataStore(config)
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    states = [metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.NEW]
    ids = store.put_executions([metadata_store_pb2.Execution(type_id=type_id, last_known_state=state) for state in states])
    assert metadata.abandon_unfinished(config) == [ids[0], ids[2]]
    after = {execution.id: execution for execution in store.get_executions()}
    assert [after[i].last_known_state for i in ids] == [metadata_store_pb2.Execution.FAILED, metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.FAILED]
    assert metadata.ABANDONED_PROPERTY in after[ids[0]].custom_properties
    assert metadata.abandon_unfinished(config) == []  # done once
    assert metadata.abandon_unfinished(metadata.sqlite_connection_config(str(tmp_path / "none" / "metadata.db"))) == []
