"""Accept a refused span after review, on the record: the next run trains on it.

    python -m pipeline.accept --data-root data --output-dir outputs --span 5 \\
        --reason "fares rose with the 2024 meter rate change; checked against the City's notice"

Reads the newest DataGate verdict of the output dir's ML Metadata, which must be a refusal of
span N (the newest span of that run), recomputes from the very reports the gate judged what it
found (the span's schema anomalies and drift, the window's schema anomalies), checks that the
span's files are still those the checks read, and records in ML Metadata a `taxi.SpanAcceptance`
artifact: the problems, the reason, who and when, and the SHA-256 of each of the span's files.
`pipeline.ops.lineage`, the run report and the next runs read it from there.

The next `python run_local.py` with the same data root and output dir trains on the span; a
problem the acceptance does not record, or any change of the span's files, is still refused.
For schema anomalies the command also writes the schema TFDV proposes to fix them, and prints
its diff against the curated schema, for the owner to commit as the next schema version.
Anomalies of the columns joined from external tables cannot be accepted: the table is fixed.

ML Metadata is the output dir's SQLite file, or the database `--metadata-url` names (the same
setting as the runs'). The command holds the output dir's writer lock while it records.

Exit code: 0 accepted; 2 nothing was accepted (the message says why); 75 another process is
writing to the output dir (nothing recorded; run again later); 1 any other failure.
"""
import argparse
import datetime
import difflib
import getpass
import json
import os
import sys
import warnings
from typing import List, Optional, Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


