"""`python -m pipeline score`: a span scored in batch by the pipeline's pushed SavedModel, checked
row by row against the project's model server answering the same trips over REST.

The batch path (CSV cells -> tf.Example -> `serving_tf_example` in tfx_bsl's RunInference) and
the online path (JSON -> `serving_default` on the server) share no code above the model, so
agreement on every row, trips with empty cells included, says a batch score is what a client
would have been told.
"""
import csv
import os
import pathlib
from typing import Dict, List, Tuple

import numpy as np
import pytest

from modules import features
from pipeline import configs
from pipeline.runners import batch_score
from pipeline.runners.beam_args import beam_args_for
from pipeline.validation import span_rows
from serving import client
from serving.versions import serving_version, version_dir
from tests.conftest import DATA_ROOT, SCHEMA_PATH, trip, write_csv
from tests.integration.serving_fixtures import add_version, start_server

MODEL = configs.SERVING_MODEL_NAME
# Both paths run the same float32 graph; the CSV keeps the shortest text of each float32.
TOLERANCE = 1e-6
# The span scored: trips of shipped span 4 (the small run trains on spans 1-3), and a second
# file of hand-made trips with empty cells of every type.
SCORED_SPAN = 5
SHIPPED_ROWS = 60
PARTIAL_TRIPS = [
    trip(),
    trip(fare=None, trip_miles=None, payment_type="Cash"),
    trip(company=None, payment_type=None, dropoff_census_tract=None),
    trip(trip_start_timestamp=None, trip_start_hour=None, pickup_community_area=None),
    trip(pickup_latitude=None, pickup_longitude=None, dropoff_latitude=None, dropoff_longitude=None),
]


def _scored_span(data_root: pathlib.Path) -> pathlib.Path:
    """Writes span-5: data.csv (the first SHIPPED_ROWS trips of span 4) and partial.csv."""
    span_dir = data_root / f"{configs.SPAN_FOLDER_PREFIX}{SCORED_SPAN}"
    span_dir.mkdir(parents=True)
    with open(DATA_ROOT / "span-4" / "data.csv") as source:
        lines = [line for _, line in zip(range(SHIPPED_ROWS + 1), source)]
    (span_dir / "data.csv").write_text("".join(lines))
    write_csv(span_dir / "partial.csv", PARTIAL_TRIPS)
    return span_dir


def _trips(span_dir: pathlib.Path) -> List[Tuple[Tuple[str, int], Dict[str, object]]]:
    """((file name, line), trip as a client sends it) for every row, in file and line order."""
    import tensorflow_data_validation as tfdv

    types = span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))
    found = []
    for path in sorted(span_dir.glob("*.csv")):
        for line, row in span_rows.read_rows(str(path), span_rows.read_header(str(path)), types):
            found.append(((path.name, line), {key: value.decode() if isinstance(value, bytes) else value for key, value in row.items()}))
    return found


@pytest.fixture(scope="module")
def serving_model_dir(small_pipeline_run) -> pathlib.Path:
    return small_pipeline_run["serving_model_dir"]


@pytest.fixture(scope="module")
def scored_span(tmp_path_factory) -> pathlib.Path:
    return _scored_span(tmp_path_factory.mktemp("score_data"))


@pytest.fixture(scope="module")
def served_answers(serving_model_dir, scored_span, tmp_path_factory) -> Dict[Tuple[str, int], float]:
    """(file, line) -> the probability the project's server answers over REST for that trip,
    serving a copy of the version that serves in the small run."""
    version = serving_version(str(serving_model_dir), MODEL)
    base_path = tmp_path_factory.mktemp("served") / MODEL
    base_path.mkdir()
    add_version(base_path, str(version), pathlib.Path(version_dir(str(serving_model_dir), version)))
    server = start_server(model_name=MODEL, model_base_path=str(base_path), file_system_poll_wait_seconds=0)
    try:
        keyed = _trips(scored_span)
        answers = client.predict_trips_rest(server.rest_url.split("://", 1)[-1], MODEL, [one for _, one in keyed])
    finally:
        server.stop()
    return {key: answer for (key, _), answer in zip(keyed, answers)}


def _read_csv(path: pathlib.Path) -> List[Dict[str, str]]:
    with open(path, newline="") as scores:
        return list(csv.DictReader(scores))


