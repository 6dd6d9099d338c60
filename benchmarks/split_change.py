"""Two pushed models scored on the eval trips both of their runs held out.

When a change alters how examples serialize, ExampleGen's hash split moves and the eval split
holds other trips, so the Evaluator's numbers of two runs are not comparable. This scores the
newest pushed model of each output dir on the trips that are in both runs' eval splits (matched
by their feature values), so neither model trained on them:

    git checkout OLD && python run_local.py --output-dir /tmp/before
    git checkout NEW && python run_local.py --output-dir /tmp/after
    python benchmarks/split_change.py --before /tmp/before --after /tmp/after
"""
import argparse
import glob
import os

from serving.console import import_tensorflow

import_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

from modules import features, signatures  # noqa: E402
from pipeline import configs  # noqa: E402
from pipeline.component_ids import EXAMPLE_GEN  # noqa: E402
from pipeline.ops.metadata import OutputLayout  # noqa: E402
from serving.versions import newest_version, version_dir  # noqa: E402


def eval_records(output_dir: str) -> dict:
    """The newest Examples artifact's eval split: (feature, first value) pairs -> serialized record."""
    examples_dirs = sorted(glob.glob(os.path.join(OutputLayout(output_dir).pipeline_root, EXAMPLE_GEN, "examples", "*")), key=lambda p: int(os.path.basename(p)))
    files = sorted(glob.glob(os.path.join(examples_dirs[-1], f"Split-{configs.EVAL_SPLIT}", "*")))
    records = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        key = []
        for name in sorted(example.features.feature):
            feature = example.features.feature[name]
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            if values:  # an empty value list and an absent feature are the same trip
                key.append((name, values[0]))
        records[tuple(key)] = record.numpy()
    return records


def label(trip: dict) -> int:
    """The big-tipper label, as the Transform graph computes it."""
    return int(features.trip_is_big_tipper(trip))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="output dir of the earlier run")
    parser.add_argument("--after", required=True, help="output dir of the later run")
    args = parser.parse_args()
    before, after = eval_records(args.before), eval_records(args.after)
    common = [key for key in after if key in before]
    print(f"eval trips: before {len(before)}, after {len(after)}, in both {len(common)}")
    truth = np.array([label(dict(key)) for key in common])
    card = np.array([dict(key).get("payment_type") == b"Credit Card" for key in common])
    for name, output_dir, records in (("before", args.before, before), ("after", args.after, after)):
        serving_dir = OutputLayout(output_dir).serving_model_dir
        predict = tf.saved_model.load(version_dir(serving_dir, newest_version(serving_dir))).signatures[signatures.SERVING_TF_EXAMPLE]
        scores = predict(examples=tf.constant([records[key] for key in common]))[signatures.PROBABILITY_OUTPUT].numpy()
        print(
            f"{name}: AUC {roc_auc_score(truth, scores):.4f}, accuracy {accuracy_score(truth, scores > 0.5):.4f}, "
            f"card-paid AUC {roc_auc_score(truth[card], scores[card]):.4f} ({card.sum()} trips)"
        )


if __name__ == "__main__":
    main()
