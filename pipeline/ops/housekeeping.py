"""Housekeeping: prune old pipeline artifacts and serving versions by a retention policy.

What is kept, whatever the policy:
- the newest `--keep-versions` folders under serving_model/ (the highest is what TF Serving
  loads; the others are rollback targets), the version that serves (`serving.versions.serving_version`:
  the one a rollback pinned in models.config stays), any `--protect-version`, and the lineage of each
  (see `pipeline.ops.lineage`) together with every output of the run that pushed it;
- the lineage of the last `--keep-blessed` blessed models (on Vertex AI the newest is the
  Evaluator's next baseline; elsewhere the baseline is the serving version, kept above) and every
  output of the run that blessed it;
- every output of the newest pipeline run, and every input of an execution still running.

Everything else under pipeline_root/ that ML Metadata lists as an artifact of the pipeline is
removed, and ML Metadata marks it DELETED (TFX's cache then never reuses it). Older version
folders under serving_model/ are removed. So are the files of pipeline_root/SpanStatistics/
(each span's statistics, `pipeline.validation.span_statistics`, and each span's external-table
check) that no kept drift report, StatisticsGen output or external-table report records:
another code version's, those of spans no kept run read, and the temporary file of a write
that stopped. Each span's kept examples in pipeline_root/SpanExamples/ (`pipeline.components.example_gen`)
go when no kept Examples artifact records them: an artifact's files are hard links or copies of
them, so removing either leaves the other whole. So does Transform's analyzer cache of those
spans in pipeline_root/TransformCache/. A later run that needs them computes them again. The
kept SHA-256 of span files in pipeline_root/SourceHashes/ (`pipeline.spans.kept_file_sha256`) go
when their file has changed or is gone.
`--dry-run` lists exactly what a real run removes.

Examples:
  python -m pipeline housekeeping --output-dir outputs --dry-run
      List what would go with the defaults (keep 3 versions, the last 2 blessed models).
  python -m pipeline housekeeping --output-dir outputs --keep-versions 1 --keep-blessed 1
      Keep only the newest version and the newest blessed model's lineage.
"""
import os
import warnings

if __name__ == "__main__":
    # Before TensorFlow is imported: keep its start-up notices off the terminal.
    warnings.filterwarnings("ignore", category=FutureWarning)
    from serving.console import import_tensorflow

    import_tensorflow()

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Set

from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline.components.artifacts import (
    DRIFT_REPORT_FILE,
    SPAN_EXAMPLES_PROPERTY,
    SPAN_STATISTICS_PROPERTY,
    DriftReport,
    read_drift_report,
    recorded_span_statistics_keys,
)
from pipeline.ops import lineage, metadata, writer_lock
from pipeline.ops.metadata import OutputLayout
from pipeline.spans import stale_kept_hashes
from serving.versions import ServingConfigError, serving_version

logger = logging.getLogger(__name__)

DEFAULT_KEEP_VERSIONS = 3
DEFAULT_KEEP_BLESSED = 2
# Custom properties written on what housekeeping removed.
DELETED_BY_PROPERTY = "deleted_by"
DELETED_AT_PROPERTY = "deleted_at"
SERVING_FOLDER_REMOVED_AT_PROPERTY = "serving_folder_removed_at"
DELETED_BY = "pipeline.ops.housekeeping"

ARTIFACT = "artifact"
SERVING_VERSION = "serving_version"
SPAN_STATISTICS = "span_statistics"
SPAN_EXAMPLES = "span_examples"
SOURCE_HASH = "source_hash"

_PRUNABLE_STATES = (
    metadata_store_pb2.Artifact.LIVE,
    metadata_store_pb2.Artifact.MARKED_FOR_DELETION,
    # Marked by an earlier run whose file removal was interrupted.
    metadata_store_pb2.Artifact.DELETED,
)
_UNFINISHED_EXECUTIONS = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


class HousekeepingError(Exception):
    """The retention policy or the output dir is not usable."""


@dataclasses.dataclass(frozen=True)
class Removal:
    """One thing housekeeping removes."""

    kind: str  # ARTIFACT, SERVING_VERSION, SPAN_STATISTICS, SPAN_EXAMPLES or SOURCE_HASH
    path: str
    # The artifact (ARTIFACT) or the PushedModel of the version (SERVING_VERSION), if known;
    # None for the other kinds, files ML Metadata does not list.
    artifact_id: Optional[int]
    description: str


