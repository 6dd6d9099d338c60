"""What the data checks found, and the spans an owner accepted after review.

The DataGate and `python -m pipeline.accept` judge the same reports with `collect_problems`,
so an acceptance covers exactly what the refused run found. An acceptance is bound to the
span's file fingerprints: once a file changes, it no longer applies.

A problem is {"check": "schema" or "drift", "scope": "window" or the span number, "feature",
"kind", "text"}; (check, feature, kind) is what an acceptance matches, and for drift also the
reference spans, up to the accepted score. `kind` of a schema anomaly is TFDV's reason types,
so an accepted "low completeness" does not cover a new "unexpected value". A drift or span-alone
schema problem is covered only by an acceptance of that span; a window anomaly (ExampleValidator
on the whole window) by any valid acceptance in the window that records it.
"""
import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

# ML Metadata types of the record `pipeline.ops.accept` writes.
ACCEPTANCE_TYPE = "taxi.SpanAcceptance"
ACCEPT_EXECUTION_TYPE = "taxi.AcceptSpan"
ACCEPTANCE_FILE = "acceptance.json"
PROPOSED_SCHEMA_FILE = "proposed_schema.pbtxt"
# Custom properties of the acceptance artifact.
SPAN_PROPERTY = "span"
REASON_PROPERTY = "reason"
ACCEPTED_BY_PROPERTY = "accepted_by"
ACCEPTED_AT_PROPERTY = "accepted_at"
RECORD_PROPERTY = "record"

SCHEMA_CHECK = "schema"
DRIFT_CHECK = "drift"
WINDOW_SCOPE = "window"

Problem = Dict[str, object]


