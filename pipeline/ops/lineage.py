"""Lineage of a served model version, read back from ML Metadata.

Starts from a version folder under `serving_model/` (by default the one that serves:
`serving.versions.serving_version`, what `models.config` beside it pins, else the newest; or a
given version; or the highest AVAILABLE version a running server reports),
finds the PushedModel artifact the Pusher recorded for it, and walks ML Metadata's events back
(artifact -> the execution that produced it -> that execution's inputs) to the data, schema,
Transform graph, Trainer run, evaluation and blessing behind it.

Examples:
  python -m pipeline lineage --output-dir outputs
      Lineage of the serving version under outputs/serving_model/, as text.
  python -m pipeline lineage --output-dir outputs --card
      Write its model card (pipeline.ops.model_card) next to it and print the two paths.
  python -m pipeline lineage --output-dir outputs --version 1795786987 --json
      Lineage of one version, as JSON.
  python -m pipeline lineage --output-dir outputs --server http://127.0.0.1:8501 --model big_tipper
      Lineage of the version a running server has AVAILABLE (the highest one).

Exit code: 0 when the lineage was found; 2 when ML Metadata does not know the version; 1 on
any other problem (no metadata file, no version folder, server not reachable).
"""
import os
import warnings

if __name__ == "__main__":
    # Before TensorFlow is imported: keep its start-up notices and the Google client
    # libraries' Python-version notices off the terminal.
    warnings.filterwarnings("ignore", category=FutureWarning)
    from serving.console import import_tensorflow

    import_tensorflow()

import argparse
import dataclasses
import datetime
import json
import logging
import re
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.components.artifacts import (
    EXTERNAL_TABLES_KEY,
    GATE_REPORT_FILE,
    SPAN_FILES_PROPERTY,
    SPANS_PROPERTY,
    TABLES_PROPERTY,
    span_fingerprints,
)
from pipeline.ops import metadata
from pipeline.ops.metadata import OutputLayout
from pipeline.spans import file_sha256
from pipeline.validation import acceptance
from serving import versions

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNKNOWN_VERSION = 2


# Input and output keys of the standard components (tfx.types.standard_component_specs).
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
BASELINE_MODEL_KEY = "baseline_model"
BLESSING_KEY = "blessing"
INFRA_BLESSING_KEY = "infra_blessing"
EVALUATION_KEY = "evaluation"
# The Trainer's input from TFX's Tuner, and the file the Tuner writes into it.
HYPERPARAMETERS_KEY = "hyperparameters"
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
TRANSFORM_GRAPH_KEY = "transform_graph"

# Custom properties the Pusher and the Evaluator set.
PUSHED_PROPERTY = "pushed"
PUSHED_VERSION_PROPERTY = "pushed_version"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
BLESSED_PROPERTY = "blessed"
# Key of the code fingerprint in the Transform and Trainer custom_config (pipeline/dag.py).
MODULE_FINGERPRINT_KEY = "module_fingerprint"
SCHEMA_FILE_NAME = "schema.pbtxt"
# Context types TFX's orchestrators register: one "pipeline", one "node" per component.
PIPELINE_CONTEXT_TYPE = "pipeline"
NODE_CONTEXT_TYPE = "node"

_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


class LineageError(Exception):
    """The lineage cannot be read: a missing file, version or server."""


class UnknownVersionError(LineageError):
    """ML Metadata has no push of the requested version."""


@dataclasses.dataclass
class ArtifactInfo:
    """One artifact of the lineage, as ML Metadata records it."""

    id: int
    type_name: str
    uri: str
    state: str
    # The component that produced it and the execution id (None for an imported artifact).
    producer: Optional[str]
    execution_id: Optional[int]


@dataclasses.dataclass
class SpanFile:
    """A CSV file that went into the Examples, with the SHA-256 recorded at ingestion."""

    path: str
    sha256: str
    # "unchanged", "changed" or "missing": the file on disk now, compared with the record.
    status_now: str


@dataclasses.dataclass
class DataLineage:
    examples: ArtifactInfo
    spans: List[int]
    files: List[SpanFile]
    # Spans of these Examples an owner accepted after review (`pipeline.ops.accept`) with these very
    # files: span, record (artifact id), accepted_by, accepted_at, reason, problems (texts).
    acceptances: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SchemaLineage:
    schema: ArtifactInfo
    schema_file: str
    sha256: Optional[str]
    # The curated file ImportSchemaGen imported (its exec property), if any.
    imported_from: Optional[str]


@dataclasses.dataclass
class TransformLineage:
    transform_graph: ArtifactInfo
    preprocessing_fn: Optional[str]
    module_fingerprint: Optional[str]


@dataclasses.dataclass
class ExternalTablesLineage:
    """The ExternalTables artifact Transform read, and what ExternalTableGen recorded of each table."""

    tables: ArtifactInfo
    # Table name -> source_uri, sha256, rows, first_key, last_key (as ExternalTableGen recorded).
    records: Dict[str, Dict[str, Any]]