@pytest.mark.slow
def test_batch_scores_match_the_served_answers_row_by_row(serving_model_dir, scored_span, served_answers, tmp_path, capsys):
    output = tmp_path / "scores.csv"
    exit_code = batch_score.main(
        ["--data-root", str(scored_span.parent), "--span", str(SCORED_SPAN), "--serving-dir", str(serving_model_dir), "--output", str(output)]
    )
    assert exit_code == batch_score.EXIT_OK, capsys.readouterr().err
    assert f"scored {SHIPPED_ROWS + len(PARTIAL_TRIPS)} trips" in capsys.readouterr().out
    rows = _read_csv(output)
    assert list(rows[0]) == list(batch_score.OUTPUT_COLUMNS)
    # One row per trip, sorted by file, then line (the header is line 1).
    keys = [(row["file"], int(row["line"])) for row in rows]
    assert keys == [("data.csv", line) for line in range(2, SHIPPED_ROWS + 2)] + [("partial.csv", line) for line in range(2, len(PARTIAL_TRIPS) + 2)]
    assert keys == sorted(served_answers)
    np.testing.assert_allclose([float(row["big_tipper_probability"]) for row in rows], [served_answers[key] for key in keys], rtol=0, atol=TOLERANCE)
    # The key columns join back to the trips: the timestamp is the row's, empty where its cell was.
    partial = {int(row["line"]): row[features.TIMESTAMP_KEY] for row in rows if row["file"] == "partial.csv"}
    assert partial[2] == str(PARTIAL_TRIPS[0][features.TIMESTAMP_KEY]) and partial[5] == ""
    # The scores are not one constant: the model tells trips apart.
    assert len({row["big_tipper_probability"] for row in rows}) > 10


@pytest.mark.slow
def test_parquet_output_from_an_explicit_saved_model_holds_the_same_scores(serving_model_dir, scored_span, served_answers, tmp_path):
    import pyarrow.parquet as pq

    version = serving_version(str(serving_model_dir), MODEL)
    output = tmp_path / "scores.parquet"
    saved_model = version_dir(str(serving_model_dir), version)
    workers = ["--beam-mode", "multi_processing", "--num-workers", "2"]
    exit_code = batch_score.main(["--span-dir", str(scored_span), "--saved-model", saved_model, "--output", str(output)] + workers)
    assert exit_code == batch_score.EXIT_OK
    table = pq.read_table(output).to_pydict()
    assert list(table) == list(batch_score.OUTPUT_COLUMNS)
    keys = list(zip(table["file"], table["line"]))
    assert keys == sorted(served_answers)
    np.testing.assert_allclose(table["big_tipper_probability"], [served_answers[key] for key in keys], rtol=0, atol=TOLERANCE)
    assert table[features.TIMESTAMP_KEY][keys.index(("partial.csv", 5))] is None