@dataclasses.dataclass
class Plan:
    """What a housekeeping run keeps and removes."""

    kept_versions: List[str]
    protected_artifact_ids: Set[int]
    # Why artifacts are protected, in words (one line per root).
    protected_because: List[str]
    removals: List[Removal]


def _folder_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass  # a file removed while we count is no longer taking space
    return total


def _run_outputs(graph: lineage.MetadataGraph, execution_id: int) -> Set[int]:
    """Returns the outputs of every execution (ran or cached) of the pipeline run of an execution."""
    store = graph.store
    run_type = store.get_context_type("pipeline_run")
    artifact_ids: Set[int] = set()
    for context in store.get_contexts_by_execution(execution_id):
        if run_type is None or context.type_id != run_type.id:
            continue
        for execution in store.get_executions_by_context(context.id):
            for artifacts in graph.outputs(execution.id).values():
                artifact_ids.update(a.id for a in artifacts)
    return artifact_ids


def _protect(graph: lineage.MetadataGraph, root: metadata_store_pb2.Artifact) -> Set[int]:
    """Returns the lineage of `root` and every output of the run that made it."""
    artifact_ids, _ = graph.upstream([root.id])
    producer = graph.producer(root.id)
    if producer is not None:
        run_outputs = _run_outputs(graph, producer)
        more, _ = graph.upstream(run_outputs)
        artifact_ids |= more
    return artifact_ids


