"""Scores a pushed model on trips it never saw, next to two baselines on the same split.

Trains nothing itself except the baselines: run the pipeline on spans 1-3 first, then score
span 4 (trips from a later year: an out-of-time holdout, the honest test for a model that
will serve future traffic):

    mkdir -p /tmp/holdout/data && cp -r data/span-1 data/span-2 data/span-3 /tmp/holdout/data/
    python run_local.py --data-root /tmp/holdout/data --output-dir /tmp/holdout/out
    python benchmarks/holdout_quality.py --model-dir /tmp/holdout/out/serving_model \\
        --train-csv data/span-1/data.csv data/span-2/data.csv data/span-3/data.csv \\
        --holdout-csv data/span-4/data.csv

Baselines: the one-feature rule "payment_type is Credit Card", and scikit-learn's
HistGradientBoostingClassifier on the raw columns trained on the same training CSVs.
"""
import argparse

from serving.console import import_tensorflow

import_tensorflow()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

from modules import features, signatures  # noqa: E402
from pipeline.configs import SERVING_MODEL_NAME  # noqa: E402
from serving.versions import serving_version, version_dir  # noqa: E402


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The big-tipper label of each trip, as the Transform graph computes it."""
    fare_cents = features.cents(frame[features.FARE_KEY])
    tips_cents = features.cents(frame[features.TIPS_KEY].fillna(0.0))
    return (features.is_big_tip(tips_cents, fare_cents) & fare_cents.notna()).astype(int).to_numpy()


def _example(row: pd.Series, dtypes: dict) -> bytes:
    feature = {}
    for key, dtype in dtypes.items():
        value = row[key]
        if pd.isna(value):
            continue
        if dtype == tf.string:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif dtype == tf.int64:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def saved_model_scores(saved_model_dir: str, frame: pd.DataFrame) -> np.ndarray:
    """P(big tipper) of each trip, from a SavedModel's serialized-example signature."""
    model = tf.saved_model.load(saved_model_dir)
    serving_default = model.signatures[signatures.SERVING_DEFAULT]
    dtypes = {key: spec.dtype for key, spec in serving_default.structured_input_signature[1].items()}
    serve_examples = model.signatures[signatures.SERVING_TF_EXAMPLE]
    examples = [_example(row, dtypes) for _, row in frame.iterrows()]
    scores = [
        serve_examples(examples=tf.constant(examples[start : start + 1024]))[signatures.PROBABILITY_OUTPUT].numpy()
        for start in range(0, len(examples), 1024)
    ]
    return np.concatenate(scores)


def _model_scores(model_dir: str, frame: pd.DataFrame) -> np.ndarray:
    return saved_model_scores(version_dir(model_dir, serving_version(model_dir, SERVING_MODEL_NAME)), frame)


def raw_matrix(frame: pd.DataFrame, categories: dict) -> pd.DataFrame:
    """The raw columns of each trip as numbers, categories coded by the training trips' values."""
    # The raw columns of the trip itself: the timestamp (the holiday join's key) is left out,
    # since a tree on raw Unix time cannot extrapolate to a later year.
    matrix = frame[[key for key in features.RAW_FEATURE_KEYS if key not in features.EXTERNAL_JOIN_KEYS]].copy()
    for key in features.VOCABULARY_FEATURE_KEYS:
        matrix[key] = pd.Categorical(matrix[key], categories=categories[key]).codes
    return matrix


def boosted_scores(train: pd.DataFrame, score: pd.DataFrame) -> np.ndarray:
    """P(big tipper) of each trip of `score`, by gradient-boosted trees trained on `train`'s raw columns."""
    categories = {key: sorted(train[key].dropna().unique()) for key in features.VOCABULARY_FEATURE_KEYS}
    booster = HistGradientBoostingClassifier(max_iter=300, random_state=0)
    booster.fit(raw_matrix(train, categories), labels(train))
    return booster.predict_proba(raw_matrix(score, categories))[:, 1]


def credit_card_rule(frame: pd.DataFrame) -> np.ndarray:
    """The one-feature baseline: 1 where the trip was paid by credit card."""
    return (frame["payment_type"] == "Credit Card").astype(float).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="the serving_model folder the Pusher wrote")
    parser.add_argument("--train-csv", nargs="+", required=True, help="CSV files the model was trained on")
    parser.add_argument("--holdout-csv", nargs="+", required=True, help="CSV files never seen in training")
    args = parser.parse_args()
    train = pd.concat([pd.read_csv(path) for path in args.train_csv], ignore_index=True)
    holdout = pd.concat([pd.read_csv(path) for path in args.holdout_csv], ignore_index=True)
    truth = labels(holdout)
    # Card-paid trips, where tips are recorded: the slice the gate floors (features.CARD_PAYMENT).
    card = (holdout[features.PAYMENT_TYPE_KEY] == features.CARD_PAYMENT).to_numpy()

    def row(name: str, scores: np.ndarray):
        return name, roc_auc_score(truth, scores), accuracy_score(truth, scores > 0.5), roc_auc_score(truth[card], scores[card])

    rows = [
        row("pushed model", _model_scores(args.model_dir, holdout)),
        row("rule: payment_type is Credit Card", credit_card_rule(holdout)),
        row("gradient-boosted trees, raw columns", boosted_scores(train, holdout)),
        row("always 'not a big tipper'", np.zeros(len(truth))),
    ]
    print(f"holdout: {len(holdout)} trips from {', '.join(args.holdout_csv)} ({int(card.sum())} card-paid); training: {len(train)} trips")
    print(f"{'model':<40}{'AUC':>8}{'accuracy':>10}{'card AUC':>10}")
    for name, auc, accuracy, card_auc in rows:
        print(f"{name:<40}{auc:>8.4f}{accuracy:>10.4f}{card_auc:>10.4f}")


if __name__ == "__main__":
    main()
