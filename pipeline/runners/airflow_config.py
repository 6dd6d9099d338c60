"""The Airflow DAG's settings: environment variables, parsed to their types once, here.

Airflow parses DAG files often and in many processes, so the settings come from the
environment of the scheduler and workers (no database look-up per parse, as Airflow Variables
would need). Every variable the DAG reads is listed in `ENVIRONMENT_VARIABLES` with its
meaning; `docs/orchestrators.md` shows a deployment's settings.
"""
import dataclasses
import datetime
import json
import os
from typing import Dict, Mapping, Optional

from croniter import croniter  # Airflow's own cron parser; importing it does not import Airflow
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.ops import metadata
from pipeline.ops.metadata import OutputLayout

ENVIRONMENT_VARIABLES: Dict[str, str] = {
    "TAXI_DATA_ROOT": "folder of span-<N>/ CSV folders (required); spans are listed when the DAG is parsed",
    "TAXI_OUTPUT_DIR": "folder for pipeline_root/, metadata.db and serving_model/ (required)",
    "TAXI_METADATA_URL": "ML Metadata in MySQL/MariaDB, mysql://USER@HOST:PORT/DATABASE (default: the SQLite file TAXI_METADATA_PATH)",
    "TAXI_METADATA_PASSWORD": "the password of TAXI_METADATA_URL's user, if it has one (never logged)",
    "TAXI_METADATA_PATH": "ML Metadata SQLite file, when TAXI_METADATA_URL is not set (default: TAXI_OUTPUT_DIR/metadata.db)",
    "TAXI_SERVING_MODEL_DIR": "where Pusher writes numbered versions (default: TAXI_OUTPUT_DIR/serving_model)",
    "TAXI_SCHEDULE": "Airflow schedule: a cron expression, a preset such as @daily, or 'none' (default: @daily)",
    "TAXI_START_DATE": "first logical date, YYYY-MM-DD, UTC (default: 2024-01-01)",
    "TAXI_SPAN_WINDOW": "train on the newest N spans (default: every span)",
    "TAXI_TRAIN_STEPS": f"training steps (default: {configs.PipelineOptions.train_steps})",
    "TAXI_EVAL_STEPS": f"evaluation steps during training (default: {configs.PipelineOptions.eval_steps})",
    "TAXI_MIN_AUC": f"blessing floor for AUC (default: {configs.BlessingThresholds.min_auc})",
    "TAXI_MIN_BINARY_ACCURACY": f"blessing floor for accuracy (default: {configs.BlessingThresholds.min_binary_accuracy})",
    "TAXI_BLESSING_THRESHOLDS": "any BlessingThresholds fields as a JSON object, e.g. {\"card_min_auc\": 0.6} (default: pipeline/configs.py)",
    "TAXI_ON_DRIFT": f"when the newest span drifted: {configs.DRIFT_STOP} the run or {configs.DRIFT_WARN} and train (default: {configs.DriftConfig.on_drift})",
    "TAXI_BEAM_MODE": "DirectRunner mode on the Airflow worker: in_memory or multi_processing (default: in_memory)",
    "TAXI_BEAM_WORKERS": "workers for multi_processing (default: one per core)",
    "TAXI_EXTERNAL_TABLES": "other files for external tables, NAME=PATH[,NAME=PATH] (default: the versioned tables under TAXI_DATA_ROOT/external/)",
}

# TFX's AirflowDagRunner names the DAG after the pipeline.
DAG_ID = configs.PIPELINE_NAME
DEFAULT_SCHEDULE = "@daily"
# Airflow's schedule presets (airflow.utils.dates.cron_presets plus @once and @continuous),
# listed here so that parsing settings does not import Airflow; Airflow checks again when
# the DAG is built.
AIRFLOW_PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
DEFAULT_START_DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class AirflowConfigError(ValueError):
    """An environment variable of the DAG is missing or malformed; the message names it."""


