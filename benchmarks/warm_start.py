"""Warm start against training from scratch, for a new span: training time and quality.

Runs the real pipeline (run_once) on the shipped spans:

1. spans 1..B into OUTPUT_DIR/base: the model that serves when the new span arrives;
2. span B+1 arrives: OUTPUT_DIR/base copied to OUTPUT_DIR/prep and run once on spans 1..B+1
   with a 1-step Trainer and a gate no model passes, so that every step before the Trainer is in
   prep's cache and the base model still serves;
3. `--pairs` pairs, alternating: prep copied to a fresh folder and run on spans 1..B+1 from
   scratch (`--train-steps`), then warm-started from the base model (`--warm-start-steps`),
   the order flipped every other pair; pair i trains with seed i.

For each run it prints the Trainer step's time, whether the Trainer warm-started (its record,
`modules.warm_start.RECORD_FILE`), the Evaluator's eval-split AUC and card-paid AUC, the newest
span's AUC, and the AUC of the spans after B+1 (trips no model trained on, a later year), scored
through the serving signature; then medians per configuration and warm / scratch.

    python benchmarks/warm_start.py --output-dir /tmp/warm_start
    python benchmarks/warm_start.py --output-dir /tmp/warm_start --base-spans 3 --warm-start-steps 50

With `--base-spans 3` the new span is span 4 and no later span is left to score.
"""
import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import warnings
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from holdout_quality import labels, saved_model_scores  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from modules import features  # noqa: E402
from modules.warm_start import read_record  # noqa: E402
from pipeline import component_ids, configs  # noqa: E402
from pipeline.runners import progress  # noqa: E402
from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint  # noqa: E402
from pipeline.runners.local import LocalPaths, RunResult, local_beam_args, run_once  # noqa: E402
from pipeline.validation.table_sources import resolve_sources  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = "from scratch"
WARM = "warm start"
# A gate no model passes: the preparing run must not replace the serving model.
REFUSE_ALL = configs.BlessingThresholds(min_auc=2.0)


@dataclasses.dataclass
class Measured:
    """One measured run."""

    config: str
    pair: int
    trainer_seconds: float
    warm_started: bool
    train_steps: int
    eval_auc: float
    eval_card_auc: float
    newest_span_auc: float
    later_auc: Optional[float]
    later_card_auc: Optional[float]


def _copy_spans(data_root: str, target: str, spans: List[int]) -> str:
    for span in spans:
        folder = f"{configs.SPAN_FOLDER_PREFIX}{span}"
        if not os.path.exists(os.path.join(target, folder)):
            shutil.copytree(os.path.join(data_root, folder), os.path.join(target, folder))
    return target


def _run(paths: LocalPaths, options: configs.PipelineOptions, handler) -> RunResult:
    result = run_once(paths, options, local_beam_args("in_memory"), handler)
    if result.exit_code != 0:
        sys.exit(f"the run into {paths.output_dir} failed ({result.exit_code}): {result.error}")
    return result


def _trainer_model_dir(paths: LocalPaths) -> str:
    """The Model artifact folder of the newest Trainer execution in the output dir's ML Metadata."""
    from tfx.orchestration import metadata

    with metadata.Metadata(paths.metadata.connection_config(paths.output_dir)) as handler:
        store = handler.store
        context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_ids.TRAINER}")
        execution = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
        outputs = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == e.OUTPUT and e.path.steps[0].key == "model"]
        [model] = store.get_artifacts_by_id([outputs[0].artifact_id])
    return model.uri


