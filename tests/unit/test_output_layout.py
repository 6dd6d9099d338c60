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
    store = metadata_store.MetadataStore(metadata.connection_config(str(path)))
    assert store.get_artifacts() == [] and path.is_file()


def test_readers_never_create_a_file(tmp_path):
    path = tmp_path / "metadata.db"
    try:
        metadata_store.MetadataStore(metadata.connection_config(str(path), metadata.READ))
    except RuntimeError:
        pass
    assert not path.exists()