@dataclasses.dataclass(frozen=True)
class AirflowSettings:
    """Where the Airflow-run pipeline reads and writes, when it runs, and its options."""

    data_root: str
    pipeline_root: str
    metadata_path: str
    serving_model_dir: str
    # The MySQL/MariaDB database of TAXI_METADATA_URL; the SQLite default uses metadata_path.
    metadata_setting: metadata.MetadataSetting = metadata.MetadataSetting(source=metadata.METADATA_URL_ENV)
    schedule: Optional[str] = DEFAULT_SCHEDULE
    start_date: datetime.datetime = DEFAULT_START_DATE
    span_window: Optional[int] = None
    train_steps: int = configs.PipelineOptions.train_steps
    eval_steps: int = configs.PipelineOptions.eval_steps
    thresholds: configs.BlessingThresholds = configs.BlessingThresholds()
    on_drift: str = configs.DriftConfig.on_drift
    beam_mode: str = "in_memory"
    beam_workers: Optional[int] = None
    # External table name -> file, replacing the shipped table of that name.
    external_tables: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "AirflowSettings":
        """Reads the settings from `environ` (usually `os.environ`).

        Raises:
            AirflowConfigError: when a required variable is missing or a value does not parse;
                the message names the variable and the value.
        """
        data_root = _required_path(environ, "TAXI_DATA_ROOT")
        output_dir = _required_path(environ, "TAXI_OUTPUT_DIR")
        defaults = configs.BlessingThresholds()
        beam_mode = _choice(environ, "TAXI_BEAM_MODE", ("in_memory", "multi_processing"), "in_memory")
        beam_workers = _positive_int(environ, "TAXI_BEAM_WORKERS", None)
        if beam_workers is not None and beam_mode == "in_memory":
            raise AirflowConfigError("TAXI_BEAM_WORKERS applies to TAXI_BEAM_MODE=multi_processing only")
        layout = OutputLayout(output_dir)
        try:
            metadata_setting = metadata.parse_metadata_url(environ.get(metadata.METADATA_URL_ENV), metadata.METADATA_URL_ENV)
        except metadata.MetadataSettingError as error:
            raise AirflowConfigError(str(error)) from None
        if metadata_setting.mysql is not None and environ.get("TAXI_METADATA_PATH", "").strip():
            raise AirflowConfigError("set TAXI_METADATA_URL (MySQL/MariaDB) or TAXI_METADATA_PATH (SQLite), not both")
        return cls(
            metadata_setting=metadata_setting,
            data_root=data_root,
            pipeline_root=layout.pipeline_root,
            metadata_path=_optional_path(environ, "TAXI_METADATA_PATH") or layout.metadata_path,
            serving_model_dir=_optional_path(environ, "TAXI_SERVING_MODEL_DIR") or layout.serving_model_dir,
            schedule=_schedule(environ.get("TAXI_SCHEDULE", DEFAULT_SCHEDULE)),
            start_date=_start_date(environ),
            span_window=_positive_int(environ, "TAXI_SPAN_WINDOW", None),
            train_steps=_positive_int(environ, "TAXI_TRAIN_STEPS", configs.PipelineOptions.train_steps),
            eval_steps=_positive_int(environ, "TAXI_EVAL_STEPS", configs.PipelineOptions.eval_steps),
            thresholds=dataclasses.replace(
                defaults,
                **{
                    "min_auc": _fraction(environ, "TAXI_MIN_AUC", defaults.min_auc),
                    "min_binary_accuracy": _fraction(environ, "TAXI_MIN_BINARY_ACCURACY", defaults.min_binary_accuracy),
                    **_threshold_overrides(environ),
                },
            ),
            on_drift=_choice(environ, "TAXI_ON_DRIFT", (configs.DRIFT_STOP, configs.DRIFT_WARN), configs.DriftConfig.on_drift),
            beam_mode=beam_mode,
            beam_workers=beam_workers,
            external_tables=_external_tables(environ),
        )

    def connection_config(self, environ: Mapping[str, str] = os.environ) -> metadata_store_pb2.ConnectionConfig:
        """The ML Metadata connection of every task (the password from TAXI_METADATA_PASSWORD)."""
        if self.metadata_setting.mysql is None:
            return metadata.sqlite_connection_config(self.metadata_path)
        return self.metadata_setting.connection_config(os.path.dirname(self.pipeline_root), metadata.CREATE, environ)