@dataclasses.dataclass
class TrainerLineage:
    model: ArtifactInfo
    run_fn: Optional[str]
    module_fingerprint: Optional[str]
    # The Trainer's custom_config without the fingerprint: what the run set explicitly.
    hyperparameters: Dict[str, Any]
    train_steps: Optional[int]
    eval_steps: Optional[int]
    # The Tuner's best values the Trainer trained with (modules/tune.py), when the run tuned.
    tuned_hyperparameters: Optional[Dict[str, Any]] = None


@dataclasses.dataclass
class EvaluationLineage:
    evaluation: ArtifactInfo
    # metric -> [candidate, baseline or None], on the whole eval split.
    metrics: Dict[str, Tuple[Optional[float], Optional[float]]]
    # metric -> its thresholds in words, from the Evaluator's eval_config.
    thresholds: Dict[str, str]
    failed_thresholds: List[str]
    # slice ("payment_type=Cash") -> metric -> value, candidate model only.
    slices: Dict[str, Dict[str, float]]
    baseline_model: Optional[ArtifactInfo]
    # The serving version the baseline model was pushed as, when it was.
    baseline_versions: List[str] = dataclasses.field(default_factory=list)
    # The ModelGate's report (pipeline.components.model_gate): trivial baselines, the card-paid
    # slice, the newest span, every reason; None for a run made before the gate existed.
    gate: Optional[Dict[str, Any]] = None


@dataclasses.dataclass
class PushLineage:
    pushed_model: ArtifactInfo
    version: str
    destination: str
    pushed_at_utc: str


@dataclasses.dataclass
class Lineage:
    """Everything behind one served version; a part is None when that step is not in the record."""

    version: str
    metadata_path: str
    push: PushLineage
    blessed: Optional[bool]
    blessing: Optional[ArtifactInfo]
    # The check that the model loads and answers in a model server (an InfraBlessing).
    serves: Optional[bool]
    serving_check: Optional[ArtifactInfo]
    evaluation: Optional[EvaluationLineage]
    trainer: Optional[TrainerLineage]
    transform: Optional[TransformLineage]
    schema: Optional[SchemaLineage]
    data: Optional[DataLineage]
    # The external tables the Transform graph joined (modules/external.py).
    external_tables: Optional[ExternalTablesLineage]
    # Every artifact and execution walked, ids ascending (the baseline model is listed, its own
    # history is not: it is the model this one was compared with, not one it was made from).
    artifact_ids: List[int]
    execution_ids: List[int]

    def to_json(self) -> Dict[str, Any]:
        """Returns the lineage as plain JSON-serialisable data."""
        return dataclasses.asdict(self)