def plan(
    output_dir: str,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    keep_blessed: int = DEFAULT_KEEP_BLESSED,
    protect_versions: Sequence[str] = (),
    pipeline_name: str = configs.PIPELINE_NAME,
    store=None,
) -> Plan:
    """Works out what housekeeping keeps and removes; changes nothing.

    Args:
        output_dir: The run's output dir (metadata.db, pipeline_root/, serving_model/).
        keep_versions: How many of the newest serving versions stay (at least 1).
        keep_blessed: How many of the newest blessed models keep their lineage (at least 1:
            with `PipelineOptions.baseline="latest_blessed"` the newest is the next baseline).
        protect_versions: Further serving versions to keep, e.g. one a rollback pins.
        pipeline_name: The pipeline's name in ML Metadata.
        store: An open ML Metadata store on output_dir's metadata (default: opened read-only).

    Raises:
        HousekeepingError: when a count is below 1 or a protected version has no folder.
        lineage.LineageError: when the metadata file is missing.
    """
    if keep_versions < 1:
        raise HousekeepingError(f"--keep-versions must be at least 1 (the version TF Serving loads), got {keep_versions}")
    if keep_blessed < 1:
        raise HousekeepingError(f"--keep-blessed must be at least 1 (with the latest-blessed baseline, the next one), got {keep_blessed}")
    output_dir = os.path.abspath(output_dir)
    serving_model_dir = OutputLayout(output_dir).serving_model_dir
    pipeline_root = OutputLayout(output_dir).pipeline_root
    versions = lineage.serving_versions(serving_model_dir)
    missing = [v for v in protect_versions if v not in versions]
    if missing:
        raise HousekeepingError(f"--protect-version {', '.join(missing)}: no such folder under {serving_model_dir}")
    if store is None:
        store = lineage.open_store(output_dir)
    graph = lineage.MetadataGraph(store, pipeline_name)
    try:
        serving = serving_version(serving_model_dir, configs.SERVING_MODEL_NAME)
    except ServingConfigError as error:
        raise HousekeepingError(f"cannot tell which version serves, so nothing is removed: {error}") from None
    serving_kept = {str(serving)} if serving is not None else set()
    kept_versions = sorted(set(versions[-keep_versions:]) | set(protect_versions) | serving_kept, key=int)

    protected: Set[int] = set()
    because: List[str] = []
    removals: List[Removal] = []
    for version in versions:
        try:
            pushed_model = lineage.find_pushed_model(graph, version, serving_model_dir)
        except lineage.UnknownVersionError:
            pushed_model = None
        if version in kept_versions:
            if pushed_model is None:
                logger.warning("serving version %s is unknown to ML Metadata: kept, but it protects no artifact", version)
                because.append(f"serving version {version}: kept, unknown to ML Metadata")
                continue
            protected |= _protect(graph, pushed_model)
            because.append(f"serving version {version}: lineage of PushedModel #{pushed_model.id} and its run")
        else:
            removals.append(
                Removal(
                    kind=SERVING_VERSION,
                    path=os.path.join(serving_model_dir, version),
                    artifact_id=pushed_model.id if pushed_model is not None else None,
                    description=f"serving version {version}",
                )
            )

    pipeline_context = store.get_context_by_type_and_name(lineage.PIPELINE_CONTEXT_TYPE, pipeline_name)
    pipeline_artifacts = store.get_artifacts_by_context(pipeline_context.id) if pipeline_context is not None else []
    blessings = sorted(
        (
            a for a in pipeline_artifacts
            if graph.type_name(a) == "ModelBlessing" and lineage.custom_property(a, lineage.BLESSED_PROPERTY)
            and a.state == metadata_store_pb2.Artifact.LIVE
        ),
        key=lambda a: a.id,
    )
    for blessing in blessings[-keep_blessed:]:
        protected |= _protect(graph, blessing)
        because.append(f"blessed model: lineage of ModelBlessing #{blessing.id} and its run")

    if pipeline_context is not None:
        executions = store.get_executions_by_context(pipeline_context.id)
        if executions:
            newest = max(executions, key=lambda e: e.id)
            protected |= graph.upstream(_run_outputs(graph, newest.id))[0]
            because.append(f"the newest run: outputs of the run of execution #{newest.id}")
        for execution in executions:
            if execution.last_known_state in _UNFINISHED_EXECUTIONS:
                for artifacts in graph.inputs(execution.id).values():
                    protected.update(a.id for a in artifacts)
                because.append(f"execution #{execution.id} ({graph.node_of(execution.id)}) is unfinished: its inputs")

    for artifact in sorted(pipeline_artifacts, key=lambda a: a.id):
        if artifact.id in protected or artifact.state not in _PRUNABLE_STATES or not artifact.uri:
            continue
        path = lineage.local_artifact_path(artifact.uri, pipeline_root)
        # Only folders of this output dir's pipeline root go; an external URI is never touched.
        if not os.path.realpath(path).startswith(os.path.join(os.path.realpath(pipeline_root), "")):
            continue
        if artifact.state == metadata_store_pb2.Artifact.DELETED and not os.path.exists(path):
            continue
        producer = graph.producer(artifact.id)
        node = graph.node_of(producer) if producer is not None else None
        removals.append(
            Removal(
                kind=ARTIFACT,
                path=path,
                artifact_id=artifact.id,
                description=f"{graph.type_name(artifact)} #{artifact.id} of {node or 'unknown component'} execution #{producer}",
            )
        )
    removed_ids = {removal.artifact_id for removal in removals if removal.kind == ARTIFACT}
    kept = [a for a in pipeline_artifacts if a.id not in removed_ids and a.state == metadata_store_pb2.Artifact.LIVE]
    removals.extend(_unrecorded_span_statistics(graph, kept, pipeline_root))
    removals.extend(_unrecorded_span_examples(kept, pipeline_root))
    removals.extend(
        Removal(kind=SOURCE_HASH, path=path, artifact_id=None, description="the kept SHA-256 of a span file since changed or removed")
        for path in stale_kept_hashes(os.path.join(pipeline_root, configs.SOURCE_HASHES_FOLDER))
    )
    return Plan(kept_versions=kept_versions, protected_artifact_ids=protected, protected_because=because, removals=removals)


