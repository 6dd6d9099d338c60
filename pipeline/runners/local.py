"""One local pipeline run, shared by `run_local.py`, the span replay and the span watcher.

Builds the pipeline for a data root and output dir, runs it with LocalDagRunner, reads back
what happened (`pipeline.ops.run_summary`) and turns it into an exit code.
"""
import dataclasses
import logging
import os
import shlex
import time
from typing import List, Optional, Tuple

from pipeline import configs, spans
from pipeline.ops import run_summary

logger = logging.getLogger(__name__)

# Exit codes of the entry points.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DATA_REFUSED = 2


@dataclasses.dataclass(frozen=True)
class LocalPaths:
    """Where a local run reads and writes."""

    data_root: str
    output_dir: str

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_dir, "serving_model")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.db")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipeline_root")


@dataclasses.dataclass
class RunResult:
    """What one run did: its exit code, the summary and the per-component timings."""

    exit_code: int
    spans: List[int]
    summary: Optional[run_summary.RunSummary]
    timings: List[Tuple[str, str, float]]
    seconds: float
    error: Optional[str] = None
    # The run's HTML report (pipeline.ops.report), when one could be written.
    report_path: Optional[str] = None


def thresholds_text(thresholds: configs.BlessingThresholds) -> dict:
    """Describes the blessing thresholds per metric, for the summary table."""
    return {
        "auc": f">= {thresholds.min_auc}, drop <= {thresholds.max_auc_drop}",
        "binary_accuracy": f">= {thresholds.min_binary_accuracy}, drop <= {thresholds.max_binary_accuracy_drop}",
    }


def _caused_by(error: Optional[BaseException], error_type: type) -> bool:
    while error is not None:
        if isinstance(error, error_type):
            return True
        error = error.__cause__ or error.__context__
    return False


def _refused_span(error: Optional[BaseException]) -> Optional[int]:
    """The span a DataGate refusal names, found along the exception chain."""
    while error is not None:
        if getattr(error, "span", None) is not None:
            return error.span
        error = error.__cause__ or error.__context__
    return None


def run_once(
    paths: LocalPaths,
    options: configs.PipelineOptions,
    beam_pipeline_args: List[str],
    progress_handler=None,
    complete_spans_only: bool = False,
) -> RunResult:
    """Runs the pipeline once on the span window of `paths.data_root`.

    Args:
        paths: Data root and output dir.
        options: Pipeline options; `span_window` picks the spans.
        beam_pipeline_args: Beam options for the data processing.
        progress_handler: A `pipeline.runners.progress.ProgressHandler` whose timings are reset and
            collected for this run, or None.
        complete_spans_only: Use only spans marked complete (see `spans.discover_spans`).

    Returns:
        The run's result; `exit_code` is EXIT_DATA_REFUSED when the spans, the data or an
        external table were refused (nothing trained or pushed), EXIT_FAILED on other failures.
    """
    from tfx import v1 as tfx

    from modules.external import ExternalTableError
    from pipeline.components.data_gate import DataAnomaliesError, DataDriftError
    from pipeline.dag import create_pipeline
    from pipeline.validation import acceptance
    from pipeline.validation.span_rows import CsvFormatError
    from pipeline.validation.table_sources import refingerprint

    started = time.monotonic()
    if progress_handler is not None:
        progress_handler.timings.clear()
    try:
        span_numbers = spans.window(spans.discover_spans(paths.data_root, complete_spans_only), options.span_window)
    except spans.SpanError as error:
        return RunResult(EXIT_DATA_REFUSED, [], None, [], time.monotonic() - started, str(error))
    try:
        # Fingerprinted as this run's pipeline is built, so a table edited while a watcher
        # or a replay runs is imported again rather than refused as changed.
        options = dataclasses.replace(options, external_tables=refingerprint(options.external_tables))
    except FileNotFoundError as error:
        return RunResult(EXIT_FAILED, span_numbers, None, [], time.monotonic() - started, str(error))
    os.makedirs(paths.output_dir, exist_ok=True)
    connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
    # What an owner accepted with `python -m pipeline.ops.accept`; the DataGate applies it.
    options = dataclasses.replace(options, acceptances=acceptance.for_spans(connection_config, span_numbers))
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=paths.pipeline_root,
        data_root=os.path.abspath(paths.data_root),
        spans=span_numbers,
        serving_model_dir=paths.serving_model_dir,
        metadata_connection_config=connection_config,
        options=options,
        beam_pipeline_args=beam_pipeline_args,
    )
    first_new_execution = run_summary.newest_execution_id(connection_config)
    failure: Optional[BaseException] = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # noqa: BLE001 - the summary and exit code report it
        failure = error
    summary = run_summary.collect(connection_config, configs.PIPELINE_NAME, first_new_execution)
    timings = list(progress_handler.timings) if progress_handler is not None else []
    report_path = None
    try:
        from pipeline.ops import report

        report_path = report.write_report(
            paths.output_dir, connection_config, configs.PIPELINE_NAME, first_new_execution, timings
        )
    except Exception as error:  # noqa: BLE001 - a report failure must not change the run's outcome
        logger.warning("no run report: %s", error)
    seconds = time.monotonic() - started
    if failure is None:
        exit_code, error_text = EXIT_OK, None
    elif any(_caused_by(failure, refusal) for refusal in (DataAnomaliesError, DataDriftError, ExternalTableError, CsvFormatError)) or summary.anomalies:
        exit_code, error_text = EXIT_DATA_REFUSED, str(failure)
        refused_span = _refused_span(failure)
        if refused_span is not None:
            # The gate does not know the paths; the exact command names them.
            error_text = error_text.replace(
                acceptance.accept_command(refused_span),
                acceptance.accept_command(refused_span, shlex.quote(paths.data_root), shlex.quote(paths.output_dir)),
            )
    else:
        exit_code, error_text = EXIT_FAILED, f"{type(failure).__name__}: {failure}"
    return RunResult(exit_code, span_numbers, summary, timings, seconds, error_text, report_path)