def _utc(milliseconds: int) -> str:
    return datetime.datetime.fromtimestamp(milliseconds / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def custom_property(artifact_or_execution, name: str) -> Any:
    """Returns a custom property's value (string, int or float), or None when it is not set."""
    if name not in artifact_or_execution.custom_properties:
        return None
    value = artifact_or_execution.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def json_exec_property(execution: metadata_store_pb2.Execution, name: str) -> Any:
    """Returns an exec property TFX stored as JSON (custom_config, train_args, eval_config), or
    None when it is not set.

    Raises:
        LineageError: when the property is not JSON.
    """
    text = custom_property(execution, name)
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LineageError(f"execution {execution.id}: exec property {name!r} is not JSON ({error}): {text[:200]!r}") from error


def local_artifact_path(uri: str, pipeline_root: Optional[str]) -> str:
    """Returns where an artifact's files are on this machine.

    ML Metadata records absolute URIs. When the output directory was moved or copied, an
    artifact `<old root>/<Component>/<output>/<execution id>` is looked up under
    `pipeline_root` by its last three path parts (TFX's layout); the recorded URI is returned
    when that is not there.
    """
    if not pipeline_root or uri.startswith(os.path.join(pipeline_root, "")):
        return uri
    parts = os.path.normpath(uri).split(os.sep)
    if len(parts) >= 3:
        candidate = os.path.join(pipeline_root, *parts[-3:])
        if os.path.exists(candidate):
            return candidate
    return uri


class MetadataGraph:
    """Reads artifacts, executions and events of one ML Metadata store, with caches."""

    def __init__(self, store, pipeline_name: str):
        self.store = store
        self.pipeline_name = pipeline_name
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._node_context_type_id = store.get_context_type(NODE_CONTEXT_TYPE).id
        self._node_of_execution: Dict[int, Optional[str]] = {}
        self._artifacts: Dict[int, metadata_store_pb2.Artifact] = {}
        self._executions: Dict[int, metadata_store_pb2.Execution] = {}
        self._events_of_execution: Dict[int, List[metadata_store_pb2.Event]] = {}
        self._producer: Dict[int, Optional[int]] = {}

    def artifact(self, artifact_id: int) -> metadata_store_pb2.Artifact:
        """Returns an artifact by id."""
        if artifact_id not in self._artifacts:
            found = self.store.get_artifacts_by_id([artifact_id])
            if not found:
                raise LineageError(f"artifact {artifact_id} is referenced by an event but missing from ML Metadata")
            self._artifacts[artifact_id] = found[0]
        return self._artifacts[artifact_id]

    def execution(self, execution_id: int) -> metadata_store_pb2.Execution:
        """Returns an execution by id."""
        if execution_id not in self._executions:
            self._executions[execution_id] = self.store.get_executions_by_id([execution_id])[0]
        return self._executions[execution_id]

    def type_name(self, artifact: metadata_store_pb2.Artifact) -> str:
        """Returns an artifact's type name (e.g. "Examples")."""
        if artifact.type_id not in self._artifact_types:
            self._artifact_types = {t.id: t.name for t in self.store.get_artifact_types()}
        return self._artifact_types.get(artifact.type_id, f"type {artifact.type_id}")

    def node_of(self, execution_id: int) -> Optional[str]:
        """Returns the component id of an execution, from its node context."""
        if execution_id not in self._node_of_execution:
            prefix = f"{self.pipeline_name}."
            node = None
            for context in self.store.get_contexts_by_execution(execution_id):
                if context.type_id == self._node_context_type_id and context.name.startswith(prefix):
                    node = context.name[len(prefix):]
            self._node_of_execution[execution_id] = node
        return self._node_of_execution[execution_id]

    def events_of(self, execution_id: int) -> List[metadata_store_pb2.Event]:
        """Returns every event of an execution."""
        if execution_id not in self._events_of_execution:
            self._events_of_execution[execution_id] = list(self.store.get_events_by_execution_ids([execution_id]))
        return self._events_of_execution[execution_id]

    def producer(self, artifact_id: int) -> Optional[int]:
        """Returns the id of the execution that made an artifact, or None for an imported one.

        Cached executions and resolvers record the same artifact as their output later; the
        first execution that output it is the one that made it.
        """
        if artifact_id not in self._producer:
            events = [e for e in self.store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT_EVENTS]
            self._producer[artifact_id] = min((e.execution_id for e in events), default=None)
        return self._producer[artifact_id]

    def _by_key(self, execution_id: int, event_types: Sequence[int]) -> Dict[str, List[metadata_store_pb2.Artifact]]:
        result: Dict[str, List[metadata_store_pb2.Artifact]] = {}
        for event in self.events_of(execution_id):
            if event.type in event_types:
                key = event.path.steps[0].key if event.path.steps else ""
                result.setdefault(key, []).append(self.artifact(event.artifact_id))
        return result

    def inputs(self, execution_id: int) -> Dict[str, List[metadata_store_pb2.Artifact]]:
        """Returns an execution's input artifacts by input key."""
        return self._by_key(execution_id, _INPUT_EVENTS)

    def outputs(self, execution_id: int) -> Dict[str, List[metadata_store_pb2.Artifact]]:
        """Returns an execution's output artifacts by output key."""
        return self._by_key(execution_id, _OUTPUT_EVENTS)

    def info(self, artifact: metadata_store_pb2.Artifact) -> ArtifactInfo:
        """Returns the report form of an artifact."""
        execution_id = self.producer(artifact.id)
        return ArtifactInfo(
            id=artifact.id,
            type_name=self.type_name(artifact),
            uri=artifact.uri,
            state=metadata_store_pb2.Artifact.State.Name(artifact.state),
            producer=self.node_of(execution_id) if execution_id is not None else None,
            execution_id=execution_id,
        )

    def upstream(self, artifact_ids: Iterable[int]) -> Tuple[Set[int], Set[int]]:
        """Returns (artifact ids, execution ids) of the given artifacts and everything they were
        made from. The walk stops at a baseline model: it is listed, its own history is not.
        """
        artifacts: Set[int] = set()
        executions: Set[int] = set()
        pending = list(artifact_ids)
        while pending:
            artifact_id = pending.pop()
            if artifact_id in artifacts:
                continue
            artifacts.add(artifact_id)
            execution_id = self.producer(artifact_id)
            if execution_id is None or execution_id in executions:
                continue
            executions.add(execution_id)
            for event in self.events_of(execution_id):
                if event.type not in _INPUT_EVENTS:
                    continue
                key = event.path.steps[0].key if event.path.steps else ""
                if key == BASELINE_MODEL_KEY:
                    artifacts.add(event.artifact_id)
                else:
                    pending.append(event.artifact_id)
        return artifacts, executions


def serving_versions(serving_model_dir: str) -> List[str]:
    """Returns every version folder under `serving_model_dir` (`serving.versions`), complete or
    not, lowest first, as the folder names lineage and ML Metadata use."""
    return [str(version) for version in versions.version_numbers(serving_model_dir, complete_only=False)]


def latest_serving_version(serving_model_dir: str) -> str:
    """Returns the version that serves (`serving.versions.serving_version`): what the model
    config beside `serving_model_dir` pins, else the highest complete version.

    Raises:
        LineageError: when nothing is pushed there, or the model config cannot say.
    """
    try:
        found = versions.serving_version(serving_model_dir, configs.SERVING_MODEL_NAME)
    except versions.ServingConfigError as error:
        raise LineageError(str(error)) from None
    if found is None:
        raise LineageError(f"no complete version folder (a number) under {serving_model_dir}: nothing has been pushed there")
    return str(found)


def server_version(server_url: str, model_name: str, timeout_seconds: float = 10.0) -> str:
    """Returns the highest AVAILABLE version a running server reports for a model.

    Args:
        server_url: The REST address, e.g. "http://127.0.0.1:8501".
        model_name: The served model's name.
        timeout_seconds: How long to wait for the answer.

    Raises:
        LineageError: when the server cannot be reached, answers with an error, or has no
            AVAILABLE version of the model.
    """
    url = f"{server_url.rstrip('/')}/v1/models/{model_name}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            status = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        raise LineageError(f"{url} answered HTTP {error.code}: {body.strip()}") from error
    except (urllib.error.URLError, OSError) as error:
        raise LineageError(f"cannot reach the model server at {url}: {error}") from error
    except json.JSONDecodeError as error:
        raise LineageError(f"{url} did not answer JSON: {error}") from error
    states = status.get("model_version_status", [])
    available = [entry["version"] for entry in states if entry.get("state") == "AVAILABLE"]
    if not available:
        seen = ", ".join(f"{entry.get('version')}={entry.get('state')}" for entry in states) or "no version"
        raise LineageError(f"{url} has no AVAILABLE version of {model_name!r} ({seen})")
    return max(available, key=int)


def find_pushed_model(
    graph: MetadataGraph, version: str, serving_model_dir: Optional[str] = None
) -> metadata_store_pb2.Artifact:
    """Returns the PushedModel artifact of a pushed version.

    Among pushes of the same version number, one whose destination is
    `serving_model_dir/<version>` is preferred.

    Raises:
        UnknownVersionError: when no completed push recorded this version.
    """
    context = graph.store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, graph.pipeline_name)
    candidates = []
    if context is not None:
        for artifact in graph.store.get_artifacts_by_context(context.id):
            if graph.type_name(artifact) != "PushedModel" or not custom_property(artifact, PUSHED_PROPERTY):
                continue
            if str(custom_property(artifact, PUSHED_VERSION_PROPERTY)) == str(version):
                candidates.append(artifact)
    if not candidates:
        raise UnknownVersionError(f"version {version} is unknown to ML Metadata: no push of it by pipeline {graph.pipeline_name!r}")
    if serving_model_dir:
        wanted = os.path.realpath(os.path.join(serving_model_dir, str(version)))
        exact = [a for a in candidates if os.path.realpath(str(custom_property(a, PUSHED_DESTINATION_PROPERTY))) == wanted]
        candidates = exact or candidates
    return max(candidates, key=lambda artifact: artifact.id)


