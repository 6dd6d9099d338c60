"""Shared fixtures: paths to the shipped data and schema, and tiny hand-made taxi trips."""
import os
import pathlib
from typing import Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from modules.external import HOLIDAYS  # noqa: E402
from pipeline import configs  # noqa: E402
from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint  # noqa: E402
from pipeline.validation.table_sources import resolve_sources  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "data"
SCHEMA_PATH = REPO_ROOT / "pipeline" / "schema" / "schema.pbtxt"
SHARED_TF_SERVING = REPO_ROOT.parent / "shared" / "testdata" / "tf_serving"


def read_csv_header() -> List[str]:
    """Returns the column names of the shipped data, in file order."""
    with open(DATA_ROOT / "span-1" / "data.csv") as data_file:
        return data_file.readline().strip().split(",")


def trip(**overrides) -> Dict[str, object]:
    """Returns one raw taxi trip (a credit-card ride downtown) with `overrides` applied; a value
    of None leaves the column empty, as in the CSV."""
    row: Dict[str, object] = {
        "pickup_community_area": 8,
        "fare": 10.0,
        "trip_start_month": 5,
        "trip_start_hour": 19,
        "trip_start_day": 6,
        "trip_start_timestamp": 1400269500,
        "pickup_latitude": 41.899,
        "pickup_longitude": -87.633,
        "dropoff_latitude": 41.880,
        "dropoff_longitude": -87.632,
        "trip_miles": 1.5,
        "pickup_census_tract": None,
        "dropoff_census_tract": 17031839100,
        "payment_type": "Credit Card",
        "company": "Taxi Affiliation Services",
        "trip_seconds": 540,
        "dropoff_community_area": 32,
        "tips": 2.5,
    }
    row.update(overrides)
    return row


HOLIDAY_HEADER = ",".join(HOLIDAYS.header)


def write_holiday_table(path: pathlib.Path, lines: List[str], header: str = HOLIDAY_HEADER) -> pathlib.Path:
    """Writes a holiday table: `header`, then `lines` as given (CSV text, one row each)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header] + lines) + "\n")
    return path


def write_csv(path: pathlib.Path, rows: List[Dict[str, object]]) -> pathlib.Path:
    """Writes `rows` as a CSV with the shipped data's header; None becomes an empty cell."""
    import csv

    header = read_csv_header()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row[column] is None else row[column] for column in header])
    return path


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    return DATA_ROOT


@pytest.fixture(scope="session")
def schema_path() -> pathlib.Path:
    return SCHEMA_PATH


# The small pipeline run shared by the end-to-end and serving tests (one run per session).
ROWS_PER_SPAN = 400
# Thresholds for a small sample: still far above a model that learnt nothing (AUC 0.5). A model
# trained 150 steps on 960 trips learns little beyond the card rule (card-paid slice AUC about
# 0.5, overall AUC just under the rule's), which the real thresholds refuse
# (tests/e2e/test_pipeline.py shows it); the sample runs gate the floors and the no-regression
# checks only, with the newest span's tolerance sized for its 70 eval trips.
SAMPLE_THRESHOLDS = configs.BlessingThresholds(
    min_auc=0.85,
    min_binary_accuracy=0.8,
    min_auc_over_single_feature=-1.0,
    min_accuracy_over_majority=-1.0,
    card_min_auc=0.0,
    card_max_auc_drop=1.0,
    newest_span_max_auc_drop=0.05,
    newest_span_max_binary_accuracy_drop=0.05,
)
# 400-trip samples are noisier than whole spans: between sample spans 2 and 3, tips scores
# Jensen-Shannon 0.52 (whole spans: at most 0.33). Sample runs report drift and go on; the
# drift stop itself is tested on a really drifted span (tests/e2e/test_pipeline.py).
# Blesses whatever a run trains: for tests about what is kept, pushed or compared, not quality.
ANY_MODEL_THRESHOLDS = configs.BlessingThresholds(
    min_auc=0.0,
    min_binary_accuracy=0.0,
    max_auc_drop=1.0,
    max_binary_accuracy_drop=1.0,
    min_auc_over_single_feature=-1.0,
    min_accuracy_over_majority=-1.0,
    card_min_auc=0.0,
    card_max_auc_drop=1.0,
    newest_span_max_auc_drop=1.0,
    newest_span_max_binary_accuracy_drop=1.0,
)
SAMPLE_OPTIONS = configs.PipelineOptions(
    module_fingerprint=module_fingerprint(),
    code_fingerprint=project_fingerprint(),
    external_tables=resolve_sources(),
    train_steps=150,
    eval_steps=5,
    thresholds=SAMPLE_THRESHOLDS,
    drift=configs.DriftConfig(on_drift=configs.DRIFT_WARN),
)


