"""What a pipeline run did, read back from ML Metadata and the artifacts: spans, anomalies,
metrics against thresholds and against the serving model, the blessing and the push."""
import dataclasses
import json
from typing import Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata
from tfx.types import artifact_utils

from pipeline import component_ids
from pipeline.components import artifacts
from pipeline.components.artifacts import NOT_PUSHED_REASON_PROPERTY, SPAN_FILES_PROPERTY, SPANS_PROPERTY, TABLES_PROPERTY, read_anomalies
from pipeline.components.artifacts import read_drift_report as read_drift_report
from pipeline.components.artifacts import span_fingerprints
from pipeline.spans import spans_text
from pipeline.validation import acceptance, evaluation_results
from pipeline.validation.comparators import describe as describe_drift

SUMMARY_METRICS = ("auc", "binary_accuracy", "example_count")
# Slices smaller than this are left out of "weakest slices": their AUC is mostly noise.
MIN_SLICE_EXAMPLES = 50


@dataclasses.dataclass
class RunSummary:
    """The facts a person wants after a run, each None when that step did not run."""

    spans: Optional[str] = None
    # Schema anomalies no acceptance covers: the window's (ExampleValidator) and the newest
    # span's own (SpanDriftCheck).
    anomalies: Optional[List[str]] = None
    # The newest span's check: its anomalies and drift against the window's earlier spans
    # (see pipeline.components.drift_check).
    drift: Optional[dict] = None
    # Findings an owner accepted (`pipeline.ops.accept`), and the acceptances that applied.
    accepted: List[str] = dataclasses.field(default_factory=list)
    acceptances: List[dict] = dataclasses.field(default_factory=list)
    # metric -> (candidate, baseline or None)
    metrics: Dict[str, Tuple[float, Optional[float]]] = dataclasses.field(default_factory=dict)
    failed_thresholds: List[str] = dataclasses.field(default_factory=list)
    blessed: Optional[bool] = None
    # Whether the candidate loaded and answered in the local model server, and what was seen.
    serves: Optional[bool] = None
    serving_check_detail: Optional[str] = None
    pushed_path: Optional[str] = None
    # Set when a blessed model was not pushed because that same model already serves.
    already_serving_version: Optional[str] = None
    pushed_version: Optional[str] = None
    model_uri: Optional[str] = None
    # Per external table: source_uri, sha256, rows, first_key, last_key (ExternalTableGen).
    external_tables: Optional[Dict[str, dict]] = None
    # The ExternalFeatureCheck report: joined columns per span, anomalies, drift.
    external_report: Optional[dict] = None
    slices: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    # The ModelGate's report (pipeline.components.model_gate): trivial baselines, the newest
    # span's metrics, every reason for a refusal.
    gate: Optional[dict] = None

    @property
    def drifted(self) -> List[str]:
        """Columns whose drift score is over their threshold."""
        return [score["feature"] for score in (self.drift or {}).get("scores", []) if score["drifted"]]


def _judge_findings(summary: RunSummary, window_anomalies: List[dict], examples, store) -> None:
    """Splits the run's findings into refused and accepted, as the DataGate does."""
    span_files = span_fingerprints(_custom(examples, SPAN_FILES_PROPERTY) or "") if examples is not None else {}
    valid = acceptance.applying(store, span_files)
    summary.acceptances = [acceptance.summary_of(record) for record in valid]
    problems = list(window_anomalies)
    if summary.drift is not None:
        problems = acceptance.collect_problems(window_anomalies, summary.drift)
    covered, refused = acceptance.split_covered(problems, valid)
    summary.accepted = [str(problem["text"]) for problem, _ in covered]
    summary.anomalies = [str(problem["text"]) for problem in refused if problem["check"] == acceptance.SCHEMA_CHECK]


def newest_execution_id(connection_config: metadata_store_pb2.ConnectionConfig) -> int:
    """Returns the id of the newest execution in ML Metadata (0 when there is none), so that a
    summary taken after a run reads only that run's executions."""
    from ml_metadata import metadata_store

    newest = metadata_store.ListOptions(limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False)
    with metadata.Metadata(connection_config) as metadata_handler:
        return max((execution.id for execution in metadata_handler.store.get_executions(list_options=newest)), default=0)


