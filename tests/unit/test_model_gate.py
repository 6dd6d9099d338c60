"""The ModelGate's trivial baselines, its verdict on them and its newest-span verdict on a one-span
window (the Beam counting and the whole gate run in the pipeline tests)."""
import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import configs
from pipeline.components.model_gate import judge_baselines, judge_newest_span
from pipeline.components.trivial_baselines import baselines_from_counts, lookup_auc

TRAIN, EVAL = configs.TRAIN_SPLIT, configs.EVAL_SPLIT


def _counts(split, rows):
    """Per-value counts of (feature value dict, label) rows, as the Beam step sums them."""
    counts = {}
    for values, label in rows:
        for key in [(split, "", 0)] + [(split, name, value) for name, value in values.items()]:
            pair = counts.setdefault(key, [0, 0])
            pair[0] += 1
            pair[1] += label
    return counts


def test_lookup_auc_is_the_rank_auc_of_the_train_shares():
    rng = np.random.default_rng(7)
    train_values, eval_values = rng.integers(0, 6, 400), rng.integers(0, 7, 300)  # value 6: never in train
    train_labels = (rng.random(400) < 0.15 * train_values).astype(int)
    eval_labels = (rng.random(300) < 0.12 * eval_values).astype(int)
    train = {v: [int((train_values == v).sum()), int(train_labels[train_values == v].sum())] for v in set(train_values)}
    evaluation = {v: [int((eval_values == v).sum()), int(eval_labels[eval_values == v].sum())] for v in set(eval_values)}
    fallback = train_labels.mean()
    scores = [train[v][1] / train[v][0] if v in train else fallback for v in eval_values]
    assert lookup_auc(train, evaluation, fallback) == pytest.approx(roc_auc_score(eval_labels, scores), abs=1e-12)


def test_one_class_has_no_auc():
    assert lookup_auc({1: [5, 2]}, {1: [4, 0], 2: [3, 0]}, 0.4) is None


def test_the_card_rule_is_found_as_the_best_single_feature():
    # Card trips tip big half the time, cash never: payment type decides; the hour says nothing.
    rows = [
        ({"payment_type_xf": card, "trip_start_hour_xf": hour}, int(card and repeat < 2))
        for card in (0, 1)
        for hour in range(24)
        for repeat in range(4)
    ]
    counts = {**_counts(TRAIN, rows), **_counts(EVAL, rows)}
    baselines = baselines_from_counts(counts)
    assert baselines["best_single_feature"] == "payment_type_xf"
    # Every big tipper scores 0.5; of the others, cash trips score 0 and card trips tie at 0.5.
    assert baselines["best_single_feature_auc"] == pytest.approx(96 / 144 + 0.5 * 48 / 144)
    assert baselines["single_feature_auc"]["trip_start_hour_xf"] == pytest.approx(0.5)
    assert baselines["majority_class"] == 0
    assert baselines["majority_accuracy"] == pytest.approx(0.75)
    assert baselines["eval_trips"] == len(rows)


def test_a_split_without_trips_cannot_be_judged():
    rows = [({"payment_type_xf": 1}, 1), ({"payment_type_xf": 0}, 0)]
    with pytest.raises(ValueError, match="eval split has no trip"):
        baselines_from_counts(_counts(TRAIN, rows))
    with pytest.raises(ValueError, match="hold one class only"):
        baselines_from_counts({**_counts(TRAIN, rows), **_counts(EVAL, [({"payment_type_xf": 1}, 1)])})


BASELINES = {"majority_class": 0, "majority_accuracy": 0.775, "best_single_feature": "payment_type_xf", "best_single_feature_auc": 0.932}


def test_a_model_that_only_knows_the_card_rule_is_refused():
    # What "payment_type is Credit Card" scores on the shipped eval split: above both fixed floors.
    card_rule = {"auc": 0.932, "binary_accuracy": 0.896}
    thresholds = configs.BlessingThresholds()
    assert card_rule["auc"] >= thresholds.min_auc and card_rule["binary_accuracy"] >= thresholds.min_binary_accuracy
    [reason] = judge_baselines(card_rule, BASELINES, thresholds)
    assert reason == "auc 0.9320 does not beat the best single-feature rule (payment_type_xf, AUC 0.9320) by 0.01: needs 0.9420"