def _threshold_overrides(environ: Mapping[str, str]) -> Dict[str, float]:
    """TAXI_BLESSING_THRESHOLDS: a JSON object of BlessingThresholds fields and numbers."""
    value = environ.get("TAXI_BLESSING_THRESHOLDS", "").strip()
    if not value:
        return {}
    try:
        overrides = json.loads(value)
    except json.JSONDecodeError as error:
        raise AirflowConfigError(f"TAXI_BLESSING_THRESHOLDS is not JSON ({error}): {value!r}") from None
    if not isinstance(overrides, dict):
        raise AirflowConfigError(f"TAXI_BLESSING_THRESHOLDS must be a JSON object of threshold names and numbers, got {value!r}")
    known = {field.name for field in dataclasses.fields(configs.BlessingThresholds)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise AirflowConfigError(f"TAXI_BLESSING_THRESHOLDS names no such threshold: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for name, number in overrides.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise AirflowConfigError(f"TAXI_BLESSING_THRESHOLDS: {name} must be a number, got {number!r}")
    if {"min_auc", "min_binary_accuracy"} & set(overrides) and {"TAXI_MIN_AUC", "TAXI_MIN_BINARY_ACCURACY"} & {k for k, v in environ.items() if v.strip()}:
        raise AirflowConfigError("set a floor in TAXI_MIN_AUC / TAXI_MIN_BINARY_ACCURACY or in TAXI_BLESSING_THRESHOLDS, not both")
    return {name: float(number) for name, number in overrides.items()}


def _external_tables(environ: Mapping[str, str]) -> Dict[str, str]:
    value = environ.get("TAXI_EXTERNAL_TABLES", "").strip()
    tables: Dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, separator, path = item.partition("=")
        if not separator or not name or not (os.path.isabs(path) or "://" in path):
            raise AirflowConfigError(f"TAXI_EXTERNAL_TABLES: {item!r} is not NAME=/absolute/path or NAME=scheme://uri")
        tables[name] = path
    return tables


def _required_path(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise AirflowConfigError(f"{name} is not set: {ENVIRONMENT_VARIABLES[name]}")
    if not os.path.isabs(value):
        raise AirflowConfigError(f"{name} must be an absolute path (Airflow workers start elsewhere), got {value!r}")
    return value


def _optional_path(environ: Mapping[str, str], name: str) -> Optional[str]:
    return _required_path(environ, name) if environ.get(name, "").strip() else None


def _schedule(value: str) -> Optional[str]:
    value = value.strip()
    if value.lower() == "none":
        return None
    if not value:
        raise AirflowConfigError("TAXI_SCHEDULE is empty: give a cron expression, a preset such as @daily, or 'none'")
    if value.startswith("@"):
        if value not in AIRFLOW_PRESETS:
            raise AirflowConfigError(f"TAXI_SCHEDULE {value!r} is not an Airflow preset ({', '.join(AIRFLOW_PRESETS)})")
        return value
    if not croniter.is_valid(value):
        raise AirflowConfigError(f"TAXI_SCHEDULE {value!r} is not a cron expression such as '0 3 * * *'")
    return value


def _start_date(environ: Mapping[str, str]) -> datetime.datetime:
    value = environ.get("TAXI_START_DATE", "").strip()
    if not value:
        return DEFAULT_START_DATE
    try:
        date = datetime.date.fromisoformat(value)
    except ValueError:
        raise AirflowConfigError(f"TAXI_START_DATE must be YYYY-MM-DD, got {value!r}") from None
    return datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.timezone.utc)


def _positive_int(environ: Mapping[str, str], name: str, default: Optional[int]) -> Optional[int]:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise AirflowConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise AirflowConfigError(f"{name} must be at least 1, got {number}")
    return number


def _fraction(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise AirflowConfigError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise AirflowConfigError(f"{name} must be between 0 and 1, got {number}")
    return number


def _choice(environ: Mapping[str, str], name: str, allowed: tuple, default: str) -> str:
    value = environ.get(name, "").strip() or default
    if value not in allowed:
        raise AirflowConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value
