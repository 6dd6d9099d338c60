"""The taxi pipeline as an Airflow DAG, built by TFX's AirflowDagRunner from `create_pipeline`.

Airflow finds the DAG through a one-line file in its dags folder:

    from pipeline.runners.airflow_dag import DAG  # noqa: F401

Settings come from environment variables (see `pipeline.runners.airflow_config`); ML Metadata
is TAXI_METADATA_URL's MySQL/MariaDB database, or a SQLite file for a single machine. The spans are
listed from TAXI_DATA_ROOT each time Airflow parses the DAG, so a new `span-<N>/` folder is
part of the next run. Each pipeline node is one Airflow task; the DAG id is the pipeline name.
"""
import os
from typing import Optional

from airflow import models
from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

from pipeline import configs, spans
from pipeline.dag import create_pipeline
from pipeline.ops import metadata
from pipeline.runners.airflow_config import DAG_ID, AirflowConfigError, AirflowSettings
from pipeline.runners.beam_args import PROJECT_SETUP_FILE, DirectRunnerConfig, beam_args_for, quiet_pickler_logging, turn_off_in_process_state_cache
from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint
from pipeline.validation.acceptance import for_spans
from pipeline.validation.table_sources import resolve_sources


def build_dag(settings: AirflowSettings, fingerprint: Optional[str] = None) -> models.DAG:
    """Builds the Airflow DAG of the taxi pipeline.

    Args:
        settings: Paths, schedule and options, e.g. `AirflowSettings.from_env(os.environ)`.
        fingerprint: Fingerprint of the `modules` code (default: computed now).

    Returns:
        The DAG, with one task per pipeline node and the pipeline's dependencies.

    Raises:
        pipeline.spans.SpanError: when the data root holds no usable span.
        ValueError: when TAXI_EXTERNAL_TABLES names a table the model does not join.
        FileNotFoundError: when an external table's file does not exist.
        AirflowConfigError: when the ML Metadata database does not open (wrong host, user,
            password or database), found when the DAG is parsed, before any task runs.
    """
    span_numbers = spans.window(spans.discover_spans(settings.data_root), settings.span_window)
    if settings.metadata_setting.mysql is not None:
        problem = metadata.problem(settings.metadata_setting, os.path.dirname(settings.pipeline_root))
        if problem:
            raise AirflowConfigError(problem)
    connection = settings.connection_config()
    options = configs.PipelineOptions(
        train_steps=settings.train_steps,
        eval_steps=settings.eval_steps,
        span_window=settings.span_window,
        thresholds=settings.thresholds,
        drift=configs.DriftConfig(on_drift=settings.on_drift),
        module_fingerprint=fingerprint if fingerprint is not None else module_fingerprint(),
        code_fingerprint=project_fingerprint(),
        # Spans accepted with `python -m pipeline.accept`, read when Airflow parses the DAG.
        acceptances=for_spans(connection, span_numbers),
        # The tables live beside the spans, laid out like the repository's data/.
        external_tables=resolve_sources(settings.external_tables, data_root=settings.data_root),
        # TFX's legacy launcher names artifacts "<output key>:<run id>": a second Evaluator in the
        # run would collide with the first in ML Metadata (pipeline/configs.py).
        newest_span_check=False,
    )
    beam_runner = DirectRunnerConfig(mode=settings.beam_mode, num_workers=settings.beam_workers, setup_file=PROJECT_SETUP_FILE)
    # Airflow's task processes build the DAG from this file before running their step.
    turn_off_in_process_state_cache()
    quiet_pickler_logging()
    pipeline = create_pipeline(
        pipeline_name=DAG_ID,
        pipeline_root=settings.pipeline_root,
        data_root=settings.data_root,
        spans=span_numbers,
        serving_model_dir=settings.serving_model_dir,
        metadata_connection_config=connection,
        options=options,
        beam_pipeline_args=beam_args_for(beam_runner),
    )
    airflow_dag_config = {
        "schedule": settings.schedule,
        "start_date": settings.start_date,
        # One run at a time: runs share one ML Metadata history and one serving folder.
        "max_active_runs": 1,
        "catchup": False,
        "tags": ["tfx", "taxi"],
    }
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=airflow_dag_config)).run(pipeline)


DAG = build_dag(AirflowSettings.from_env(os.environ))
