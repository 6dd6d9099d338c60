"""Canary and promotion: serve a new version beside the stable one, compare them, promote or abort.

    python -m pipeline rollout status  --output-dir outputs
    python -m pipeline rollout canary 1795786529 --output-dir outputs --grpc localhost:8500
    python -m pipeline rollout compare --output-dir outputs --grpc localhost:8500 \\
        --request-log /srv/request_log
    python -m pipeline rollout promote --output-dir outputs --grpc localhost:8500
    python -m pipeline rollout abort   --output-dir outputs --grpc localhost:8500

The state of a rollout is the model config the server reads (`--config-file`, default
`models.config` next to the serving directory, where `python -m pipeline rollback` writes and
`serving.versions.serving_version` reads): a `specific` policy that loads the `stable` and
`canary` versions, each under its label. Clients that name `/labels/stable` keep the known-good
model; `/labels/canary` reaches the new one. Each step writes that file and, with `--grpc`,
reloads the running server with HandleReloadConfigRequest (TF Serving and the project's server
both take it):

- `canary VERSION`: loads VERSION next to the stable version (`--stable` when given, else the
  version the config makes serve: its `stable` label, else the newest version) and labels it
  `canary`;
- `compare`: scores the same trips with both labels through the server: the newest logged
  requests (`--request-log`, the files `--request_log_dir` of the project's server or the
  logging proxy writes) for the two prediction distributions, their agreement and each
  version's errors, and the newest span's labelled eval trips (the pipeline's
  NewestSpanExampleGen, from `--output-dir`'s ML Metadata) for each version's AUC and accuracy;
- `promote`: the canary becomes `stable`, the `canary` label goes, the old stable is unloaded;
- `abort`: the `canary` label goes and the canary is unloaded; the stable version stays.

No step deletes a version folder. With `--output-dir` every step is recorded in its ML Metadata
as a `ServingRollout` execution (step, versions, config file, time, and for `compare` its
numbers), with the PushedModel artifacts of both versions as inputs, under the output dir's
writer lock. `--config-file` may be given more than once (e.g. the compose config and the k8s
canary overlay's): the first one holds the state, every one gets the same text.

Exit codes: 0 done; 2 refused (a version that is not pushed, a step the state does not allow,
a config file that cannot be written: nothing changed); 3 `compare` found the canary worse than
the gate allows on the newest span, or erring where stable does not; 4 `compare` could not
decide (stable refused every trip, no trip both answered, one class only in the newest span);
64 usage; 75 another process writes to the output dir; 1 the server refused or did not answer
(a version that fails to load: the server gets its previous config back), or a config file
could not be written after the server took the config (the message says what serves).
"""
import argparse
import collections
import dataclasses
import json
import logging
import math
import os
import sys
from typing import Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.config import model_server_config_pb2

from modules import features
from pipeline import configs
from pipeline.component_ids import EXAMPLE_GEN, NEWEST_SPAN_EXAMPLE_GEN
from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops import metadata, writer_lock
from pipeline.ops.metadata import OutputLayout
from pipeline.ops.rollback import (
    ConfigWriteError,
    RollbackError,
    check_config_file,
    pinned_config,
    pushed_model_artifact,
    pushed_versions,
    record_serving_change,
    recording,
    reload_server,
    served_config,
    utc_now,
    write_configs,
)
from serving import client
from serving.versions import STABLE_LABEL, ServingConfigError, model_config_path, serving_version

logger = logging.getLogger(__name__)

ROLLOUT_EXECUTION_TYPE = "ServingRollout"
CANARY_LABEL = "canary"
EXIT_REFUSED = 2
EXIT_CANARY_WORSE = 3
EXIT_UNDECIDED = 4
EXIT_USAGE = 64
EXIT_SERVER = 1
# Trips per Predict call while comparing: large enough to be quick, far below the server's
# row limit.
SCORE_BATCH = 256
# The logged requests compared: the newest ones, where a canary's traffic is.
DEFAULT_LOGGED_TRIPS = 2000
DECISION_THRESHOLD = 0.5
# How a server refuses one request for what the version is (a trip it cannot take, an answer
# without the probabilities, which the client reports with code OK): counted against that
# version. Any other code (UNAVAILABLE, DEADLINE_EXCEEDED, ...) says the server could not
# answer at all, which says nothing about either version: compare stops with it.
REFUSAL_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OK})