def _tuned_values(best: Optional[metadata_store_pb2.Artifact], pipeline_root: Optional[str]) -> Optional[Dict[str, Any]]:
    """The values of a Tuner's best_hyperparameters artifact (None without one; {"unreadable": uri}
    when housekeeping removed its file)."""
    if best is None:
        return None
    path = os.path.join(local_artifact_path(best.uri, pipeline_root), BEST_HYPERPARAMETERS_FILE)
    if not os.path.exists(path):
        return {"unreadable": best.uri}
    with open(path) as best_file:
        return json.load(best_file).get("values", {})


def pushed_versions_of(graph: MetadataGraph, model_id: int) -> List[str]:
    """The versions a Model was pushed as (completed pushes of the pipeline), ascending."""
    context = graph.store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, graph.pipeline_name)
    found = []
    for artifact in graph.store.get_artifacts_by_context(context.id) if context is not None else []:
        if graph.type_name(artifact) != "PushedModel" or not custom_property(artifact, PUSHED_PROPERTY):
            continue
        pusher_id = graph.producer(artifact.id)
        pushed = _first(graph.inputs(pusher_id), MODEL_KEY) if pusher_id is not None else None
        if pushed is not None and pushed.id == model_id:
            found.append(str(custom_property(artifact, PUSHED_VERSION_PROPERTY)))
    return sorted(found, key=int)


def _first(artifacts_by_key: Dict[str, List[metadata_store_pb2.Artifact]], key: str) -> Optional[metadata_store_pb2.Artifact]:
    artifacts = artifacts_by_key.get(key) or []
    return artifacts[0] if artifacts else None