def _auc(truth: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> float:
    return float(roc_auc_score(truth[rows], scores[rows]))


def measure(config: str, pair: int, paths: LocalPaths, options: configs.PipelineOptions, handler, later: Optional[pd.DataFrame]) -> Measured:
    """Runs the pipeline once into `paths` and returns what it measured."""
    result = _run(paths, options, handler)
    trainer_seconds = next(seconds for name, state, seconds in result.timings if name == component_ids.TRAINER and state == "ran")
    model_dir = _trainer_model_dir(paths)
    record = read_record(model_dir)
    gate = result.summary.gate
    later_auc = later_card_auc = None
    if later is not None:
        scores = saved_model_scores(os.path.join(model_dir, "Format-Serving"), later)
        truth = labels(later)
        later_auc = _auc(truth, scores, np.ones(len(truth), dtype=bool))
        later_card_auc = _auc(truth, scores, (later[features.PAYMENT_TYPE_KEY] == features.CARD_PAYMENT).to_numpy())
    return Measured(
        config=config,
        pair=pair,
        trainer_seconds=trainer_seconds,
        warm_started=record.warm_started,
        train_steps=record.train_steps,
        eval_auc=result.summary.metrics["auc"][0],
        eval_card_auc=gate["card_slice"]["candidate"]["auc"],
        newest_span_auc=gate["newest_span"]["candidate"]["auc"],
        later_auc=later_auc,
        later_card_auc=later_card_auc,
    )


def _text(value: Optional[float], digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="where the runs write (reused: an existing OUTPUT_DIR/base is kept)")
    parser.add_argument("--data-root", default=os.path.join(REPO_ROOT, "data"), help="the shipped span folders (default: data/)")
    parser.add_argument("--base-spans", type=int, default=2, help="the serving model trains on spans 1..B; span B+1 is new (default: 2)")
    parser.add_argument("--pairs", type=int, default=3, help="scratch / warm pairs, alternated (default: 3)")
    parser.add_argument("--train-steps", type=int, default=configs.PipelineOptions.train_steps, help="steps from scratch")
    parser.add_argument("--warm-start-steps", type=int, default=configs.PipelineOptions.warm_start_steps, help="steps of a warm start")
    args = parser.parse_args()
    from serving.console import import_tensorflow

    import_tensorflow()
    handler = progress.install(quiet=True)
    output_dir = os.path.abspath(args.output_dir)
    all_spans = sorted(int(name[len(configs.SPAN_FOLDER_PREFIX) :]) for name in os.listdir(args.data_root) if name.startswith(configs.SPAN_FOLDER_PREFIX))
    base_spans = list(range(1, args.base_spans + 1))
    new_spans = base_spans + [args.base_spans + 1]
    later_spans = [span for span in all_spans if span > new_spans[-1]]
    later = None
    if later_spans:
        later = pd.concat(
            [pd.read_csv(os.path.join(args.data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}", "data.csv")) for span in later_spans],
            ignore_index=True,
        )
    options = configs.PipelineOptions(
        module_fingerprint=module_fingerprint(),
        code_fingerprint=project_fingerprint(),
        external_tables=resolve_sources(),
        train_steps=args.train_steps,
        warm_start_steps=args.warm_start_steps,
        # The benchmark is about training: a drifted new span is trained on, with a warning.
        drift=configs.DriftConfig(on_drift=configs.DRIFT_WARN),
    )
    base_data = _copy_spans(args.data_root, os.path.join(output_dir, "data-base"), base_spans)
    new_data = _copy_spans(args.data_root, os.path.join(output_dir, "data-new"), new_spans)
    base = LocalPaths(base_data, os.path.join(output_dir, "base"))
    if not os.path.isdir(base.serving_model_dir):
        result = _run(base, options, handler)
        if not result.summary.pushed_version:
            sys.exit(f"the base run on spans {base_spans} pushed nothing: {result.summary.failed_thresholds}")
        print(f"base model: spans {base_spans[0]}-{base_spans[-1]}, version {result.summary.pushed_version} ({result.seconds:.0f}s)", flush=True)
    prep = LocalPaths(new_data, os.path.join(output_dir, "prep"))
    if not os.path.isdir(prep.output_dir):
        shutil.copytree(base.output_dir, prep.output_dir)
        result = _run(prep, dataclasses.replace(options, train_steps=1, thresholds=REFUSE_ALL), handler)
        print(f"span {new_spans[-1]} arrived: every step before the Trainer cached in {prep.output_dir} ({result.seconds:.0f}s)", flush=True)
    measured: List[Measured] = []
    for pair in range(args.pairs):
        order = [(SCRATCH, False), (WARM, True)]
        for config, warm in order if pair % 2 == 0 else order[::-1]:
            run_dir = os.path.join(output_dir, "runs", f"{'warm' if warm else 'scratch'}-{pair}")
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(prep.output_dir, run_dir)
            run_options = dataclasses.replace(options, warm_start=warm, hyperparameters={"seed": pair})
            row = measure(config, pair, LocalPaths(new_data, run_dir), run_options, handler, later)
            if warm and not row.warm_started:
                sys.exit(f"the warm-start run into {run_dir} trained from scratch: {read_record(_trainer_model_dir(LocalPaths(new_data, run_dir))).reason}")
            measured.append(row)
            print(
                f"pair {pair} {config:<13} Trainer {row.trainer_seconds:5.1f}s  {row.train_steps} steps  eval AUC {row.eval_auc:.4f}  "
                f"card {row.eval_card_auc:.4f}  newest span {row.newest_span_auc:.4f}  later {_text(row.later_auc)}  later card {_text(row.later_card_auc)}",
                flush=True,
            )
    later_text = f"spans {later_spans[0]}-{later_spans[-1]}, {len(later)} trips" if later_spans else "none"
    print(
        f"\nserving model trained on spans 1-{base_spans[-1]}; new span {new_spans[-1]}; training on spans 1-{new_spans[-1]}; "
        f"later trips no model trained on: {later_text}"
    )
    columns = [
        ("Trainer step (s)", "trainer_seconds", 1),
        ("eval split AUC", "eval_auc", 4),
        ("eval card-paid AUC", "eval_card_auc", 4),
        (f"newest span {new_spans[-1]} AUC", "newest_span_auc", 4),
        ("later span AUC", "later_auc", 4),
        ("later span card-paid AUC", "later_card_auc", 4),
    ]
    print(f"{'median of ' + str(args.pairs) + ' runs':<26}{SCRATCH + f' ({args.train_steps} steps)':>26}{WARM + f' ({args.warm_start_steps} steps)':>24}{'warm - scratch':>16}")
    for title, field, digits in columns:
        values = {}
        for config in (SCRATCH, WARM):
            found = [getattr(row, field) for row in measured if row.config == config and getattr(row, field) is not None]
            values[config] = statistics.median(found) if found else None
        if values[SCRATCH] is None:
            continue
        difference = values[WARM] - values[SCRATCH]
        print(f"{title:<26}{_text(values[SCRATCH], digits):>26}{_text(values[WARM], digits):>24}{difference:>+16.{digits}f}")
    scratch_time = statistics.median(row.trainer_seconds for row in measured if row.config == SCRATCH)
    warm_time = statistics.median(row.trainer_seconds for row in measured if row.config == WARM)
    print(f"Trainer step time, warm / scratch: {warm_time / scratch_time:.2f}")


if __name__ == "__main__":
    main()