class RolloutError(RollbackError):
    """The rollout step cannot be done as asked; the message says why. Nothing was changed."""


@dataclasses.dataclass(frozen=True)
class RolloutState:
    """What the model config makes serve: the stable version, and the canary while one runs."""

    stable: Optional[int]
    canary: Optional[int]
    config_file: str

    def describe(self) -> str:
        stable = "none pushed" if self.stable is None else str(self.stable)
        canary = "none" if self.canary is None else str(self.canary)
        return f"stable {stable}, canary {canary} ({self.config_file})"


def read_state(serving_dir: str, config_file: str, model_name: str = SERVING_MODEL_NAME) -> RolloutState:
    """Reads the rollout's state from the model config the server reads.

    Args:
        serving_dir: The Pusher's serving directory.
        config_file: The ModelServerConfig (it may not exist yet: then the newest version serves).
        model_name: The served model.

    Raises:
        RolloutError: when the config does not parse, names no such model, or labels a version
            that is not a complete folder under `serving_dir`.
    """
    try:
        stable = serving_version(serving_dir, model_name, config_file)
    except ServingConfigError as error:
        raise RolloutError(str(error)) from None
    canary = None
    if os.path.exists(config_file):
        config = model_server_config_pb2.ModelServerConfig()
        with open(config_file) as config_in:
            text_format.Parse(config_in.read(), config)  # serving_version parsed it already
        [entry] = [entry for entry in config.model_config_list.config if entry.name == model_name][:1]
        if CANARY_LABEL in entry.version_labels:
            canary = entry.version_labels[CANARY_LABEL]
            if canary not in pushed_versions(serving_dir):
                raise RolloutError(f"{config_file} labels version {canary} {CANARY_LABEL!r}, which is not a complete version under {serving_dir}")
    return RolloutState(stable=stable, canary=canary, config_file=config_file)


# ---------------------------------------------------------------------------------------------
# Reloading the running server


# ---------------------------------------------------------------------------------------------
# The steps that change serving


@dataclasses.dataclass(frozen=True)
class ServingTarget:
    """Where a rollout acts: the versions on disk, the config files, the server, the record."""

    serving_dir: str
    config_files: Sequence[str]
    base_path: Optional[str] = None
    grpc_address: Optional[str] = None
    output_dir: Optional[str] = None
    setting: metadata.MetadataSetting = metadata.MetadataSetting()
    model_name: str = SERVING_MODEL_NAME

    def state(self) -> RolloutState:
        return read_state(self.serving_dir, self.config_files[0], self.model_name)


def _apply(target: ServingTarget, step: str, labels: Mapping[str, int], record_versions: Mapping[str, int], extra: Optional[Mapping[str, str]] = None) -> model_server_config_pb2.ModelServerConfig:
    """Serves `labels` (label -> version): reloads the server, writes every config file, records the step.

    The server is reloaded first, so a config it refuses is written nowhere; every config file
    is checked before, so the server is not changed for a file that cannot be written.
    """
    base_path = target.base_path or os.path.abspath(target.serving_dir)
    config = pinned_config(base_path, labels, target.model_name)
    with recording(target.output_dir, target.setting) as recorder:
        pushed_models = _pushed_models(recorder, record_versions)
        for config_file in target.config_files:
            check_config_file(config_file)
        if target.grpc_address:
            previous = served_config(target.config_files[0], base_path, target.model_name)
            reload_server(target.grpc_address, config, target.model_name, previous=previous, previous_source=target.config_files[0])
        write_configs(config, target.config_files, target.grpc_address)
        if recorder:
            _record_step(recorder[0], pushed_models, target, step, record_versions, extra)
    logger.info("rollout %s: serving %s", step, dict(labels))
    return config


def _pushed_models(recorder: Optional[Tuple[metadata_store.MetadataStore, str]], versions: Mapping[str, int]) -> List[metadata_store_pb2.Artifact]:
    """The PushedModel artifacts of the versions a step names ([] when nothing is recorded)."""
    return [pushed_model_artifact(recorder[0], version, recorder[1]) for version in sorted(set(versions.values()))] if recorder else []