def _metric_name(metric) -> str:
    """Returns the metric key of a TFMA MetricConfig: its instance's name ("OnePassBinaryAccuracy"
    of `pipeline.eval_metrics` -> "binary_accuracy"), or the class name in snake case when its
    module cannot be loaded here ("BinaryAccuracy" -> "binary_accuracy")."""
    from tensorflow_model_analysis.metrics import metric_specs

    try:
        return metric_specs.metric_instance(metric).name
    except (ImportError, AttributeError, TypeError, ValueError):
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", metric.class_name).lower()


def thresholds_from_eval_config(eval_config: Dict[str, Any]) -> Dict[str, str]:
    """Returns each gated metric's thresholds in words from an EvalConfig in JSON form (as TFX
    stores the Evaluator's exec property; snake_case or camelCase field names).

    Example: {"auc": ">= 0.93, drop <= 0.002"}.
    """
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    config = json_format.ParseDict(eval_config, tfma.EvalConfig(), ignore_unknown_fields=True)
    thresholds: Dict[str, str] = {}
    for metrics_spec in config.metrics_specs:
        for metric in metrics_spec.metrics:
            entries = [metric.threshold] if metric.HasField("threshold") else []
            # The whole split's thresholds; a slice's (the card-paid one) are named by the gate's report.
            entries += [
                item.threshold
                for item in metric.per_slice_thresholds
                if all(spec == tfma.SlicingSpec() for spec in item.slicing_specs)
            ]
            words = []
            for threshold in entries:
                value = threshold.value_threshold
                if value.HasField("lower_bound"):
                    words.append(f">= {value.lower_bound.value:g}")
                if value.HasField("upper_bound"):
                    words.append(f"<= {value.upper_bound.value:g}")
                change = threshold.change_threshold
                if change.HasField("absolute"):
                    words.append(f"drop <= {abs(change.absolute.value):g}")
                if change.HasField("relative"):
                    words.append(f"relative drop <= {abs(change.relative.value):g}")
            if words:
                thresholds[_metric_name(metric)] = ", ".join(words)
    return thresholds


def read_evaluation(evaluation_uri: str) -> Tuple[Dict[str, Tuple[Optional[float], Optional[float]]], Dict[str, Dict[str, float]], List[str]]:
    """Returns (overall metrics, slices, failed thresholds in words) of an evaluation folder."""
    from pipeline.ops import run_summary

    summary = run_summary.RunSummary()
    # run_summary's reader already turns TFMA's records into the words of the run summary.
    run_summary.read_evaluation(summary, evaluation_uri)
    return summary.metrics, summary.slices, summary.failed_thresholds


def _acceptances(store, examples: metadata_store_pb2.Artifact) -> List[Dict[str, Any]]:
    """The acceptances that applied to these Examples: the newest of each span, same files."""
    span_files = span_fingerprints(custom_property(examples, SPAN_FILES_PROPERTY) or "")
    return [
        {**acceptance.summary_of(record), "problems": [str(p["text"]) for p in record.problems]}
        for record in acceptance.applying(store, span_files)
    ]


def _span_files(examples: metadata_store_pb2.Artifact) -> List[SpanFile]:
    recorded = custom_property(examples, SPAN_FILES_PROPERTY)
    if not recorded:
        return []
    try:
        fingerprints = json.loads(recorded)
    except json.JSONDecodeError as error:
        raise LineageError(f"Examples artifact {examples.id}: custom property {SPAN_FILES_PROPERTY!r} is not JSON: {error}") from error
    files = []
    for path, sha256 in sorted(fingerprints.items()):
        if not os.path.exists(path):
            status = "missing"
        else:
            status = "unchanged" if file_sha256(path) == sha256 else "changed"
        files.append(SpanFile(path=path, sha256=sha256, status_now=status))
    return files