@dataclasses.dataclass(frozen=True)
class SpanAcceptance:
    """An owner's acceptance of one span: what its checks found, bound to its files."""

    span: int
    # Path -> SHA-256 of each of the span's files when it was accepted.
    files: Dict[str, str]
    problems: Tuple[Problem, ...]
    reason: str
    accepted_by: str
    accepted_at: str
    # The ML Metadata artifact id of the record (0 before it is recorded).
    artifact_id: int = 0
    proposed_schema: Optional[str] = None

    def to_dict(self) -> dict:
        """The JSON-ready record."""
        return {**dataclasses.asdict(self), "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, record: dict) -> "SpanAcceptance":
        """The acceptance `to_dict` wrote."""
        return cls(**{**record, "problems": tuple(record["problems"])})


def acceptances_json(acceptances: Sequence[SpanAcceptance]) -> str:
    """Serializes acceptances for the DataGate's parameter."""
    return json.dumps([acceptance.to_dict() for acceptance in acceptances], sort_keys=True)


def acceptances_from_json(text: str) -> List[SpanAcceptance]:
    """The acceptances `acceptances_json` wrote."""
    return [SpanAcceptance.from_dict(record) for record in json.loads(text or "[]")]


def problem_key(problem: Problem) -> Tuple[str, str, str]:
    """What an acceptance matches a problem by: (check, feature, kind)."""
    return (str(problem["check"]), str(problem["feature"]), str(problem["kind"]))


def collect_problems(window_anomalies: Sequence[Problem], drift_report: dict) -> List[Problem]:
    """Every refusable finding of one run: the window's schema anomalies, the newest span's own
    schema anomalies and its drift.

    Args:
        window_anomalies: ExampleValidator's anomalies as problems (`pipeline.components.artifacts.read_anomalies`).
        drift_report: The SpanDriftCheck report (`pipeline.components.artifacts.read_drift_report`).
    """
    span = drift_report["checked_span"]
    problems = list(window_anomalies)
    for anomaly in drift_report["anomalies"]:
        problems.append({"check": SCHEMA_CHECK, "scope": span, **anomaly, "text": anomaly["description"]})
    for score in drift_report["scores"]:
        if score["drifted"]:
            problems.append(
                {
                    "check": DRIFT_CHECK,
                    "scope": span,
                    "feature": score["feature"],
                    "kind": score["measure"],
                    "text": f"{score['feature']} {score['measure']} {score['score']:.3f} > {score['threshold']}",
                    # An acceptance of drift covers this score or less, against these very spans.
                    "score": score["score"],
                    "reference_spans": list(drift_report["reference_spans"]),
                }
            )
    return problems


def valid_acceptances(acceptances: Sequence[SpanAcceptance], span_files: Dict[int, Dict[str, str]]) -> Tuple[List[SpanAcceptance], List[str]]:
    """Splits acceptances into those that still apply and notes on those that do not.

    Args:
        acceptances: Recorded acceptances.
        span_files: The run's spans -> {path: SHA-256} of their files.

    Returns:
        (acceptances whose span is in the run with the very same files, one line per
        acceptance of a run's span whose files changed).
    """
    valid, notes = [], []
    for acceptance in acceptances:
        if acceptance.span not in span_files:
            continue
        if span_files[acceptance.span] == acceptance.files:
            valid.append(acceptance)
        else:
            notes.append(
                f"the acceptance of span {acceptance.span} (record {acceptance.artifact_id}, {acceptance.accepted_at}) "
                "no longer applies: the span's files changed since it was accepted"
            )
    return valid, notes


def covering(problem: Problem, acceptances: Sequence[SpanAcceptance]) -> Optional[SpanAcceptance]:
    """The acceptance that covers `problem`, or None."""
    key = problem_key(problem)
    for acceptance in acceptances:
        if problem["scope"] not in (WINDOW_SCOPE, acceptance.span):
            continue
        if any(problem_key(accepted) == key and _within(problem, accepted) for accepted in acceptance.problems):
            return acceptance
    return None


def split_covered(
    problems: Sequence[Problem], acceptances: Sequence[SpanAcceptance]
) -> Tuple[List[Tuple[Problem, SpanAcceptance]], List[Problem]]:
    """Splits findings into (those an acceptance covers, with it) and those none covers."""
    covered, refused = [], []
    for problem in problems:
        record = covering(problem, acceptances)
        if record is not None:
            covered.append((problem, record))
        else:
            refused.append(problem)
    return covered, refused


def _within(problem: Problem, accepted: Problem) -> bool:
    """A drift finding is covered up to the accepted score, against the same reference spans."""
    if problem["check"] != DRIFT_CHECK:
        return True
    return (
        problem.get("reference_spans") == accepted.get("reference_spans")
        and float(problem.get("score", 0.0)) <= float(accepted.get("score", 0.0)) + 1e-9
    )


def accept_command(span: int, data_root: str = "DATA_ROOT", output_dir: str = "OUTPUT_DIR") -> str:
    """The command that accepts `span` after review."""
    return (
        f"python -m pipeline.accept --data-root {data_root} --output-dir {output_dir} --span {span} "
        "--reason 'WHAT YOU REVIEWED AND WHY THE SPAN IS RIGHT'"
    )


# ---------------------------------------------------------------------------------------------
# The record in ML Metadata


def recorded(store) -> List[SpanAcceptance]:
    """Every acceptance recorded in an ML Metadata store, oldest first."""
    from ml_metadata import errors

    try:
        artifacts = store.get_artifacts_by_type(ACCEPTANCE_TYPE)
    except errors.NotFoundError:
        return []
    acceptances = []
    for artifact in sorted(artifacts, key=lambda a: a.id):
        record = json.loads(artifact.custom_properties[RECORD_PROPERTY].string_value)
        acceptances.append(SpanAcceptance.from_dict({**record, "artifact_id": artifact.id}))
    return acceptances


def newest_per_span(acceptances: Sequence[SpanAcceptance], spans: Sequence[int]) -> Tuple[SpanAcceptance, ...]:
    """The newest acceptance of each of `spans` that has one, by span."""
    newest: Dict[int, SpanAcceptance] = {}
    for acceptance in acceptances:
        if acceptance.span in spans:
            newest[acceptance.span] = acceptance
    return tuple(newest[span] for span in sorted(newest))


def applying(store, span_files: Dict[int, Dict[str, str]]) -> List[SpanAcceptance]:
    """The newest recorded acceptance of each of the run's spans, where its files are unchanged.

    Args:
        store: The ML Metadata store.
        span_files: The run's spans -> {path: SHA-256} (`pipeline.components.artifacts.span_fingerprints`).
    """
    valid, _ = valid_acceptances(newest_per_span(recorded(store), list(span_files)), span_files)
    return valid


def summary_of(record: SpanAcceptance) -> Dict[str, object]:
    """What a report shows of an acceptance: span, record, who, when, why."""
    return {
        "span": record.span,
        "record": record.artifact_id,
        "accepted_by": record.accepted_by,
        "accepted_at": record.accepted_at,
        "reason": record.reason,
    }


def for_spans(connection_config, spans: Sequence[int]) -> Tuple[SpanAcceptance, ...]:
    """The newest recorded acceptance of each of `spans`, from the ML Metadata a run writes to
    (none when that store does not exist yet)."""
    from ml_metadata import metadata_store

    if connection_config.HasField("sqlite"):
        if not os.path.isfile(connection_config.sqlite.filename_uri):
            return ()
    return newest_per_span(recorded(metadata_store.MetadataStore(connection_config)), spans)