def _record_step(store: metadata_store.MetadataStore, pushed_models: List[metadata_store_pb2.Artifact], target: ServingTarget, step: str, versions: Mapping[str, int], extra: Optional[Mapping[str, str]] = None) -> int:
    """Records one rollout step as a ServingRollout execution whose inputs are the versions' pushes."""
    properties = {
        "step": step,
        **{f"{name}_version": str(version) for name, version in versions.items()},
        "config_file": ",".join(os.path.abspath(path) for path in target.config_files),
        "time": utc_now(),
        **(extra or {}),
    }
    return record_serving_change(store, ROLLOUT_EXECUTION_TYPE, properties, pushed_models)


def start_canary(target: ServingTarget, canary: int, stable: Optional[int] = None) -> RolloutState:
    """Serves `canary` under the `canary` label next to the stable version.

    Args:
        target: Where to act.
        canary: The pushed version to try.
        stable: The known-good version; None: the one the config makes serve (its `stable`
            label, else the newest version).

    Raises:
        RolloutError: when `canary` or `stable` is not a complete pushed version (or ML Metadata
            has no push of it), a canary runs already, or the two are the same version.
    """
    versions = pushed_versions(target.serving_dir)
    state = target.state()
    if state.canary is not None:
        raise RolloutError(f"a canary runs already: version {state.canary} ({state.describe()}); promote or abort it first")
    stable = state.stable if stable is None else stable
    for name, version in (("canary", canary), ("stable", stable)):
        if version not in versions:
            raise RolloutError(f"{name} version {version} is not a complete pushed version in {target.serving_dir!r}; there are {versions}")
    if stable == canary:
        raise RolloutError(
            f"version {canary} is the stable version already ({state.describe()}); a canary tries another version. "
            f"To name the known-good version: --stable VERSION"
        )
    _apply(target, "canary", {STABLE_LABEL: stable, CANARY_LABEL: canary}, {"stable": stable, "canary": canary})
    return RolloutState(stable=stable, canary=canary, config_file=target.config_files[0])


def _running_canary(target: ServingTarget, step: str) -> RolloutState:
    state = target.state()
    if state.canary is None:
        raise RolloutError(f"no canary runs ({state.describe()}): nothing to {step}; start one with `rollout canary VERSION`")
    return state


def promote(target: ServingTarget) -> RolloutState:
    """Makes the canary the stable version; the old stable is unloaded and stays on disk.

    Raises:
        RolloutError: when no canary runs.
    """
    return _end_canary(target, "promote", keep_canary=True)


def abort(target: ServingTarget) -> RolloutState:
    """Ends the canary: its label goes, it is unloaded and stays on disk; stable keeps serving.

    Raises:
        RolloutError: when no canary runs.
    """
    return _end_canary(target, "abort", keep_canary=False)


def _end_canary(target: ServingTarget, step: str, keep_canary: bool) -> RolloutState:
    """Leaves one version under `stable`: the canary (promote) or the stable one (abort)."""
    state = _running_canary(target, step)
    kept, dropped = (state.canary, state.stable) if keep_canary else (state.stable, state.canary)
    _apply(target, step, {STABLE_LABEL: kept}, {"stable": kept, "previous_stable" if keep_canary else "aborted_canary": dropped})
    return RolloutState(stable=kept, canary=None, config_file=state.config_file)


# ---------------------------------------------------------------------------------------------
# Comparing stable and canary


def _refusal(error: Exception) -> bool:
    """Whether `error` is the version refusing the request, not the server failing to answer."""
    return isinstance(error, ValueError) or (isinstance(error, client.ServingError) and error.grpc_code in REFUSAL_CODES)


def _score(grpc_address: str, model_name: str, label: str, trips: Sequence[Mapping[str, object]]) -> List[Optional[float]]:
    """P(big tipper) of each trip from the version under `label`; None where the version refused it.

    A refused batch is scored again trip by trip, so one bad trip counts as one error.

    Raises:
        client.ServingError: when the server does not answer (see REFUSAL_CODES).
    """
    dtypes = client.signature_inputs(client.model_metadata_grpc(grpc_address, model_name, label=label))
    scores: List[Optional[float]] = []
    for start in range(0, len(trips), SCORE_BATCH):
        batch = trips[start : start + SCORE_BATCH]
        try:
            scores.extend(client.predict_trips_grpc(grpc_address, model_name, batch, label=label, dtypes=dtypes))
            continue
        except (client.ServingError, ValueError) as error:
            if not _refusal(error):
                raise
            logger.info("label %s refused a batch of %d trips (%s); scoring them one by one", label, len(batch), error)
        for trip in batch:
            try:
                scores.extend(client.predict_trips_grpc(grpc_address, model_name, [trip], label=label, dtypes=dtypes))
            except (client.ServingError, ValueError) as error:
                if not _refusal(error):
                    raise
                scores.append(None)
    return scores


