"""pipeline.runners.airflow_config: the Airflow DAG's environment variables, parsed and refused."""
import datetime

import pytest

from pipeline import configs
from pipeline.runners.airflow_config import AirflowConfigError, AirflowSettings

REQUIRED = {"TAXI_DATA_ROOT": "/data/taxi", "TAXI_OUTPUT_DIR": "/srv/taxi"}


def test_defaults_put_everything_under_the_output_dir():
    settings = AirflowSettings.from_env(REQUIRED)
    assert settings.data_root == "/data/taxi"
    assert settings.pipeline_root == "/srv/taxi/pipeline_root"
    assert settings.metadata_path == "/srv/taxi/metadata.db"
    assert settings.serving_model_dir == "/srv/taxi/serving_model"
    assert settings.schedule == "@daily"
    assert settings.start_date == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert settings.train_steps == configs.PipelineOptions.train_steps
    assert settings.thresholds == configs.BlessingThresholds()
    assert (settings.beam_mode, settings.beam_workers, settings.span_window) == ("in_memory", None, None)
    assert settings.on_drift == configs.DriftConfig.on_drift


def test_every_variable_is_read_to_its_type():
    settings = AirflowSettings.from_env(
        {
            **REQUIRED,
            "TAXI_METADATA_PATH": "/var/mlmd/taxi.db",
            "TAXI_SERVING_MODEL_DIR": "/models/big_tipper",
            "TAXI_SCHEDULE": "0 3 * * 1",
            "TAXI_START_DATE": "2025-02-03",
            "TAXI_SPAN_WINDOW": "2",
            "TAXI_TRAIN_STEPS": "150",
            "TAXI_EVAL_STEPS": "5",
            "TAXI_MIN_AUC": "0.85",
            "TAXI_MIN_BINARY_ACCURACY": "0.8",
            "TAXI_BEAM_MODE": "multi_processing",
            "TAXI_BEAM_WORKERS": "2",
            "TAXI_ON_DRIFT": "warn",
        }
    )
    assert settings.metadata_path == "/var/mlmd/taxi.db"
    assert settings.serving_model_dir == "/models/big_tipper"
    assert settings.schedule == "0 3 * * 1"
    assert settings.start_date == datetime.datetime(2025, 2, 3, tzinfo=datetime.timezone.utc)
    assert (settings.span_window, settings.train_steps, settings.eval_steps) == (2, 150, 5)
    assert (settings.thresholds.min_auc, settings.thresholds.min_binary_accuracy) == (0.85, 0.8)
    # Only the floors are set from the environment; the tolerated drops stay the project's.
    assert settings.thresholds.max_auc_drop == configs.BlessingThresholds.max_auc_drop
    assert (settings.beam_mode, settings.beam_workers) == ("multi_processing", 2)
    assert settings.on_drift == configs.DRIFT_WARN


def test_every_gate_threshold_can_be_set_in_one_json_variable():
    settings = AirflowSettings.from_env({**REQUIRED, "TAXI_BLESSING_THRESHOLDS": '{"card_min_auc": 0.6, "newest_span_max_auc_drop": 0.05}'})
    assert settings.thresholds == configs.BlessingThresholds(card_min_auc=0.6, newest_span_max_auc_drop=0.05)
    every = AirflowSettings.from_env({**REQUIRED, "TAXI_BLESSING_THRESHOLDS": '{"min_auc": 0.85, "card_min_auc": 0.0}'})
    assert (every.thresholds.min_auc, every.thresholds.card_min_auc) == (0.85, 0.0)