def test_a_model_no_better_than_the_majority_is_refused_and_a_good_one_passes():
    [reason] = judge_baselines({"auc": 0.96, "binary_accuracy": 0.78}, BASELINES, configs.BlessingThresholds())
    assert reason == "binary_accuracy 0.7800 does not beat always answering 0 (accuracy 0.7750) by 0.03: needs 0.8050"
    assert judge_baselines({"auc": 0.96, "binary_accuracy": 0.90}, BASELINES, configs.BlessingThresholds()) == []
    assert len(judge_baselines({}, BASELINES, configs.BlessingThresholds())) == 2
    # A metric TFMA could not compute is no pass.
    assert len(judge_baselines({"auc": float("nan"), "binary_accuracy": float("nan")}, BASELINES, configs.BlessingThresholds())) == 2


def test_a_one_span_window_is_judged_on_the_newest_span_limits():
    limits = configs.BlessingThresholds(newest_span_max_auc_drop=0.02, newest_span_max_binary_accuracy_drop=0.01)
    serving = {"auc": 0.95, "binary_accuracy": 0.90, "example_count": 300.0}
    assert judge_newest_span({"candidate": {**serving, "auc": 0.93}, "baseline": serving}, limits, True) == []
    reasons = judge_newest_span({"candidate": {**serving, "auc": 0.9299, "binary_accuracy": 0.8}, "baseline": serving}, limits, True)
    assert reasons == [
        "newest span: auc is 0.0201 lower than the serving model's (allowed drop: 0.0200)",
        "newest span: binary_accuracy is 0.1000 lower than the serving model's (allowed drop: 0.0100)",
    ]
    # Nothing serves yet: no drop to judge, but the span must hold eval trips.
    assert judge_newest_span({"candidate": {"auc": 0.5, "example_count": 1.0}, "baseline": {}}, limits, False) == []
    assert judge_newest_span({"candidate": {"example_count": 0.0}, "baseline": {}}, limits, False) == [
        "newest span: example_count 0.0 is below the required 1.0000"
    ]
    # A metric that was not computed, or is NaN, fails; so do a serving model's missing metrics.
    assert judge_newest_span({"candidate": {"example_count": 5.0, "auc": float("nan"), "binary_accuracy": 0.9}, "baseline": serving}, limits, True) == [
        "newest span: auc is nan lower than the serving model's (allowed drop: 0.0200)"
    ]
    assert judge_newest_span({"candidate": {"example_count": 5.0, "auc": 0.95}, "baseline": serving}, limits, True) == [
        "newest span: binary_accuracy of the candidate or of the serving model was not computed"
    ]
    assert len(judge_newest_span({"candidate": serving, "baseline": {}}, limits, True)) == 2


def test_the_run_summary_says_when_the_newest_span_is_the_window():
    from pipeline.ops.run_summary import gate_rows

    metrics = {"candidate": {"auc": 0.96, "binary_accuracy": 0.9, "example_count": 300.0}, "baseline": {}}
    gate = {
        "trivial_baselines": BASELINES,
        "thresholds": json.loads(json.dumps(dataclasses.asdict(configs.BlessingThresholds()))),
        "window": metrics,
        "card_slice": metrics,
        "newest_span": {**metrics, "same_trips_as_window": True},
    }
    newest_auc = [row for row in gate_rows(gate) if row[0] == "auc, newest span"]
    assert newest_auc == [("auc, newest span", 0.96, None, "drop <= 0.02 (300 trips, the window's)")]
    del gate["newest_span"]["same_trips_as_window"]
    assert [row for row in gate_rows(gate) if row[0] == "auc, newest span"][0][3] == "drop <= 0.02 (300 trips)"