def _quantile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(scores: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """Count, errors, mean, 10th/50th/90th percentiles and the share predicted big tippers."""
    answered = [score for score in scores if score is not None]
    summary: Dict[str, Optional[float]] = {"trips": len(scores), "errors": len(scores) - len(answered)}
    if not answered:
        return {**summary, "mean": None, "p10": None, "p50": None, "p90": None, "positive_share": None}
    return {
        **summary,
        "mean": sum(answered) / len(answered),
        "p10": _quantile(answered, 0.1),
        "p50": _quantile(answered, 0.5),
        "p90": _quantile(answered, 0.9),
        "positive_share": sum(score >= DECISION_THRESHOLD for score in answered) / len(answered),
    }


def agreement(stable: Sequence[Optional[float]], canary: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """On the trips both answered: the share with the same decision, mean and largest |difference|."""
    pairs = [(a, b) for a, b in zip(stable, canary) if a is not None and b is not None]
    if not pairs:
        return {"paired_trips": 0, "same_decision_share": None, "mean_abs_difference": None, "max_abs_difference": None}
    differences = [abs(a - b) for a, b in pairs]
    return {
        "paired_trips": len(pairs),
        "same_decision_share": sum((a >= DECISION_THRESHOLD) == (b >= DECISION_THRESHOLD) for a, b in pairs) / len(pairs),
        "mean_abs_difference": sum(differences) / len(differences),
        "max_abs_difference": max(differences),
    }


def quality(scores: Sequence[Optional[float]], labels: Sequence[bool]) -> Dict[str, Optional[float]]:
    """AUC and accuracy (at 0.5) on the trips answered; AUC is None when one class is absent."""
    from sklearn.metrics import roc_auc_score

    pairs = [(score, label) for score, label in zip(scores, labels) if score is not None]
    summary: Dict[str, Optional[float]] = {"trips": len(scores), "errors": len(scores) - len(pairs), "auc": None, "binary_accuracy": None}
    if not pairs:
        return summary
    truth = [label for _, label in pairs]
    summary["binary_accuracy"] = sum((score >= DECISION_THRESHOLD) == label for score, label in pairs) / len(pairs)
    if len(set(truth)) == 2:
        summary["auc"] = float(roc_auc_score(truth, [score for score, _ in pairs]))
    return summary


def logged_trips(request_log_dir: str, limit: int) -> List[Dict[str, object]]:
    """The newest `limit` trips of a request log (the format of `serving.devserver.request_log`),
    oldest first.

    The files are read newest first (their names start with the time they were opened, as
    `read_log` orders them) until `limit` trips are found, so a long log is neither read whole
    nor held in memory.

    Raises:
        RolloutError: when the folder does not exist, holds no logged trip, or a file it needs
            does not read.
    """
    import tensorflow as tf

    from pipeline.validation import span_rows
    from serving.devserver.request_log import LOG_FILE_PREFIX

    if not os.path.isdir(request_log_dir):
        raise RolloutError(f"request log {request_log_dir!r} is not a folder")
    newest_first = sorted((name for name in os.listdir(request_log_dir) if name.startswith(LOG_FILE_PREFIX)), reverse=True)
    records: List[bytes] = []  # newest file's records first, each file's in its own order
    for name in newest_first:
        path = os.path.join(request_log_dir, name)
        # The last records of this file are the newest ones still wanted.
        wanted: Deque[bytes] = collections.deque(maxlen=limit - len(records))
        try:
            for record in tf.data.TFRecordDataset(path):
                wanted.append(record.numpy())
        except tf.errors.OpError as error:
            raise RolloutError(f"request log file {path} does not read: {error.message}") from None
        records = list(wanted) + records
        if len(records) >= limit:
            break
    if not records:
        raise RolloutError(f"request log {request_log_dir!r} holds no logged request")
    return [span_rows.from_example(tf.train.Example.FromString(record)) for record in records]


def _holds_one_span(artifact: metadata_store_pb2.Artifact, spans_property: str) -> bool:
    spans = artifact.custom_properties[spans_property].string_value if spans_property in artifact.custom_properties else ""
    return bool(spans) and "," not in spans


def newest_span_eval_trips(output_dir: str, setting: metadata.MetadataSetting) -> Dict[str, object]:
    """The newest span's eval trips the pipeline scored its candidate on: {"span": N or None,
    "uri": ..., "trips": [...]}, from the newest Examples that hold one span alone, those of
    NewestSpanExampleGen or, after a run of a one-span window (which has no such step), the
    ExampleGen's.

    Raises:
        RolloutError: when ML Metadata holds no such Examples (a run without the newest-span check).
    """
    from pipeline.components.artifacts import SPANS_PROPERTY, read_trips

    try:
        store = metadata.open_store(setting, output_dir)
    except metadata.MetadataSettingError as error:
        raise RolloutError(str(error)) from None
    artifacts = []
    for node in (NEWEST_SPAN_EXAMPLE_GEN, EXAMPLE_GEN):
        context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{node}")
        artifacts += [
            artifact
            for artifact in (store.get_artifacts_by_context(context.id) if context else [])
            if artifact.state == metadata_store_pb2.Artifact.LIVE
            and (node == NEWEST_SPAN_EXAMPLE_GEN or _holds_one_span(artifact, SPANS_PROPERTY))
        ]
    if not artifacts:
        raise RolloutError(
            f"ML Metadata ({setting.describe(output_dir)}) has no {NEWEST_SPAN_EXAMPLE_GEN} examples: "
            f"the newest span's eval trips come from a run with the newest-span check (not the Airflow DAG)"
        )
    newest = max(artifacts, key=lambda artifact: artifact.id)
    span = newest.properties["span"].int_value if "span" in newest.properties else None
    return {"span": span, "uri": newest.uri, "trips": read_trips(newest.uri, configs.EVAL_SPLIT)}


def compare(
    target: ServingTarget,
    request_log_dir: Optional[str] = None,
    logged_limit: int = DEFAULT_LOGGED_TRIPS,
    thresholds: configs.BlessingThresholds = configs.BlessingThresholds(),
) -> Dict[str, object]:
    """Scores the same trips with the stable and the canary label through the running server.

    Args:
        target: Where the rollout runs; `grpc_address` is required, `output_dir` gives the newest
            span's eval trips and records the comparison.
        request_log_dir: The server's request log, or None to compare on the eval trips only.
        logged_limit: How many of the newest logged trips to score.
        thresholds: The gate's newest-span limits, which the canary's drop is judged against.

    Returns:
        {"stable", "canary", "logged": {...} or None, "newest_span": {...} or None, "findings":
        [...], "undecided": [...]} (see `judge`).

    Raises:
        RolloutError: when no canary runs, or there is nothing to compare on.
        client.ServingError: when the server cannot be asked.
    """
    state = _running_canary(target, "compare")
    if not target.grpc_address:
        raise RolloutError("compare asks the running server: give --grpc HOST:PORT")
    if request_log_dir is None and target.output_dir is None:
        raise RolloutError("nothing to compare on: give --request-log DIR, --output-dir DIR, or both")
    result: Dict[str, object] = {"stable": state.stable, "canary": state.canary, "logged": None, "newest_span": None}
    if request_log_dir is not None:
        trips = logged_trips(request_log_dir, logged_limit)
        scores = {label: _score(target.grpc_address, target.model_name, label, trips) for label in (STABLE_LABEL, CANARY_LABEL)}
        result["logged"] = {
            "request_log": os.path.abspath(request_log_dir),
            STABLE_LABEL: distribution(scores[STABLE_LABEL]),
            CANARY_LABEL: distribution(scores[CANARY_LABEL]),
            "agreement": agreement(scores[STABLE_LABEL], scores[CANARY_LABEL]),
        }
    if target.output_dir is not None:
        eval_trips = newest_span_eval_trips(os.path.abspath(target.output_dir), target.setting)
        labels = [features.trip_is_big_tipper(trip) for trip in eval_trips["trips"]]
        span_result: Dict[str, object] = {"span": eval_trips["span"], "examples": eval_trips["uri"]}
        for label in (STABLE_LABEL, CANARY_LABEL):
            span_result[label] = quality(_score(target.grpc_address, target.model_name, label, eval_trips["trips"]), labels)
        result["newest_span"] = span_result
    result["findings"], result["undecided"] = judge(result["logged"], result["newest_span"], thresholds)
    if target.output_dir is not None:
        versions = {"stable": state.stable, "canary": state.canary}
        with recording(target.output_dir, target.setting) as recorder:
            _record_step(recorder[0], _pushed_models(recorder, versions), target, "compare", versions, {"result": json.dumps(result, sort_keys=True)})
    return result


def judge(
    logged: Optional[Mapping[str, Mapping[str, Optional[float]]]],
    newest_span: Optional[Mapping[str, Mapping[str, Optional[float]]]],
    thresholds: configs.BlessingThresholds = configs.BlessingThresholds(),
) -> Tuple[List[str], List[str]]:
    """Judges a comparison: (findings, undecided).

    Findings are the canary's problems: more refusals than stable, or a drop on the newest span
    beyond the gate's newest-span limits. Undecided lists why the comparison cannot say the
    canary is as good: stable refused every trip, no trip was answered by both, or stable's
    AUC or accuracy cannot be computed on the newest span (e.g. it holds one class only). A
    check that cannot decide never passes.

    Args:
        logged: `compare`'s "logged" part (distributions and agreement), or None.
        newest_span: `compare`'s "newest_span" part (`quality` per label), or None.
        thresholds: The gate's newest-span limits.
    """
    findings: List[str] = []
    undecided: List[str] = []
    if logged is not None:
        stable, canary = logged[STABLE_LABEL], logged[CANARY_LABEL]
        if canary["errors"] > stable["errors"]:
            findings.append(f"canary refused {canary['errors']} logged trips, stable {stable['errors']}")
        if stable["errors"] == stable["trips"]:
            undecided.append(f"stable refused all {stable['trips']} logged trips")
        elif not logged["agreement"]["paired_trips"]:
            undecided.append("no logged trip was answered by both versions")
    if newest_span is not None:
        stable, canary = newest_span[STABLE_LABEL], newest_span[CANARY_LABEL]
        if canary["errors"] > stable["errors"]:
            findings.append(f"canary refused {canary['errors']} eval trips, stable {stable['errors']}")
        if not stable["trips"]:
            undecided.append("the newest span has no eval trips")
        elif stable["errors"] == stable["trips"]:
            undecided.append(f"stable refused all {stable['trips']} eval trips of the newest span")
        for metric, limit in (("auc", thresholds.newest_span_max_auc_drop), ("binary_accuracy", thresholds.newest_span_max_binary_accuracy_drop)):
            if stable[metric] is None:
                if stable["errors"] < stable["trips"]:  # answered trips, all of one class
                    undecided.append(f"{metric} of stable cannot be computed on the newest span: its answered trips hold one class only")
            elif canary[metric] is None:
                findings.append(f"{metric} of the canary cannot be computed on the newest span (stable {stable[metric]:.4f})")
            elif stable[metric] - canary[metric] > limit:
                findings.append(f"{metric} on the newest span: canary {canary[metric]:.4f}, stable {stable[metric]:.4f}, drop above {limit}")
    return findings, undecided


def _number(value: Optional[float], pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def format_comparison(result: Mapping[str, object]) -> str:
    """The comparison as the table `compare` prints."""
    lines = [f"{'':<28}{'stable ' + str(result['stable']):>20}{'canary ' + str(result['canary']):>20}"]
    logged = result.get("logged")
    if logged:
        lines.append(f"logged traffic: the newest {logged[STABLE_LABEL]['trips']:,} trips of {logged['request_log']}")
        for key, name, pattern in (
            ("errors", "errors", "{:.0f}"),
            ("mean", "mean P(big tipper)", "{:.4f}"),
            ("p10", "10th percentile", "{:.4f}"),
            ("p50", "median", "{:.4f}"),
            ("p90", "90th percentile", "{:.4f}"),
            ("positive_share", "predicted big tippers", "{:.1%}"),
        ):
            lines.append(f"  {name:<26}{_number(logged[STABLE_LABEL][key], pattern):>20}{_number(logged[CANARY_LABEL][key], pattern):>20}")
        paired = logged["agreement"]
        lines.append(
            f"  same decision on {_number(paired['same_decision_share'], '{:.1%}')} of {paired['paired_trips']:,} trips; "
            f"|difference| mean {_number(paired['mean_abs_difference'])}, largest {_number(paired['max_abs_difference'])}"
        )
    span = result.get("newest_span")
    if span:
        lines.append(f"newest span {span['span']}: {span[STABLE_LABEL]['trips']:,} labelled eval trips")
        for key, name, pattern in (("errors", "errors", "{:.0f}"), ("auc", "auc", "{:.4f}"), ("binary_accuracy", "binary_accuracy", "{:.4f}")):
            lines.append(f"  {name:<26}{_number(span[STABLE_LABEL][key], pattern):>20}{_number(span[CANARY_LABEL][key], pattern):>20}")
    findings = result.get("findings") or []
    undecided = result.get("undecided") or []
    if findings or undecided:
        verdict = "; ".join(findings + (["cannot decide: " + "; ".join(undecided)] if undecided else []))
    elif span:
        verdict = "the canary is within the gate's newest-span limits and errs no more than stable"
    else:
        verdict = "the canary errs no more than stable (the newest span was not compared: give --output-dir)"
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (sysexits' EX_USAGE), as the pipeline's other commands."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output-dir", help="the pipeline's output dir: record each step in its ML Metadata (serving dir OUTPUT_DIR/serving_model)")
    common.add_argument("--serving-dir", help="the Pusher's serving_model directory (default: OUTPUT_DIR/serving_model)")
    common.add_argument(
        "--config-file",
        action="append",
        help="the model config the server reads (default: models.config next to the serving dir); repeat to write copies, the first holds the state",
    )
    common.add_argument("--base-path", help="base_path the server sees (default: the serving dir; /models/big_tipper in the container)")
    common.add_argument("--grpc", help="host:port of the running server's gRPC API: reload it now (compare asks it)")
    metadata.add_metadata_flag(common)
    parser = _Parser(prog="python -m pipeline rollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True, parser_class=_Parser)
    steps.add_parser("status", parents=[common], help="the stable and canary versions the config serves")
    canary = steps.add_parser("canary", parents=[common], help="serve VERSION under the canary label next to stable")
    canary.add_argument("version", type=int, help="the pushed version to try")
    canary.add_argument("--stable", type=int, help="the known-good version (default: what serves now)")
    compare_step = steps.add_parser("compare", parents=[common], help="score stable and canary on logged traffic and the newest span")
    compare_step.add_argument("--request-log", help="the server's (or logging proxy's) request log folder")
    compare_step.add_argument("--logged-trips", type=int, default=DEFAULT_LOGGED_TRIPS, help=f"how many of the newest logged trips (default {DEFAULT_LOGGED_TRIPS})")
    compare_step.add_argument("--json", action="store_true", help="print the comparison as JSON")
    steps.add_parser("promote", parents=[common], help="the canary becomes stable; the old stable stays on disk")
    steps.add_parser("abort", parents=[common], help="drop the canary label; the version stays on disk")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.serving_dir and not args.output_dir:
        parser.error("give --output-dir (records each step in its ML Metadata) or --serving-dir")
    if args.step == "compare" and args.logged_trips < 1:
        parser.error(f"--logged-trips must be at least 1, got {args.logged_trips}")
    try:
        setting = metadata.setting_from(args.metadata_url)
    except metadata.MetadataSettingError as error:
        parser.error(str(error))
    serving_dir = args.serving_dir or OutputLayout(os.path.abspath(args.output_dir)).serving_model_dir
    target = ServingTarget(
        serving_dir=serving_dir,
        config_files=args.config_file or [model_config_path(serving_dir)],
        base_path=args.base_path,
        grpc_address=args.grpc,
        output_dir=args.output_dir,
        setting=setting,
    )
    try:
        if args.step == "status":
            print(target.state().describe())
            return 0
        if args.step == "compare":
            result = compare(target, args.request_log, args.logged_trips)
            print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_comparison(result))
            return EXIT_CANARY_WORSE if result["findings"] else EXIT_UNDECIDED if result["undecided"] else 0
        if args.step == "canary":
            state = start_canary(target, args.version, args.stable)
        elif args.step == "promote":
            state = promote(target)
        else:
            state = abort(target)
    except writer_lock.OutputBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return writer_lock.EXIT_BUSY
    except RollbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except client.ServingError as error:
        unchanged = "" if args.step in ("status", "compare") else " (no config file was written)"
        print(f"error: the server at {args.grpc} refused or did not answer{unchanged}: {error}", file=sys.stderr)
        return EXIT_SERVER
    except ConfigWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SERVER
    reloaded = f"; reloaded {args.grpc}" if args.grpc else ""
    print(f"{args.step}: {state.describe()}: wrote {', '.join(target.config_files)}{reloaded}. Nothing was deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