def trace_pushed_model(graph: MetadataGraph, pushed_model: metadata_store_pb2.Artifact, metadata_path: str, pipeline_root: Optional[str] = None) -> Lineage:
    """Walks ML Metadata back from a PushedModel artifact.

    Args:
        graph: The ML Metadata to read.
        pushed_model: The Pusher's output artifact of the version.
        metadata_path: The metadata file, named in the report.
        pipeline_root: This machine's pipeline root, for artifacts moved with the output dir.
    """
    version = str(custom_property(pushed_model, PUSHED_VERSION_PROPERTY))
    push = PushLineage(
        pushed_model=graph.info(pushed_model),
        version=version,
        destination=str(custom_property(pushed_model, PUSHED_DESTINATION_PROPERTY)),
        pushed_at_utc=_utc(pushed_model.create_time_since_epoch),
    )
    lineage = Lineage(
        version=version, metadata_path=metadata_path, push=push, blessed=None, blessing=None, serves=None,
        serving_check=None, evaluation=None,
        trainer=None, transform=None, schema=None, data=None, external_tables=None, artifact_ids=[], execution_ids=[],
    )
    artifact_ids, execution_ids = graph.upstream([pushed_model.id])
    lineage.artifact_ids, lineage.execution_ids = sorted(artifact_ids), sorted(execution_ids)
    pusher_id = graph.producer(pushed_model.id)
    if pusher_id is None:
        return lineage
    pusher_inputs = graph.inputs(pusher_id)

    blessing = _first(pusher_inputs, MODEL_BLESSING_KEY)
    if blessing is not None:
        lineage.blessing = graph.info(blessing)
        lineage.blessed = bool(custom_property(blessing, BLESSED_PROPERTY))
        evaluator_id = graph.producer(blessing.id)
        gate_report = None
        # The blessing is the ModelGate's; the Evaluator made the evaluation the gate read.
        gated_evaluation = _first(graph.inputs(evaluator_id), EVALUATION_KEY) if evaluator_id is not None else None
        if gated_evaluation is not None:
            blessing_path = local_artifact_path(blessing.uri, pipeline_root)
            if os.path.exists(os.path.join(blessing_path, GATE_REPORT_FILE)):
                with open(os.path.join(blessing_path, GATE_REPORT_FILE)) as report_file:
                    gate_report = json.load(report_file)
            evaluator_id = graph.producer(gated_evaluation.id)
        if evaluator_id is not None:
            evaluation = _first(graph.outputs(evaluator_id), EVALUATION_KEY)
            baseline = _first(graph.inputs(evaluator_id), BASELINE_MODEL_KEY)
            if evaluation is not None:
                evaluation_path = local_artifact_path(evaluation.uri, pipeline_root)
                readable = evaluation.state == metadata_store_pb2.Artifact.LIVE and os.path.isdir(evaluation_path)
                # Housekeeping may have removed the files; the record of the evaluation stays.
                metrics, slices, failed = read_evaluation(evaluation_path) if readable else ({}, {}, [])
                lineage.evaluation = EvaluationLineage(
                    evaluation=graph.info(evaluation),
                    metrics=metrics,
                    thresholds=thresholds_from_eval_config(json_exec_property(graph.execution(evaluator_id), "eval_config") or {}),
                    failed_thresholds=failed,
                    slices=slices,
                    baseline_model=graph.info(baseline) if baseline is not None else None,
                    baseline_versions=pushed_versions_of(graph, baseline.id) if baseline is not None else [],
                    gate=gate_report,
                )

    infra_blessing = _first(pusher_inputs, INFRA_BLESSING_KEY)
    if infra_blessing is not None:
        lineage.serving_check = graph.info(infra_blessing)
        lineage.serves = bool(custom_property(infra_blessing, BLESSED_PROPERTY))

    model = _first(pusher_inputs, MODEL_KEY)
    trainer_inputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    if model is not None:
        trainer_id = graph.producer(model.id)
        if trainer_id is not None:
            trainer = graph.execution(trainer_id)
            trainer_inputs = graph.inputs(trainer_id)
            custom_config = json_exec_property(trainer, "custom_config") or {}
            lineage.trainer = TrainerLineage(
                model=graph.info(model),
                run_fn=custom_property(trainer, "run_fn"),
                module_fingerprint=custom_config.get(MODULE_FINGERPRINT_KEY),
                hyperparameters={k: v for k, v in custom_config.items() if k != MODULE_FINGERPRINT_KEY},
                train_steps=(json_exec_property(trainer, "train_args") or {}).get("num_steps"),
                eval_steps=(json_exec_property(trainer, "eval_args") or {}).get("num_steps"),
                tuned_hyperparameters=_tuned_values(_first(trainer_inputs, HYPERPARAMETERS_KEY), pipeline_root),
            )

    transform_inputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    transform_graph = _first(trainer_inputs, TRANSFORM_GRAPH_KEY)
    if transform_graph is not None:
        transform_id = graph.producer(transform_graph.id)
        transform_config: Dict[str, Any] = {}
        preprocessing_fn = None
        if transform_id is not None:
            transform = graph.execution(transform_id)
            transform_inputs = graph.inputs(transform_id)
            transform_config = json_exec_property(transform, "custom_config") or {}
            preprocessing_fn = custom_property(transform, "preprocessing_fn")
        lineage.transform = TransformLineage(
            transform_graph=graph.info(transform_graph),
            preprocessing_fn=preprocessing_fn,
            module_fingerprint=transform_config.get(MODULE_FINGERPRINT_KEY),
        )

    schema = _first(trainer_inputs, SCHEMA_KEY) or _first(transform_inputs, SCHEMA_KEY)
    if schema is not None:
        schema_file = os.path.join(local_artifact_path(schema.uri, pipeline_root), SCHEMA_FILE_NAME)
        schema_producer = graph.producer(schema.id)
        lineage.schema = SchemaLineage(
            schema=graph.info(schema),
            schema_file=schema_file,
            sha256=file_sha256(schema_file) if os.path.exists(schema_file) else None,
            imported_from=custom_property(graph.execution(schema_producer), "schema_file") if schema_producer is not None else None,
        )

    tables = _first(transform_inputs, EXTERNAL_TABLES_KEY)
    if tables is not None:
        lineage.external_tables = ExternalTablesLineage(
            tables=graph.info(tables), records=json.loads(custom_property(tables, TABLES_PROPERTY) or "{}")
        )

    examples = _first(transform_inputs, EXAMPLES_KEY)
    if examples is None and blessing is not None and graph.producer(blessing.id) is not None:
        examples = _first(graph.inputs(graph.producer(blessing.id)), EXAMPLES_KEY)
    if examples is not None:
        spans_text = custom_property(examples, SPANS_PROPERTY) or ""
        lineage.data = DataLineage(
            examples=graph.info(examples),
            spans=[int(span) for span in str(spans_text).split(",") if span.strip()],
            files=_span_files(examples),
            acceptances=_acceptances(graph.store, examples),
        )
    return lineage


