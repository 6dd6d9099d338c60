"""The DataGate's verdict on a run's reports, with and without an owner's acceptance."""
import pytest

from pipeline import configs
from pipeline.components.data_gate import DataAnomaliesError, DataDriftError, judge
from pipeline.validation import acceptance

FILES = {5: {"/data/span-5/data.csv": "aa"}, 4: {"/data/span-4/data.csv": "bb"}}
NO_JOINED = {"tables": {}}


def _report(drifted=True, anomalies=(), on_drift=configs.DRIFT_STOP, span=5):
    scores = [
        {"feature": "fare", "measure": "Jensen-Shannon", "score": 0.31 if drifted else 0.01, "threshold": 0.08, "drifted": drifted, "judged": True},
        {"feature": "trip_start_month", "measure": "Jensen-Shannon", "score": None, "threshold": 0.08, "drifted": False, "judged": False},
    ]
    return {"checked_span": span, "reference_spans": [1, 2, 3, 4], "anomalies": list(anomalies), "scores": scores, "on_drift": on_drift}


EMPTY_COORDINATES = {"feature": "pickup_latitude", "kind": "Column dropped", "description": "span 5 alone: feature 'pickup_latitude': not present"}
WINDOW_ANOMALY = {"check": "schema", "scope": "window", "feature": "pickup_latitude", "kind": "Low fraction", "text": "train: low"}


def _accepted(report, span=5, files=None, window=()):
    problems = acceptance.collect_problems(list(window), report)
    return acceptance.SpanAcceptance(span, files or FILES[span], tuple(problems), "reviewed: new meter rates", "owner", "2026-12-01T00:00:00Z", 11)


def test_drift_is_refused_with_the_command_that_accepts_it():
    with pytest.raises(DataDriftError) as raised:
        judge([], _report(), NO_JOINED, [], FILES)
    message = str(raised.value)
    assert "span 5 drifted from spans 1-4: fare Jensen-Shannon 0.310 > 0.08" in message
    assert acceptance.accept_command(5) in message
    assert raised.value.span == 5


def test_warn_policy_logs_instead_of_refusing():
    warnings = judge([], _report(on_drift=configs.DRIFT_WARN), NO_JOINED, [], FILES)
    assert any("DRIFT (policy: warn" in line for line in warnings)


def test_an_acceptance_lets_exactly_what_it_recorded_through():
    report = _report()
    warnings = judge([], report, NO_JOINED, [_accepted(report)], FILES)
    assert warnings == ["span 5 accepted on record 11 by owner: 1 finding(s) let through: fare Jensen-Shannon 0.310 > 0.08"]


def test_an_accepted_drift_covers_its_score_and_its_reference_only():
    accepted = _accepted(_report())
    higher = _report()
    higher["scores"][0]["score"] = 0.5
    with pytest.raises(DataDriftError, match="fare Jensen-Shannon 0.500"):
        judge([], higher, NO_JOINED, [accepted], FILES)
    other_reference = {**_report(), "reference_spans": [3, 4]}
    with pytest.raises(DataDriftError, match="fare Jensen-Shannon 0.310"):
        judge([], other_reference, NO_JOINED, [accepted], FILES)


def test_the_gate_says_when_no_drift_was_judged():
    one_span = {**_report(drifted=False), "reference_spans": []}
    assert judge([], one_span, NO_JOINED, [], FILES) == ["no drift judged: span 5 is the only span in the window"]


def test_a_drift_config_that_cannot_be_computed_is_refused():
    with pytest.raises(ValueError, match="numeric_buckets must be 2 to 100"):
        configs.DriftConfig(numeric_buckets=200)
    with pytest.raises(ValueError, match="on_drift must be"):
        configs.DriftConfig(on_drift="ignore")


def test_a_problem_the_acceptance_did_not_record_is_still_refused():
    accepted = _accepted(_report())
    with pytest.raises(DataAnomaliesError, match="pickup_latitude"):
        judge([], _report(anomalies=[EMPTY_COORDINATES]), NO_JOINED, [accepted], FILES)


def test_a_refusal_for_anomalies_also_names_the_drift_the_acceptance_would_record():
    with pytest.raises(DataAnomaliesError) as raised:
        judge([], _report(anomalies=[EMPTY_COORDINATES]), NO_JOINED, [], FILES)
    message = str(raised.value)
    assert "pickup_latitude" in message and "and span 5 drifted from spans 1-4: fare Jensen-Shannon 0.310" in message
    assert acceptance.accept_command(5) in message


def test_an_acceptance_of_changed_files_no_longer_applies_and_the_refusal_says_so():
    report = _report()
    changed = {**FILES, 5: {"/data/span-5/data.csv": "cc"}}
    with pytest.raises(DataDriftError, match="fare") as raised:
        judge([], report, NO_JOINED, [_accepted(report)], changed)
    assert "the acceptance of span 5 (record 11" in str(raised.value) and "files changed" in str(raised.value)


def test_drift_of_joined_columns_is_refused_without_an_accept_command():
    joined = {"tables": {"us_il_holidays": {"anomalies": [], "compared_spans": [4, 5], "scores": [
        {"feature": "is_holiday", "measure": "L-infinity", "score": 0.9, "threshold": 0.15, "drifted": True}]}}}
    with pytest.raises(DataDriftError) as raised:
        judge([], _report(drifted=False), joined, [], FILES)
    assert "us_il_holidays.is_holiday L-infinity 0.900" in str(raised.value)
    assert "pipeline.ops.accept" not in str(raised.value)


def test_an_acceptance_of_another_span_does_not_cover_the_newest_span():
    older = _accepted(_report(span=4), span=4)
    with pytest.raises(DataDriftError, match="span 5 drifted"):
        judge([], _report(), NO_JOINED, [older], FILES)


def test_a_window_anomaly_is_covered_by_the_acceptance_of_a_span_in_the_window():
    # Span 4 was accepted with its empty coordinates; span 5 is fine, the window still low.
    older = _accepted(_report(span=4, drifted=False), span=4, window=[WINDOW_ANOMALY])
    judge([WINDOW_ANOMALY], _report(drifted=False), NO_JOINED, [older], FILES)
    with pytest.raises(DataAnomaliesError, match="train: low"):
        judge([WINDOW_ANOMALY], _report(drifted=False), NO_JOINED, [], FILES)


def test_joined_column_anomalies_cannot_be_accepted():
    report = _report(drifted=False)
    joined = {"tables": {"us_il_holidays": {"anomalies": ["span 5: 3 of 9 trips have no row"], "scores": [], "compared_spans": None}}}
    with pytest.raises(DataAnomaliesError, match="external tables"):
        judge([], report, joined, [_accepted(report)], FILES)


def test_acceptances_travel_as_json_unchanged():
    accepted = _accepted(_report())
    assert acceptance.acceptances_from_json(acceptance.acceptances_json([accepted])) == [accepted]
    assert acceptance.newest_per_span([accepted, _accepted(_report(), window=[WINDOW_ANOMALY])], [5])[0].problems[0] == WINDOW_ANOMALY