def _unrecorded_span_statistics(
    graph: lineage.MetadataGraph, kept: Sequence[metadata_store_pb2.Artifact], pipeline_root: str
) -> List[Removal]:
    """The files of pipeline_root/SpanStatistics/ that no kept artifact records.

    StatisticsGen's output records the keys it merged and the external-table report those it
    joined or read (SPAN_STATISTICS_PROPERTY), a drift report those it read; anything else
    there (another code version's statistics, spans no kept run read, a temporary file of a
    write that stopped) is listed.

    Raises:
        HousekeepingError: when a kept drift report cannot be read, so what it uses is unknown.
    """
    folder = os.path.join(pipeline_root, configs.SPAN_STATISTICS_FOLDER)
    if not os.path.isdir(folder):
        return []
    recorded = _recorded_keys(kept, SPAN_STATISTICS_PROPERTY)
    for artifact in kept:
        if graph.type_name(artifact) == DriftReport.TYPE_NAME:
            path = lineage.local_artifact_path(artifact.uri, pipeline_root)
            if not os.path.isfile(os.path.join(path, DRIFT_REPORT_FILE)):
                continue  # no report file (not on this machine, or removed by hand): it records nothing here
            try:
                report = read_drift_report(path)
            except (OSError, ValueError) as error:
                raise HousekeepingError(f"cannot read the drift report {path} to tell which span statistics it uses: {error}") from None
            recorded.update(recorded_span_statistics_keys(report.get("span_statistics", {})))
    removals = []
    for name in sorted(os.listdir(folder)):
        key = name[: -len(configs.SPAN_STATISTICS_SUFFIX)] if name.endswith(configs.SPAN_STATISTICS_SUFFIX) else None
        if key in recorded:
            continue
        what = f"span statistics {key[:12]}, recorded by no kept artifact" if key else "a file a stopped write left"
        removals.append(Removal(kind=SPAN_STATISTICS, path=os.path.join(folder, name), artifact_id=None, description=what))
    return removals


def _recorded_keys(kept: Sequence[metadata_store_pb2.Artifact], property_name: str) -> Set[str]:
    """The keys of kept span results that kept artifacts record in property_name
    (SPAN_STATISTICS_PROPERTY or SPAN_EXAMPLES_PROPERTY: span -> part -> {key, reused})."""
    recorded: Set[str] = set()
    for artifact in kept:
        property_value = lineage.custom_property(artifact, property_name)
        if property_value:
            recorded.update(recorded_span_statistics_keys(json.loads(property_value)))
    return recorded


def _unrecorded_span_examples(kept: Sequence[metadata_store_pb2.Artifact], pipeline_root: str) -> List[Removal]:
    """The entries of pipeline_root/SpanExamples/ that no kept Examples artifact records
    (SPAN_EXAMPLES_PROPERTY): another code version's, spans no kept run read, and anything else
    there; and the analyzer cache of pipeline_root/TransformCache/ kept for spans whose entry is
    not kept (a dataset's folder name holds its entry's key)."""
    recorded = _recorded_keys(kept, SPAN_EXAMPLES_PROPERTY)
    removals = []
    folder = os.path.join(pipeline_root, configs.SPAN_EXAMPLES_FOLDER)
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name in recorded:
            continue
        removals.append(
            Removal(
                kind=SPAN_EXAMPLES,
                path=os.path.join(folder, name),
                artifact_id=None,
                description=f"span examples {name[:12]}, recorded by no kept Examples artifact",
            )
        )
    cache = os.path.join(pipeline_root, configs.TRANSFORM_CACHE_FOLDER)
    for version in sorted(os.listdir(cache)) if os.path.isdir(cache) else []:
        datasets = sorted(os.listdir(os.path.join(cache, version))) if os.path.isdir(os.path.join(cache, version)) else []
        for dataset in datasets:
            if any(key in dataset for key in recorded):
                continue
            removals.append(
                Removal(
                    kind=SPAN_EXAMPLES,
                    path=os.path.join(cache, version, dataset),
                    artifact_id=None,
                    description="Transform's analyzer cache of span examples no kept Examples artifact records",
                )
            )
    return removals


def apply(output_dir: str, removals: Sequence[Removal], store) -> List[Removal]:
    """Removes what a plan lists and records it in ML Metadata; returns what was removed.

    An artifact is first marked DELETED, so that a failure while removing files never leaves
    ML Metadata pointing TFX's cache at a half-removed folder.

    Raises:
        OSError: when a folder cannot be removed (the message names it).
    """
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    removed: List[Removal] = []
    for removal in removals:
        if removal.artifact_id is not None:
            artifact = store.get_artifacts_by_id([removal.artifact_id])[0]
            if removal.kind == ARTIFACT:
                artifact.state = metadata_store_pb2.Artifact.DELETED
                artifact.custom_properties[DELETED_BY_PROPERTY].string_value = DELETED_BY
                artifact.custom_properties[DELETED_AT_PROPERTY].string_value = now
            else:
                artifact.custom_properties[SERVING_FOLDER_REMOVED_AT_PROPERTY].string_value = now
            store.put_artifacts([artifact])
        if os.path.lexists(removal.path):
            try:
                shutil.rmtree(removal.path) if os.path.isdir(removal.path) and not os.path.islink(removal.path) else os.remove(removal.path)
            except OSError as error:
                raise OSError(f"cannot remove {removal.path} ({removal.description}): {error}") from error
        logger.info("removed %s: %s", removal.description, removal.path)
        removed.append(removal)
    return removed