def open_store(output_dir: str, setting: metadata.MetadataSetting = metadata.MetadataSetting(), mode: int = metadata.READ):
    """Returns the ML Metadata store of an output dir's runs (read-only for SQLite with READ).

    Raises:
        LineageError: when the metadata does not exist (opening would create an empty one) or
            does not open.
    """
    try:
        return metadata.open_store(setting, output_dir, mode)
    except metadata.MetadataSettingError as error:
        raise LineageError(str(error)) from None


def trace_version(
    output_dir: str,
    version: str,
    pipeline_name: str = configs.PIPELINE_NAME,
    setting: metadata.MetadataSetting = metadata.MetadataSetting(),
) -> Lineage:
    """Returns the lineage of a pushed version of a run's output directory.

    Args:
        output_dir: What `run_local.py --output-dir` wrote (metadata.db, pipeline_root/,
            serving_model/).
        version: The version number (folder name under serving_model/).
        pipeline_name: The pipeline's name in ML Metadata.
        setting: Where the output dir's ML Metadata lives.

    Raises:
        UnknownVersionError: when ML Metadata has no push of the version.
        LineageError: when the metadata is missing or unreadable.
    """
    return trace_with_store(open_store(output_dir, setting), setting.describe(output_dir), output_dir, version, pipeline_name)


def trace_with_store(store, metadata_path: str, output_dir: str, version: str, pipeline_name: str = configs.PIPELINE_NAME) -> Lineage:
    """Like `trace_version`, on an open ML Metadata store (e.g. the run's own connection).

    Raises:
        UnknownVersionError: when ML Metadata has no push of the version.
    """
    graph = MetadataGraph(store, pipeline_name)
    try:
        pushed_model = find_pushed_model(graph, version, OutputLayout(output_dir).serving_model_dir)
    except UnknownVersionError as error:
        raise UnknownVersionError(f"{error} (metadata: {metadata_path})") from error
    return trace_pushed_model(graph, pushed_model, metadata_path, OutputLayout(output_dir).pipeline_root)


def _state(artifact: ArtifactInfo) -> str:
    return "" if artifact.state == "LIVE" else f", {artifact.state}"


def _short(fingerprint: Optional[str]) -> str:
    return fingerprint[:16] if fingerprint else "-"


def _format_value(value: Optional[float]) -> str:
    return "-" if value is None else (f"{value:.0f}" if value > 10 else f"{value:.4f}")