class AcceptError(ValueError):
    """The span cannot be accepted as asked; the message says why and what to do."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.accept", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True, help="the data root of the refused run (folder of span-<N>/)")
    parser.add_argument("--output-dir", required=True, help="the output dir of the refused run (holds metadata.db)")
    parser.add_argument("--span", type=int, required=True, help="the refused span to accept")
    parser.add_argument("--reason", required=True, help="what was reviewed and why the span is right (recorded)")
    parser.add_argument("--schema", help="the curated schema to diff a proposed change against (default: the pipeline's)")
    from pipeline.ops import metadata

    metadata.add_metadata_flag(parser)
    return parser.parse_args(argv)


def _newest_gate_execution(store, pipeline_name: str, node_id: str):
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    executions = store.get_executions_by_context(context.id) if context is not None else []
    if not executions:
        raise AcceptError(f"ML Metadata has no {node_id} verdict: run the pipeline on this output dir first")
    return max(executions, key=lambda execution: execution.id)


def _inputs(store, execution_id: int) -> dict:
    from ml_metadata.proto import metadata_store_pb2

    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == metadata_store_pb2.Event.INPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return {event.path.steps[0].key: artifacts[event.artifact_id] for event in events if event.path.steps}


def current_files(data_root: str, span: int) -> dict:
    """{path: SHA-256} of the span's CSV files under `data_root` now, found as ExampleGen finds
    them (`pipeline.validation.span_rows.window_files`), so the paths compare with what it recorded."""
    from pipeline import configs
    from pipeline.spans import file_sha256
    from pipeline.validation.span_rows import CsvFormatError, window_files

    try:
        files = window_files(os.path.abspath(data_root), configs.SPAN_FILES_GLOB, span, span)[span]
    except CsvFormatError:  # no file for the span
        return {}
    return {path: file_sha256(path) for path in files}


def _schema_text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


def propose_schema(curated_path: str, statistics, target_path: str) -> List[str]:
    """Writes the schema TFDV proposes for the span's statistics; returns its diff against the
    curated schema (both in canonical text form), empty when TFDV proposes no change."""
    import tensorflow_data_validation as tfdv

    curated = tfdv.load_schema_text(curated_path)
    proposed = tfdv.update_schema(curated, statistics)
    tfdv.write_schema_text(proposed, target_path)
    return list(
        difflib.unified_diff(
            _schema_text(curated).splitlines(),
            _schema_text(proposed).splitlines(),
            fromfile=curated_path,
            tofile=target_path,
            lineterm="",
        )
    )


def accept(data_root: str, output_dir: str, span: int, reason: str, schema_path: Optional[str] = None, setting=None):
    """Records the acceptance of span `span` (see the module docstring), under the output dir's
    writer lock.

    Args:
        setting: Where the output dir's ML Metadata lives (`pipeline.ops.metadata.MetadataSetting`;
            default: its SQLite file).

    Returns:
        (the recorded `pipeline.validation.acceptance.SpanAcceptance`, the proposed schema's diff lines).

    Raises:
        AcceptError: when there is nothing to accept, the span is not the one refused, its
            files changed since the refused run, or the metadata does not open.
        pipeline.ops.writer_lock.OutputBusyError: when another process writes to the output dir.
    """
    from pipeline.ops import metadata, writer_lock

    setting = setting or metadata.MetadataSetting()
    if not reason.strip():
        raise AcceptError("--reason is empty: say what was reviewed and why the span is right")
    output_dir = os.path.abspath(output_dir)
    try:
        with writer_lock.writing(output_dir, setting) as store:
            return _accept(store, data_root, output_dir, span, reason, schema_path)
    except (metadata.MetadataSettingError, writer_lock.MetadataLocationError) as error:
        raise AcceptError(f"{error}: run the pipeline with --output-dir {output_dir} first") from None


def _accept(store, data_root: str, output_dir: str, span: int, reason: str, schema_path: Optional[str]):
    """`accept`'s work on the open store."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.types import artifact_utils

    from pipeline import configs
    from pipeline.component_ids import DATA_GATE
    from pipeline.components import artifacts
    from pipeline.configs import CURATED_SCHEMA_PATH
    from pipeline.validation import acceptance

    gate = _newest_gate_execution(store, configs.PIPELINE_NAME, DATA_GATE)
    inputs = _inputs(store, gate.id)
    missing = sorted({"anomalies", "drift_report", "external_report"} - set(inputs))
    if missing:
        raise AcceptError(f"the newest {DATA_GATE} execution ({gate.id}) records no input {missing}")
    report = artifacts.read_drift_report(inputs["drift_report"].uri)
    if report["checked_span"] != span:
        raise AcceptError(
            f"the newest run checked span {report['checked_span']}, not span {span}: only the newest span "
            "of the newest run can be accepted"
        )
    split_names = artifact_utils.decode_split_names(inputs["anomalies"].properties["split_names"].string_value)
    problems = acceptance.collect_problems(artifacts.read_anomalies(inputs["anomalies"].uri, split_names), report)
    joined = artifacts.refusals(artifacts.read_external_report(inputs["external_report"].uri))
    if joined:
        raise AcceptError(
            "the run was refused for the columns joined from external tables, which no acceptance covers; "
            "fix or extend the table:\n  " + "\n  ".join(joined)
        )
    if not problems:
        raise AcceptError(f"span {span} was not refused: the newest run found no anomaly and no drift in it")
    if gate.last_known_state in (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED):
        raise AcceptError(
            f"span {span} was not refused by the newest run: what it found was already accepted, or only "
            f"warned about (drift policy {report.get('on_drift')})"
        )
    files = current_files(data_root, span)
    if files != report["span_files"]:
        raise AcceptError(
            f"span {span}'s files are not those the refused run checked (that run read {sorted(report['span_files'])}, "
            f"now there are {sorted(files)} or their contents changed): run the pipeline again to check them"
        )
    folder = os.path.join(os.path.abspath(output_dir), "acceptances", f"span-{span}-gate-{gate.id}")
    os.makedirs(folder, exist_ok=True)
    diff: List[str] = []
    proposed = None
    if any(problem["check"] == acceptance.SCHEMA_CHECK for problem in problems):
        proposed = os.path.join(folder, acceptance.PROPOSED_SCHEMA_FILE)
        diff = propose_schema(schema_path or CURATED_SCHEMA_PATH, artifacts.read_drift_statistics(inputs["drift_report"].uri), proposed)
    record = acceptance.SpanAcceptance(
        span=span,
        files=files,
        problems=tuple(problems),
        reason=reason.strip(),
        accepted_by=getpass.getuser(),
        accepted_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        proposed_schema=proposed,
    )
    with open(os.path.join(folder, acceptance.ACCEPTANCE_FILE), "w") as record_file:
        json.dump(record.to_dict(), record_file, indent=2)
    artifact_id = _record(store, record, folder, inputs)
    return acceptance.SpanAcceptance.from_dict({**record.to_dict(), "artifact_id": artifact_id}), diff


def _record(store, record, folder: str, inputs: dict) -> int:
    """Writes the acceptance artifact and its AcceptSpan execution (inputs: the reports judged)."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline import configs
    from pipeline.validation import acceptance

    artifact_type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=acceptance.ACCEPTANCE_TYPE))
    execution_type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name=acceptance.ACCEPT_EXECUTION_TYPE))
    artifact = metadata_store_pb2.Artifact(type_id=artifact_type_id, uri=folder, state=metadata_store_pb2.Artifact.LIVE)
    artifact.custom_properties[acceptance.SPAN_PROPERTY].int_value = record.span
    artifact.custom_properties[acceptance.REASON_PROPERTY].string_value = record.reason
    artifact.custom_properties[acceptance.ACCEPTED_BY_PROPERTY].string_value = record.accepted_by
    artifact.custom_properties[acceptance.ACCEPTED_AT_PROPERTY].string_value = record.accepted_at
    artifact.custom_properties[acceptance.RECORD_PROPERTY].string_value = json.dumps(record.to_dict(), sort_keys=True)
    execution = metadata_store_pb2.Execution(type_id=execution_type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    events = [
        (inputs[key], metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT, artifact_id=inputs[key].id))
        for key in sorted(inputs)
    ]
    events.append((artifact, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)))
    pipeline_context = store.get_context_by_type_and_name("pipeline", configs.PIPELINE_NAME)
    _, artifact_ids, _ = store.put_execution(
        execution, artifact_and_events=events, contexts=[pipeline_context] if pipeline_context is not None else []
    )
    return artifact_ids[-1]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code."""
    args = parse_args(argv)
    from serving.console import import_tensorflow

    import_tensorflow()
    # Google client libraries' notices about their own versions, printed on import.
    warnings.filterwarnings("ignore", category=FutureWarning)
    from pipeline.ops import metadata, writer_lock

    try:
        setting = metadata.setting_from(args.metadata_url)
        record, diff = accept(args.data_root, args.output_dir, args.span, args.reason, args.schema, setting)
    except (AcceptError, metadata.MetadataSettingError) as error:
        print(f"not accepted: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except writer_lock.OutputBusyError as error:
        print(f"not accepted: {error}", file=sys.stderr)
        return writer_lock.EXIT_BUSY
    print(f"span {record.span} accepted on record {record.artifact_id} by {record.accepted_by} at {record.accepted_at}")
    print(f"reason: {record.reason}")
    print("accepted, as the refused run found them:")
    for problem in record.problems:
        print(f"  - {problem['text']}")
    print("bound to the span's files (any change voids the acceptance):")
    for path, sha256 in sorted(record.files.items()):
        print(f"  {path}  sha256 {sha256[:12]}")
    if record.proposed_schema:
        print(f"\nproposed schema change (TFDV), written to {record.proposed_schema}:")
        print("\n".join(diff) if diff else "  (TFDV proposes no change)")
        print("Commit it as the next curated schema version (pipeline/schema/schema.pbtxt) once reviewed.")
    print(f"\nNext: python run_local.py --data-root {args.data_root} --output-dir {args.output_dir}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