def housekeep(
    output_dir: str,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    keep_blessed: int = DEFAULT_KEEP_BLESSED,
    protect_versions: Sequence[str] = (),
    dry_run: bool = False,
    pipeline_name: str = configs.PIPELINE_NAME,
    setting: metadata.MetadataSetting = metadata.MetadataSetting(),
) -> List[Removal]:
    """Plans and, unless `dry_run`, applies the retention policy (see the module docstring),
    on the output dir's ML Metadata where `setting` says. A real run holds the output dir's
    writer lock, so no pipeline run writes the lineage it judges while it removes.

    Returns:
        What was removed, or with `dry_run` what would be: the same list for the same state.

    Raises:
        writer_lock.OutputBusyError: when another process writes to the output dir.
        writer_lock.MetadataLocationError: when the output dir keeps its metadata elsewhere.
    """
    output_dir = os.path.abspath(output_dir)
    if dry_run:
        writer_lock.check_location(output_dir, setting.location, record=False)
        store = lineage.open_store(output_dir, setting)
        return plan(output_dir, keep_versions, keep_blessed, protect_versions, pipeline_name, store=store).removals
    try:
        with writer_lock.writing(output_dir, setting) as store:
            result = plan(output_dir, keep_versions, keep_blessed, protect_versions, pipeline_name, store=store)
            return apply(output_dir, result.removals, store)
    except metadata.MetadataSettingError as error:
        raise lineage.LineageError(str(error)) from None


def format_removals(removals: Sequence[Removal], dry_run: bool) -> str:
    """Renders the list of removals for a terminal, with sizes (taken before removal)."""
    verb = "would remove" if dry_run else "removed"
    if not removals:
        return f"{verb}: nothing (everything is protected by the retention policy)"
    lines = [f"{verb} {len(removals)}:"]
    for removal in removals:
        lines.append(f"  {removal.kind:<16}{removal.description:<60} {removal.path}")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(prog="python -m pipeline housekeeping", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="the run's output dir (metadata.db, pipeline_root/, serving_model/)")
    parser.add_argument("--keep-versions", type=int, default=DEFAULT_KEEP_VERSIONS, help=f"newest serving versions to keep (default: {DEFAULT_KEEP_VERSIONS})")
    parser.add_argument("--keep-blessed", type=int, default=DEFAULT_KEEP_BLESSED, help=f"newest blessed models whose lineage is kept (default: {DEFAULT_KEEP_BLESSED})")
    parser.add_argument("--protect-version", action="append", default=[], help="a serving version to keep as well (repeatable)")
    parser.add_argument("--pipeline-name", default=configs.PIPELINE_NAME, help=f"pipeline name in ML Metadata (default: {configs.PIPELINE_NAME})")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    metadata.add_metadata_flag(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs housekeeping from the command line; returns the exit code."""
    args = parse_args(argv)
    try:
        setting = metadata.setting_from(args.metadata_url)
        sizes: Dict[str, int] = {}
        removals = housekeep(
            args.output_dir, args.keep_versions, args.keep_blessed, args.protect_version, True, args.pipeline_name, setting
        )
        sizes = {removal.path: _folder_bytes(removal.path) for removal in removals}
        if not args.dry_run:
            removals = housekeep(
                args.output_dir, args.keep_versions, args.keep_blessed, args.protect_version, False, args.pipeline_name, setting
            )
    except writer_lock.OutputBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return writer_lock.EXIT_BUSY
    except (HousekeepingError, lineage.LineageError, metadata.MetadataSettingError, writer_lock.MetadataLocationError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_removals(removals, args.dry_run))
    if removals:
        total = sum(sizes.get(removal.path, 0) for removal in removals)
        print(f"{'frees' if not args.dry_run else 'would free'} {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