def sample_data_root(root: pathlib.Path, spans=(1, 2, 3), rows_per_span: int = ROWS_PER_SPAN) -> pathlib.Path:
    """Writes the first `rows_per_span` trips of each shipped span under `root`/span-<N>/."""
    for span in spans:
        source = DATA_ROOT / f"span-{span}" / "data.csv"
        target = root / f"span-{span}" / "data.csv"
        target.parent.mkdir(parents=True)
        with open(source) as source_file, open(target, "w") as target_file:
            for index, line in enumerate(source_file):
                if index > rows_per_span:
                    break
                target_file.write(line)
    return root


def run_small_pipeline(data_root, output_dir, span_numbers, **option_overrides):
    """Runs the real pipeline on a sample with run_local.py's runner (independent steps at the
    same time, `pipeline.runners.local.dag_runner`); returns (RunSummary, MLMD config)."""
    import dataclasses

    from tfx import v1 as tfx

    from pipeline import configs
    from pipeline.dag import create_pipeline
    from pipeline.ops import run_summary
    from pipeline.runners.local import dag_runner

    options = dataclasses.replace(SAMPLE_OPTIONS, **option_overrides)
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))
    before = run_summary.newest_execution_id(connection)
    dag_runner().run(
        create_pipeline(
            pipeline_name=configs.PIPELINE_NAME,
            pipeline_root=str(output_dir / "pipeline_root"),
            data_root=str(data_root),
            spans=span_numbers,
            serving_model_dir=str(output_dir / "serving_model"),
            metadata_connection_config=connection,
            options=options,
        )
    )
    return run_summary.collect(connection, configs.PIPELINE_NAME, before), connection


@pytest.fixture(scope="session")
def small_pipeline_run(tmp_path_factory):
    """One real pipeline run on 3 spans x 400 trips, blessed and pushed. Returns a dict with
    data_root, output_dir, serving_model_dir, summary and connection. Tests must not change its
    output dir: one that adds runs or removes files works on a copy (shutil.copytree)."""
    data_root = sample_data_root(tmp_path_factory.mktemp("data"))
    output_dir = tmp_path_factory.mktemp("output")
    summary, connection = run_small_pipeline(data_root, output_dir, [1, 2, 3])
    return {
        "data_root": data_root,
        "output_dir": output_dir,
        "serving_model_dir": output_dir / "serving_model",
        "summary": summary,
        "connection": connection,
    }


# The machines' MariaDB (127.0.0.1:3306, root, no password); TAXI_TEST_MYSQL_URL names another
# server. Without one the service-backed tests skip and say why; CI sets TAXI_REQUIRE_SERVICES=1
# so that a missing server fails them instead.
TEST_MYSQL_URL = os.environ.get("TAXI_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def _service_missing(reason: str) -> None:
    if os.environ.get("TAXI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TAXI_REQUIRE_SERVICES=1: the service-backed tests must run here)")
    pytest.skip(reason)


@pytest.fixture
def mysql_metadata_url():
    """A new, empty MySQL/MariaDB database for one test, as a `--metadata-url`; dropped after."""
    import uuid

    import pymysql

    from pipeline.ops import metadata

    server = metadata.parse_metadata_url(TEST_MYSQL_URL).mysql
    try:
        connection = pymysql.connect(host=server.host, port=server.port, user=server.user, password=os.environ.get(metadata.METADATA_PASSWORD_ENV, ""), connect_timeout=5)
    except pymysql.err.MySQLError as error:
        _service_missing(f"no MySQL/MariaDB server at {server.url} for ML Metadata: {error}")
    database = f"taxi_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    try:
        yield f"mysql://{server.user}@{server.host}:{server.port}/{database}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        connection.close()


# The machines' PostgreSQL (127.0.0.1:5432, trust auth), Airflow's metadata database in the
# deployed-Airflow test; TAXI_TEST_POSTGRES_URL names another server.
TEST_POSTGRES_URL = os.environ.get("TAXI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_database_url():
    """A new, empty PostgreSQL database for one test, as a SQLAlchemy URL; dropped after."""
    import uuid

    import psycopg2

    try:
        connection = psycopg2.connect(TEST_POSTGRES_URL, connect_timeout=5)
    except psycopg2.Error as error:
        _service_missing(f"no PostgreSQL server at {TEST_POSTGRES_URL}: {str(error).strip()}")
    connection.autocommit = True
    database = f"taxi_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    server = TEST_POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        yield f"{server}/{database}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        connection.close()