def latest_node_outputs(
    store, pipeline_name: str, node_id: str, after_execution_id: int
) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    """Returns the output artifacts of the newest execution of a node newer than
    `after_execution_id`, by output key."""
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return {}
    executions = [e for e in store.get_executions_by_context(context.id) if e.id > after_execution_id]
    if not executions:
        return {}
    execution = max(executions, key=lambda e: e.id)
    if execution.last_known_state not in (
        metadata_store_pb2.Execution.COMPLETE,
        metadata_store_pb2.Execution.CACHED,
    ):
        return {}
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    return outputs


def _custom(artifact: metadata_store_pb2.Artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.string_value or value.int_value


def _metric_value(metric) -> Optional[float]:
    if metric.HasField("double_value"):
        return metric.double_value.value
    return None


def read_evaluation(summary: RunSummary, evaluation_uri: str) -> None:
    """Fills `summary` with the metrics, slices and threshold failures of an Evaluator output."""
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        label = evaluation_results.slice_text(slice_metrics.slice_key)
        for item in slice_metrics.metric_keys_and_values:
            name = item.key.name
            if name not in SUMMARY_METRICS or item.key.is_diff:
                continue
            value = _metric_value(item.value)
            if value is None:
                continue
            is_baseline = item.key.model_name == "baseline"
            if not label:
                candidate, baseline = summary.metrics.get(name, (None, None))
                summary.metrics[name] = (candidate, value) if is_baseline else (value, baseline)
            elif not is_baseline:
                summary.slices.setdefault(label, {})[name] = value
    summary.failed_thresholds.extend(evaluation_results.validation_failures(evaluation_uri)[1])


def collect(
    connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, after_execution_id: int = 0
) -> RunSummary:
    """Reads a run's results of every component from ML Metadata.

    Args:
        connection_config: The ML Metadata the run wrote to.
        pipeline_name: The pipeline's name.
        after_execution_id: `newest_execution_id(...)` taken before the run; executions up to
            it belong to earlier runs and are ignored.
    """
    summary = RunSummary()
    with metadata.Metadata(connection_config) as metadata_handler:
        def outputs_of(node_id: str) -> Dict[str, List[metadata_store_pb2.Artifact]]:
            return latest_node_outputs(metadata_handler.store, pipeline_name, node_id, after_execution_id)

        examples = outputs_of(component_ids.EXAMPLE_GEN).get("examples")
        if examples:
            summary.spans = _custom(examples[0], SPANS_PROPERTY)
        drift_report = outputs_of(component_ids.DRIFT_CHECK).get("drift_report")
        if drift_report:
            summary.drift = read_drift_report(drift_report[0].uri)
        anomalies = outputs_of(component_ids.EXAMPLE_VALIDATOR).get("anomalies")
        if anomalies:
            split_names = artifact_utils.decode_split_names(anomalies[0].properties["split_names"].string_value)
            _judge_findings(
                summary, read_anomalies(anomalies[0].uri, split_names), examples[0] if examples else None, metadata_handler.store
            )
        tables = outputs_of(component_ids.EXTERNAL_TABLE_GEN).get("tables")
        if tables:
            summary.external_tables = json.loads(_custom(tables[0], TABLES_PROPERTY) or "{}")
        external_report = outputs_of(component_ids.EXTERNAL_FEATURE_CHECK).get("report")
        if external_report:
            summary.external_report = artifacts.read_external_report(external_report[0].uri)
        model = outputs_of(component_ids.TRAINER).get("model")
        if model:
            summary.model_uri = model[0].uri
        evaluator_outputs = outputs_of(component_ids.EVALUATOR)
        if evaluator_outputs.get("evaluation"):
            read_evaluation(summary, evaluator_outputs["evaluation"][0].uri)
        gate_blessing = outputs_of(component_ids.MODEL_GATE).get(artifacts.GATE_BLESSING_KEY)
        if gate_blessing:
            summary.gate = artifacts.read_gate_report(gate_blessing[0].uri)
            summary.blessed = bool(_custom(gate_blessing[0], "blessed"))
            summary.failed_thresholds = list(summary.gate["failures"])
        elif evaluator_outputs.get("blessing"):
            summary.blessed = bool(_custom(evaluator_outputs["blessing"][0], "blessed"))
        infra_blessing = outputs_of(component_ids.SERVING_CHECK).get("infra_blessing")
        if infra_blessing:
            summary.serves = bool(_custom(infra_blessing[0], "blessed"))
            summary.serving_check_detail = _custom(infra_blessing[0], "detail")
        pushed = outputs_of(component_ids.PUSHER).get("pushed_model")
        if pushed and _custom(pushed[0], "pushed"):
            summary.pushed_path = _custom(pushed[0], "pushed_destination")
            summary.pushed_version = str(_custom(pushed[0], "pushed_version"))
        elif pushed and _custom(pushed[0], NOT_PUSHED_REASON_PROPERTY):
            reason = json.loads(_custom(pushed[0], NOT_PUSHED_REASON_PROPERTY))
            summary.already_serving_version = reason["already_serving_version"]
    return summary


def _format_metric(value: Optional[float]) -> str:
    return "-" if value is None else (f"{value:.0f}" if value > 10 else f"{value:.4f}")


def gate_rows(gate: Optional[dict]) -> List[Tuple[str, Optional[float], Optional[float], str]]:
    """(check, new model, what it is compared with, the rule) of each ModelGate check beyond
    the whole split's metrics: the trivial baselines, the card-paid slice, the newest span."""
    if not gate:
        return []
    baselines, limits, candidate = gate["trivial_baselines"], gate["thresholds"], gate["window"]["candidate"]
    rows = [
        (
            "auc vs one-feature rule",
            candidate.get("auc"),
            baselines["best_single_feature_auc"],
            f"beat by {limits['min_auc_over_single_feature']:g} (rule: {baselines['best_single_feature']})",
        ),
        (
            "accuracy vs majority",
            candidate.get("binary_accuracy"),
            baselines["majority_accuracy"],
            f"beat by {limits['min_accuracy_over_majority']:g} (always {baselines['majority_class']})",
        ),
    ]
    card = gate["card_slice"]
    rows.append(
        (
            "auc, card-paid",
            card["candidate"].get("auc"),
            card["baseline"].get("auc"),
            f">= {limits['card_min_auc']:g}, drop <= {limits['card_max_auc_drop']:g} ({card['candidate'].get('example_count', 0):.0f} trips)",
        )
    )
    newest = gate["newest_span"]
    if newest.get("not_checked"):
        rows.append(("newest span", None, None, "not checked (PipelineOptions.newest_span_check is off)"))
        return rows
    for name, limit in (("auc", "newest_span_max_auc_drop"), ("binary_accuracy", "newest_span_max_binary_accuracy_drop")):
        # A one-span window's newest span is its eval split: the gate judged the same trips.
        same = ", the window's" if newest.get("same_trips_as_window") else ""
        trips = f" ({newest['candidate'].get('example_count', 0):.0f} trips{same})" if name == "auc" else ""
        rows.append((f"{name}, newest span", newest["candidate"].get(name), newest["baseline"].get(name), f"drop <= {limits[limit]:g}{trips}"))
    return rows


def format_summary(summary: RunSummary, thresholds_text: Dict[str, str], timings: List[Tuple[str, str, float]]) -> str:
    """Renders the summary a person reads in five seconds."""
    lines = ["", "=" * 72, "Run summary", "-" * 72]
    if timings:
        lines.append("components: " + ", ".join(f"{name} {state} {seconds:.1f}s" for name, state, seconds in timings))
    lines.append(f"spans used: {summary.spans or '-'}")
    if summary.anomalies is None:
        lines.append("data anomalies: not checked")
    else:
        lines.append(f"data anomalies: {len(summary.anomalies) or 'none'}")
        lines.extend(f"  - {line}" for line in summary.anomalies)
    for name, record in sorted((summary.external_tables or {}).items()):
        lines.append(
            f"external table {name}: {record['rows']} rows, {record['first_key']} .. {record['last_key']}, "
            f"sha256 {record['sha256'][:12]}"
        )
    if summary.external_report is not None:
        refused = artifacts.refusals(summary.external_report)
        scores = [
            f"{score['feature']} {score['score']:.3f}"
            for checked in summary.external_report["tables"].values()
            for score in checked["scores"][:3]
        ]
        drift = f"; drift highest scores {', '.join(scores)}" if scores else ""
        lines.append(f"joined columns: {len(refused) or 'every trip matched, no'} anomalies{drift}")
        lines.extend(f"  - {line}" for line in refused)
        lines.extend(f"  DRIFT over threshold: {line}" for line in artifacts.drifted(summary.external_report))
    if summary.drift and summary.drift["reference_spans"]:
        judged = [s for s in summary.drift["scores"] if s["judged"]]
        top = ", ".join(f"{s['feature']} {s['score']:.3f}" for s in judged[:3])
        lines.append(
            f"drift span {summary.drift['checked_span']} against spans {spans_text(summary.drift['reference_spans'])}: "
            f"highest scores {top or '-'} ({len(judged)} columns judged; span-time columns are not)"
        )
        if summary.drifted:
            lines.append(f"  DRIFT over threshold (policy: {summary.drift['on_drift']}): {describe_drift(summary.drift['scores'])}")
    elif summary.drift:
        lines.append(f"drift: not checked (span {summary.drift['checked_span']} is the only span in the window)")
    for record in summary.acceptances:
        lines.append(
            f"accepted span {record['span']}: record {record['record']} by {record['accepted_by']} "
            f"at {record['accepted_at']}: {record['reason']}"
        )
    lines.extend(f"  - accepted: {line}" for line in summary.accepted[:5])
    if len(summary.accepted) > 5:
        lines.append(f"  - and {len(summary.accepted) - 5} more accepted findings (the run report lists them all)")
    if summary.metrics:
        lines.append(f"{'metric':<26}{'new model':>12}{'serving model':>16}   threshold")
        for name in SUMMARY_METRICS:
            if name in summary.metrics:
                candidate, baseline = summary.metrics[name]
                lines.append(f"{name:<26}{_format_metric(candidate):>12}{_format_metric(baseline):>16}   {thresholds_text.get(name, '')}")
        for check, candidate, compared, rule in gate_rows(summary.gate):
            lines.append(f"{check:<26}{_format_metric(candidate):>12}{_format_metric(compared):>16}   {rule}")
        weakest = sorted(
            (values["auc"], label)
            for label, values in summary.slices.items()
            if values.get("auc") is not None and values.get("example_count", 0) >= MIN_SLICE_EXAMPLES
        )[:3]
        if weakest:
            lines.append("weakest slices by AUC: " + "; ".join(f"{label} {auc:.3f}" for auc, label in weakest))
    if summary.blessed is None:
        lines.append("decision: NOT EVALUATED (the run stopped before the Evaluator)")
    elif summary.blessed:
        lines.append("decision: BLESSED (every threshold met)")
    else:
        lines.append("decision: NOT BLESSED")
        lines.extend(f"  - {failure}" for failure in summary.failed_thresholds)
    if summary.serves is not None:
        lines.append(f"serving check: {'passed' if summary.serves else 'FAILED'} ({summary.serving_check_detail})")
    if summary.pushed_path:
        lines.append(f"pushed: version {summary.pushed_version} -> {summary.pushed_path}")
    else:
        if summary.already_serving_version:
            reason = f"this same model already serves as version {summary.already_serving_version}"
        elif summary.blessed is False:
            reason = "not blessed"
        elif summary.serves is False:
            reason = "the candidate failed the serving check"
        else:
            reason = "the run did not reach the Pusher"
        lines.append(f"pushed: nothing ({reason})")
    lines.append("=" * 72)
    return "\n".join(lines)