@pytest.mark.slow
def test_a_bad_cell_is_refused_by_file_line_column_and_value_and_the_old_output_stays(serving_model_dir, tmp_path, capsys):
    span_dir = tmp_path / "span-7"
    write_csv(span_dir / "data.csv", [trip(), trip(), trip()])
    lines = (span_dir / "data.csv").read_text().splitlines()
    # Line 3 (the second trip) gets a fare that is no number.
    lines[2] = lines[2].replace(",10.0,", ",ten dollars,", 1)
    (span_dir / "data.csv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "out" / "scores.csv"
    output.parent.mkdir()
    output.write_text("scores of yesterday\n")
    exit_code = batch_score.main(["--span-dir", str(span_dir), "--serving-dir", str(serving_model_dir), "--output", str(output), "--overwrite"])
    assert exit_code == batch_score.EXIT_DATA_REFUSED
    err = capsys.readouterr().err
    assert f"DATA REFUSED: {span_dir / 'data.csv'}, line 3, column 'fare': value 'ten dollars' is not a valid FLOAT" in err
    # Nothing half-written: the old file is as it was, and no temporary file is left beside it.
    assert output.read_text() == "scores of yesterday\n"
    assert os.listdir(output.parent) == ["scores.csv"]


SHIPPED_SPAN_4 = str(DATA_ROOT / "span-4")
DATAFLOW_FLAGS = ["--runner", "dataflow", "--project", "p", "--region", "us-central1", "--temp-location", "gs://b/tmp", "--sdk-container-image", "img"]


def test_usage_errors_are_found_before_anything_runs(tmp_path, capsys):
    existing = tmp_path / "scores.csv"
    existing.write_text("kept\n")
    new_file = str(tmp_path / "a.csv")
    cases = [
        (["--output", new_file], "give either --span-dir, or --data-root and --span"),
        (["--data-root", str(DATA_ROOT), "--output", new_file], "--data-root and --span go together"),
        (["--span-dir", SHIPPED_SPAN_4, "--output", str(existing)], f"--output {str(existing)!r} exists; give --overwrite"),
        (["--span-dir", SHIPPED_SPAN_4, "--output", str(tmp_path / "no" / "such" / "a.csv")], "cannot be written"),
        (["--span-dir", SHIPPED_SPAN_4, "--output", new_file, "--project", "p"], "--project: only for --runner dataflow, flink or spark"),
        (DATAFLOW_FLAGS + ["--span-dir", SHIPPED_SPAN_4, "--output", "gs://b/scores.csv"], "--span-dir, --serving-dir must be gs:// paths on Dataflow"),
        (["--runner", "flink", "--job-endpoint", "localhost:8099", "--span-dir", SHIPPED_SPAN_4, "--output", new_file], "FlinkRunner environment_type DOCKER needs environment_config"),
    ]
    for argv, message in cases:
        assert batch_score.main(argv) == batch_score.EXIT_USAGE, argv
        assert message in capsys.readouterr().err, argv
    assert existing.read_text() == "kept\n"


def test_a_missing_span_or_model_is_named(tmp_path, capsys):
    empty_serving_dir = tmp_path / "serving_model"
    empty_serving_dir.mkdir()
    output = str(tmp_path / "a.csv")
    nothing_pushed = ["--serving-dir", str(empty_serving_dir)]
    cases = [
        (["--span-dir", str(tmp_path / "span-9")] + nothing_pushed, f"span folder {str(tmp_path / 'span-9')!r} is not a folder"),
        (["--span-dir", str(tmp_path)] + nothing_pushed, "holds no *.csv file"),
        (["--span-dir", SHIPPED_SPAN_4] + nothing_pushed, f"--serving-dir {str(empty_serving_dir)!r} holds no complete pushed version"),
        (["--span-dir", SHIPPED_SPAN_4, "--saved-model", str(tmp_path)], "is not a SavedModel folder (it has no saved_model.pb)"),
    ]
    for argv, message in cases:
        assert batch_score.main(argv + ["--output", output]) == batch_score.EXIT_USAGE, argv
        assert message in capsys.readouterr().err, argv
    assert not os.path.exists(output)


def test_runner_flags_become_the_beam_arguments_of_beam_args():
    common = ["--span-dir", "gs://b/data/span-4", "--saved-model", "gs://b/serving_model/1", "--output", "gs://b/scores.csv"]
    dataflow = batch_score.build_parser().parse_args(common + DATAFLOW_FLAGS + ["--max-num-workers", "8", "--beam-arg=--experiments=shuffle_mode=service"])
    assert batch_score.usage_errors(dataflow) == []
    assert beam_args_for(batch_score.runner_config(dataflow)) == [
        "--runner=DataflowRunner",
        "--project=p",
        "--region=us-central1",
        "--temp_location=gs://b/tmp",
        "--max_num_workers=8",
        "--sdk_container_image=img",
        "--experiments=use_runner_v2",
        "--experiments=shuffle_mode=service",
    ]
    spark_flags = ["--runner", "spark", "--job-endpoint", "localhost:8099", "--environment-type", "EXTERNAL", "--environment-config", "localhost:50000"]
    spark = batch_score.build_parser().parse_args(common + spark_flags)
    assert beam_args_for(batch_score.runner_config(spark)) == [
        "--runner=SparkRunner",
        "--job_endpoint=localhost:8099",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
    ]
    direct = batch_score.build_parser().parse_args(["--span-dir", SHIPPED_SPAN_4, "--output", "x.csv", "--beam-mode", "multi_processing", "--num-workers", "2"])
    assert beam_args_for(batch_score.runner_config(direct)) == [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ]


def test_the_probability_column_is_named_like_the_models_output():
    from modules.signatures import PROBABILITY_OUTPUT

    assert batch_score.PROBABILITY_COLUMN == PROBABILITY_OUTPUT


# TensorFlow's in-memory file system: a path with a scheme, as gs:// is, that needs no network.
REMOTE_ROOT = "ram://batch_score_test"


@pytest.mark.parametrize("remote", [False, True], ids=["local", "ram://"])
def test_an_existing_output_is_kept_without_overwrite_local_or_remote(tmp_path, remote):
    import tensorflow as tf

    folder = f"{REMOTE_ROOT}/{tmp_path.name}" if remote else str(tmp_path)
    tf.io.gfile.makedirs(folder)
    output = f"{folder}/scores.csv"
    with tf.io.gfile.GFile(output, "w") as existing:
        existing.write("kept\n")
    with pytest.raises(batch_score.BatchScoreError, match=f"--output {output!r} exists; give --overwrite to replace it"):
        batch_score.check_output(output, overwrite=False)
    batch_score.check_output(output, overwrite=True)
    batch_score.check_output(f"{folder}/new.csv", overwrite=False)
    with pytest.raises(batch_score.BatchScoreError, match="is a folder; name the file to write"):
        batch_score.check_output(folder, overwrite=True)
    # An output that appears after the check (another run's) is kept by the final rename too.
    row = ("data.csv", 2, None, 0.5)
    with pytest.raises(batch_score.BatchScoreError, match="written by someone else while this run scored; it is kept"):
        batch_score.write_scores([row], output, overwrite=False)
    with tf.io.gfile.GFile(output) as kept:
        assert kept.read() == "kept\n"
    assert tf.io.gfile.listdir(folder) == ["scores.csv"]
    assert batch_score.write_scores([row], output, overwrite=True) == 1
    with tf.io.gfile.GFile(output) as replaced:
        assert replaced.read().splitlines()[1] == "data.csv,2,,0.5"
    # A retried write step finds its own rows in place and succeeds without touching them.
    assert batch_score.write_scores([row], output, overwrite=False) == 1