def format_text(lineage: Lineage) -> str:
    """Renders a lineage for a terminal."""
    push = lineage.push
    lines = [
        f"Lineage of serving version {lineage.version}",
        f"  metadata: {lineage.metadata_path}",
        f"push        {push.pushed_at_utc} -> {push.destination}",
        f"            PushedModel #{push.pushed_model.id} by {push.pushed_model.producer} execution #{push.pushed_model.execution_id}",
    ]
    if lineage.blessing is not None:
        verdict = "BLESSED" if lineage.blessed else "NOT BLESSED"
        lines.append(f"blessing    {verdict} (ModelBlessing #{lineage.blessing.id}, {lineage.blessing.producer} execution #{lineage.blessing.execution_id})")
    else:
        lines.append("blessing    none recorded: the push did not depend on a blessing")
    if lineage.serving_check is not None:
        lines.append(f"serving     {'loads and answers' if lineage.serves else 'FAILED the serving check'} ({lineage.serving_check.type_name} #{lineage.serving_check.id})")
    evaluation = lineage.evaluation
    if evaluation is not None:
        lines.append(f"evaluation  {evaluation.evaluation.uri} (ModelEvaluation #{evaluation.evaluation.id}{_state(evaluation.evaluation)})")
        if evaluation.metrics:
            lines.append(f"  {'metric':<28}{'model':>10}{'baseline':>12}   threshold")
        else:
            lines.append("  metrics: not readable (the evaluation's files were removed)")
        for name, (candidate, baseline) in sorted(evaluation.metrics.items()):
            lines.append(f"  {name:<28}{_format_value(candidate):>10}{_format_value(baseline):>12}   {evaluation.thresholds.get(name, '')}")
        if evaluation.gate:
            from pipeline.ops.run_summary import gate_rows

            for check, candidate, compared, rule in gate_rows(evaluation.gate):
                lines.append(f"  {check:<28}{_format_value(candidate):>10}{_format_value(compared):>12}   {rule}")
        failures = evaluation.gate["failures"] if evaluation.gate else evaluation.failed_thresholds
        lines.extend(f"  failed: {failure}" for failure in failures)
        if evaluation.baseline_model is not None:
            versions_text = f" (serving version {', '.join(evaluation.baseline_versions)})" if evaluation.baseline_versions else ""
            lines.append(f"  compared with: Model #{evaluation.baseline_model.id}{versions_text} {evaluation.baseline_model.uri}")
        else:
            lines.append("  compared with: no baseline (no version served yet)")
    trainer = lineage.trainer
    if trainer is not None:
        lines.append(f"model       {trainer.model.uri} (Model #{trainer.model.id}, Trainer execution #{trainer.model.execution_id}{_state(trainer.model)})")
        lines.append(f"  run_fn {trainer.run_fn}, train steps {trainer.train_steps}, eval steps {trainer.eval_steps}")
        lines.append(f"  module fingerprint {trainer.module_fingerprint or '-'}")
        lines.append(f"  hyperparameters {json.dumps(trainer.hyperparameters, sort_keys=True) if trainer.hyperparameters else 'the defaults of modules/hparams.py'}")
        if trainer.tuned_hyperparameters is not None:
            lines.append(f"  tuned by the Tuner: {json.dumps(trainer.tuned_hyperparameters, sort_keys=True)}")
    transform = lineage.transform
    if transform is not None:
        lines.append(f"transform   {transform.transform_graph.uri} (TransformGraph #{transform.transform_graph.id}, Transform execution #{transform.transform_graph.execution_id}{_state(transform.transform_graph)})")
        lines.append(f"  preprocessing_fn {transform.preprocessing_fn}, module fingerprint {_short(transform.module_fingerprint)}")
    schema = lineage.schema
    if schema is not None:
        lines.append(f"schema      {schema.schema_file} sha256 {schema.sha256 or 'file missing'}")
        if schema.imported_from:
            lines.append(f"  imported from {schema.imported_from}")
    if lineage.external_tables is not None:
        for name, record in sorted(lineage.external_tables.records.items()):
            lines.append(f"external    {name}: {record['source_uri']} sha256 {record['sha256']}")
            lines.append(f"  {record['rows']} rows, {record['first_key']} .. {record['last_key']}; snapshot {lineage.external_tables.tables.uri} (ExternalTables #{lineage.external_tables.tables.id})")
    data = lineage.data
    if data is not None:
        lines.append(f"data        spans {','.join(str(s) for s in data.spans)} -> {data.examples.uri} (Examples #{data.examples.id}{_state(data.examples)})")
        lines.extend(f"  {f.path}  sha256 {f.sha256}  ({f.status_now} now)" for f in data.files)
        for record in data.acceptances:
            lines.append(
                f"accepted    span {record['span']} on record {record['record']} by {record['accepted_by']} "
                f"at {record['accepted_at']}: {record['reason']}"
            )
            lines.extend(f"  - {problem}" for problem in record["problems"])
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(prog="python -m pipeline lineage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="the run's output dir (metadata.db, pipeline_root/, serving_model/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", help="a pushed version (default: the serving version: what OUTPUT_DIR/models.config pins, else the newest)")
    which.add_argument("--server", help="REST address of a running model server, e.g. http://127.0.0.1:8501: trace its highest AVAILABLE version")
    parser.add_argument("--model", default=configs.SERVING_MODEL_NAME, help=f"model name on the server (default: {configs.SERVING_MODEL_NAME})")
    parser.add_argument("--pipeline-name", default=configs.PIPELINE_NAME, help=f"pipeline name in ML Metadata (default: {configs.PIPELINE_NAME})")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    output.add_argument("--card", action="store_true", help="write the version's model card (Markdown and HTML, in its assets.extra/) and print where it is")
    metadata.add_metadata_flag(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prints the lineage of a served version; returns the exit code."""
    args = parse_args(argv)
    # TFMA's reader logs deprecation notices meant for library authors.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    output_dir = os.path.abspath(args.output_dir)
    try:
        setting = metadata.setting_from(args.metadata_url)
    except metadata.MetadataSettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    try:
        if args.version:
            version = args.version
        elif args.server:
            version = server_version(args.server, args.model)
        else:
            version = latest_serving_version(OutputLayout(output_dir).serving_model_dir)
        lineage = trace_version(output_dir, version, args.pipeline_name, setting)
    except UnknownVersionError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN_VERSION
    except LineageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.card:
        from pipeline.ops import model_card

        for path in model_card.write_card(lineage, OutputLayout(output_dir).serving_model_dir):
            print(path)
        return EXIT_OK
    print(json.dumps(lineage.to_json(), indent=2, sort_keys=True) if args.json else format_text(lineage))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
