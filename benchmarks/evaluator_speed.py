"""Times TFX's Evaluator with the pipeline's one-pass metrics against TFMA's own metric classes.

On a finished `run_local.py` output folder, the pipeline's Evaluator executor (TFX's, reading
the label through `transform_label` and decoding the features the EvalConfig reads from the
run's schema: `pipeline.components.evaluator`) scores the window's eval split with the run's
model as the candidate and again as the baseline (two models, as when a model serves), with two
EvalConfigs that differ only in the metric classes:

- "one pass": `pipeline.eval_config.make_eval_config`, as the pipeline runs it
  (`pipeline/eval_metrics.py`: one combiner per model keeps what every metric needs);
- "TFMA's classes": the same config naming TFMA's AUC, BinaryAccuracy, Precision, Recall,
  MeanLabel and MeanPrediction, each its own combiner.

Runs alternate, one pass first, each into a fresh folder, with the local Beam arguments. Each
time is the executor's wall time in this process (TensorFlow and TFMA already imported). At the
end every metric on every slice of the two evaluations of the last round is compared.

    python run_local.py --output-dir /tmp/run
    python benchmarks/evaluator_speed.py --output-dir /tmp/run --rounds 3
"""
import argparse
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from pipeline import configs, eval_metrics
from pipeline.component_ids import EXAMPLE_GEN, SCHEMA_GEN, TRAINER
from pipeline.eval_config import make_eval_config
from pipeline_speed import print_medians


def newest_artifact(pipeline_root: str, component: str, output: str) -> str:
    """The newest artifact folder of a component's output (TFX numbers them by execution)."""
    folders = [path for path in glob.glob(os.path.join(pipeline_root, component, output, "*")) if os.path.basename(path).isdigit()]
    if not folders:
        raise FileNotFoundError(f"no {component} {output} under {pipeline_root}: run run_local.py into that output folder first")
    return max(folders, key=lambda path: int(os.path.basename(path)))


def run_evaluator(examples_uri: str, model_uri: str, eval_config, output_dir: str, schema_uri: str = "") -> float:
    """Seconds of one TFX Evaluator execution: candidate and baseline both `model_uri`; with
    the schema artifact folder `schema_uri`, as the pipeline runs it."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from pipeline.components import evaluator
    from pipeline.runners.local import local_beam_args

    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = json.dumps([configs.TRAIN_SPLIT, configs.EVAL_SPLIT])
    models = []
    for _ in range(2):
        model = standard_artifacts.Model()
        model.uri = model_uri
        models.append(model)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = os.path.join(output_dir, "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(output_dir, "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    inputs = {"examples": [examples], "model": models[:1], "baseline_model": models[1:]}
    if schema_uri:
        schema = standard_artifacts.Schema()
        schema.uri = schema_uri
        inputs["schema"] = [schema]
    context = BaseBeamExecutor.Context(beam_pipeline_args=local_beam_args("in_memory"), tmp_dir=os.path.join(output_dir, "tmp"), unique_id="evaluator_speed")
    executor = evaluator.Executor(context)
    started = time.monotonic()
    executor.Do(
        inputs,
        {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_config": proto_utils.proto_to_json(eval_config), "example_splits": json.dumps([configs.EVAL_SPLIT])},
    )
    return time.monotonic() - started


def read_metrics(evaluation_uri: str) -> Dict[Tuple[str, str, str], float]:
    """(slice, model, metric) -> value of an evaluation folder."""
    import tensorflow_model_analysis as tfma

    values = {}
    for model_name in ("candidate", "baseline"):
        for slice_key, by_output in tfma.load_eval_result(evaluation_uri, model_name=model_name).slicing_metrics:
            for by_class in by_output.values():
                for metrics in by_class.values():
                    for name, value in metrics.items():
                        number = value.get("doubleValue")
                        if number is not None:
                            # TFMA writes NaN as the string "NaN".
                            values[(str(slice_key), model_name, name)] = float(number)
    return values


def largest_difference(first: Dict, second: Dict) -> Tuple[float, Optional[Tuple[str, str, str]]]:
    """The largest absolute difference between two evaluations' values (NaN equals NaN), and
    the (slice, model, metric) it is found at (None when every value is equal).

    Raises:
        ValueError: when they do not hold the same metrics.
    """
    if set(first) != set(second):
        raise ValueError(f"the evaluations differ in their metrics: {sorted(set(first) ^ set(second))[:5]}")
    differences = [
        (abs(first[key] - second[key]), key) for key in sorted(first) if not (math.isnan(first[key]) and math.isnan(second[key]))
    ]
    worst = max(differences, default=(0.0, None), key=lambda item: item[0])
    return worst if worst[0] > 0 else (0.0, None)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="a finished run_local.py output folder")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration (default 3)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.rounds < 1:
        print(f"--rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    pipeline_root = os.path.join(args.output_dir, "pipeline_root")
    try:
        examples_uri = newest_artifact(pipeline_root, EXAMPLE_GEN, "examples")
        model_uri = newest_artifact(pipeline_root, TRAINER, "model")
        schema_uri = newest_artifact(pipeline_root, SCHEMA_GEN, "schema")
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    one_pass = make_eval_config(configs.BlessingThresholds())
    configurations = {"one pass (the pipeline's)": one_pass, "TFMA's classes": eval_metrics.with_tfma_classes(one_pass)}
    times: Dict[str, List[float]] = {name: [] for name in configurations}
    work_dir = tempfile.mkdtemp(prefix="evaluator_speed_")
    last: Dict[str, str] = {}
    try:
        for round_number in range(1, args.rounds + 1):
            for index, (name, eval_config) in enumerate(configurations.items()):
                output_dir = os.path.join(work_dir, f"{round_number}-{index}")
                seconds = run_evaluator(examples_uri, model_uri, eval_config, output_dir, schema_uri)
                times[name].append(seconds)
                last[name] = os.path.join(output_dir, "evaluation")
                print(f"round {round_number}: {name:<28} {seconds:6.1f} s", flush=True)
        first, second = (read_metrics(uri) for uri in last.values())
        difference, where = largest_difference(first, second)
        trips = first.get(("()", "candidate", "example_count"))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print_medians("Evaluator", times, f"{trips:,.0f} eval trips, 2 models", "one pass / TFMA's classes")
    print(f"largest difference of any metric on any slice, either model: {difference:g}" + (f" ({where[2]}, {where[1]}, slice {where[0]})" if where else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