def test_schedule_none_means_triggered_by_hand():
    assert AirflowSettings.from_env({**REQUIRED, "TAXI_SCHEDULE": "none"}).schedule is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"TAXI_DATA_ROOT": ""}, "TAXI_DATA_ROOT is not set: folder of span-<N>/ CSV folders"),
        ({"TAXI_OUTPUT_DIR": "  "}, "TAXI_OUTPUT_DIR is not set"),
        ({"TAXI_DATA_ROOT": "data"}, "TAXI_DATA_ROOT must be an absolute path (Airflow workers start elsewhere), got 'data'"),
        ({"TAXI_METADATA_PATH": "metadata.db"}, "TAXI_METADATA_PATH must be an absolute path"),
        ({"TAXI_SCHEDULE": "@fortnightly"}, "TAXI_SCHEDULE '@fortnightly' is not an Airflow preset"),
        ({"TAXI_SCHEDULE": "every day"}, "TAXI_SCHEDULE 'every day' is not a cron expression"),
        ({"TAXI_SCHEDULE": " "}, "TAXI_SCHEDULE is empty"),
        ({"TAXI_START_DATE": "01/02/2024"}, "TAXI_START_DATE must be YYYY-MM-DD, got '01/02/2024'"),
        ({"TAXI_TRAIN_STEPS": "many"}, "TAXI_TRAIN_STEPS must be a whole number, got 'many'"),
        ({"TAXI_SPAN_WINDOW": "0"}, "TAXI_SPAN_WINDOW must be at least 1, got 0"),
        ({"TAXI_MIN_AUC": "high"}, "TAXI_MIN_AUC must be a number between 0 and 1, got 'high'"),
        ({"TAXI_MIN_BINARY_ACCURACY": "85"}, "TAXI_MIN_BINARY_ACCURACY must be between 0 and 1, got 85.0"),
        ({"TAXI_BEAM_MODE": "dataflow"}, "TAXI_BEAM_MODE must be one of in_memory, multi_processing, got 'dataflow'"),
        ({"TAXI_ON_DRIFT": "ignore"}, "TAXI_ON_DRIFT must be one of stop, warn, got 'ignore'"),
        ({"TAXI_BEAM_WORKERS": "2"}, "TAXI_BEAM_WORKERS applies to TAXI_BEAM_MODE=multi_processing only"),
        ({"TAXI_BEAM_WORKERS": "-1"}, "TAXI_BEAM_WORKERS must be at least 1, got -1"),
        ({"TAXI_EXTERNAL_TABLES": "us_il_holidays"}, "TAXI_EXTERNAL_TABLES: 'us_il_holidays' is not NAME=/absolute/path"),
        ({"TAXI_EXTERNAL_TABLES": "us_il_holidays=h.csv"}, "TAXI_EXTERNAL_TABLES: 'us_il_holidays=h.csv' is not NAME=/absolute/path"),
        ({"TAXI_BLESSING_THRESHOLDS": "{card_min_auc: 1}"}, "TAXI_BLESSING_THRESHOLDS is not JSON"),
        ({"TAXI_BLESSING_THRESHOLDS": "[0.6]"}, "TAXI_BLESSING_THRESHOLDS must be a JSON object"),
        ({"TAXI_BLESSING_THRESHOLDS": '{"card_auc": 0.6}'}, "TAXI_BLESSING_THRESHOLDS names no such threshold: card_auc (known: card_max_auc_drop"),
        ({"TAXI_BLESSING_THRESHOLDS": '{"card_min_auc": "high"}'}, "TAXI_BLESSING_THRESHOLDS: card_min_auc must be a number, got 'high'"),
        (
            {"TAXI_BLESSING_THRESHOLDS": '{"min_auc": 0.9}', "TAXI_MIN_AUC": "0.8"},
            "set a floor in TAXI_MIN_AUC / TAXI_MIN_BINARY_ACCURACY or in TAXI_BLESSING_THRESHOLDS, not both",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable(overrides, message):
    with pytest.raises(AirflowConfigError) as raised:
        AirflowSettings.from_env({**REQUIRED, **overrides})
    assert message in str(raised.value)


def test_external_tables_take_absolute_paths_and_uris():
    settings = AirflowSettings.from_env(
        {**REQUIRED, "TAXI_EXTERNAL_TABLES": "us_il_holidays=gs://bucket/h.csv, other=/srv/o.csv"}
    )
    assert settings.external_tables == {"us_il_holidays": "gs://bucket/h.csv", "other": "/srv/o.csv"}
    assert AirflowSettings.from_env(REQUIRED).external_tables == {}


def test_metadata_in_mysql_comes_from_taxi_metadata_url_with_the_password_from_the_environment():
    environ = {**REQUIRED, "TAXI_METADATA_URL": "mysql://taxi@db.internal:3306/taxi_metadata"}
    settings = AirflowSettings.from_env(environ)
    config = settings.connection_config({"TAXI_METADATA_PASSWORD": "s3cr3t-pw"})
    assert (config.mysql.host, config.mysql.port, config.mysql.database, config.mysql.user) == ("db.internal", 3306, "taxi_metadata", "taxi")
    assert config.mysql.password == "s3cr3t-pw" and config.mysql.skip_db_creation is False
    assert AirflowSettings.from_env(REQUIRED).connection_config().sqlite.filename_uri == "/srv/taxi/metadata.db"


@pytest.mark.parametrize(
    "environ, words",
    [
        ({"TAXI_METADATA_URL": "mysql://taxi:pw@db/taxi_metadata"}, "TAXI_METADATA_URL: the URL carries a password"),
        ({"TAXI_METADATA_URL": "postgresql://taxi@db/taxi_metadata"}, "TAXI_METADATA_URL 'postgresql://taxi@db/taxi_metadata': the scheme must be mysql://"),
        ({"TAXI_METADATA_URL": "mysql://taxi@db/m", "TAXI_METADATA_PATH": "/srv/m.db"}, "not both"),
    ],
)
def test_a_bad_metadata_setting_is_refused_naming_the_variable(environ, words):
    with pytest.raises(AirflowConfigError) as refused:
        AirflowSettings.from_env({**REQUIRED, **environ})
    assert words in str(refused.value)
    assert ":pw@" not in str(refused.value)
