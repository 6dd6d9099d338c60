"""Measures what the external features (the holiday calendar) add: the same pipeline trained
with and without them, scored on the out-of-time holdout, for several seeds.

Each run is the real pipeline (run_once) on the training spans; the two
variants share ExampleGen, the checks and Transform (answered from the cache), and differ
only in the Trainer's `external_features` hyperparameter. The trained model of every run
(not only a pushed one) is scored on the holdout span:

    python benchmarks/external_features.py --output-dir /tmp/external-bench --seeds 0 1 2

Prints one row per run and the mean per variant: holdout AUC and accuracy, and the
Evaluator's AUC on the eval split.
"""
import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Google client libraries' Python-version notices and TFMA's NaN recall of one-class slices.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning)

import pandas as pd  # noqa: E402
from holdout_quality import labels, saved_model_scores  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

from pipeline import configs
from pipeline.runners import progress  # noqa: E402
from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint  # noqa: E402
from pipeline.runners.local import EXIT_OK, LocalPaths, local_beam_args, run_once  # noqa: E402
from pipeline.validation.table_sources import REPO_DATA_ROOT, resolve_sources  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="where the runs write (emptied first)")
    parser.add_argument("--data-root", default=REPO_DATA_ROOT, help="folder of span-<N>/ folders (default: data/)")
    parser.add_argument("--train-spans", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--holdout-span", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    output_dir = os.path.abspath(args.output_dir)
    shutil.rmtree(output_dir, ignore_errors=True)
    data_root = os.path.join(output_dir, "data")
    for span in args.train_spans:
        shutil.copytree(os.path.join(args.data_root, f"span-{span}"), os.path.join(data_root, f"span-{span}"))
    holdout_dir = os.path.join(args.data_root, f"span-{args.holdout_span}")
    holdout = pd.concat(
        [pd.read_csv(os.path.join(holdout_dir, name)) for name in sorted(os.listdir(holdout_dir)) if name.endswith(".csv")],
        ignore_index=True,
    )
    truth = labels(holdout)
    handler = progress.install(quiet=True)
    base = configs.PipelineOptions(
        module_fingerprint=module_fingerprint(), code_fingerprint=project_fingerprint(), external_tables=resolve_sources()
    )
    paths = LocalPaths(data_root=data_root, output_dir=os.path.join(output_dir, "runs"))
    results = {True: [], False: []}
    print(f"training spans {args.train_spans}, holdout span {args.holdout_span} ({len(holdout)} trips)")
    print(f"{'external features':<20}{'seed':>5}{'holdout AUC':>13}{'accuracy':>10}{'eval AUC':>10}")
    for seed in args.seeds:
        for external in (True, False):
            options = dataclasses.replace(base, hyperparameters={"seed": seed, "external_features": external})
            result = run_once(paths, options, local_beam_args("in_memory"), handler)
            if result.exit_code != EXIT_OK or result.summary.model_uri is None:
                print(f"run failed: {result.error}", file=sys.stderr)
                return 1
            scores = saved_model_scores(os.path.join(result.summary.model_uri, "Format-Serving"), holdout)
            row = (roc_auc_score(truth, scores), accuracy_score(truth, scores > 0.5), result.summary.metrics["auc"][0])
            results[external].append(row)
            print(f"{'with' if external else 'without':<20}{seed:>5}{row[0]:>13.4f}{row[1]:>10.4f}{row[2]:>10.4f}", flush=True)
    for external, rows in results.items():
        means = [statistics.mean(column) for column in zip(*rows)]
        print(f"{'mean, ' + ('with' if external else 'without'):<25}{means[0]:>13.4f}{means[1]:>10.4f}{means[2]:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
