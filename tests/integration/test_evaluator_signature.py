"""The Evaluators' executor (`pipeline.components.evaluator`): the label through
`transform_label` when every model has it, through `transform_features` when the serving model
is older, the same metrics either way; TFMA's signature calls by keyword, the same metrics as
positional calls; the schema cut down to the features the EvalConfig reads, the same metrics as
without a schema."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from apache_beam.internal import pickler
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
import tensorflow_model_analysis as tfma
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.types import standard_artifacts
from tensorflow_model_analysis.utils import model_util
from tfx.utils import proto_utils

from modules import features, signatures
from pipeline import configs
from pipeline.component_ids import EVALUATOR, EXAMPLE_GEN, SCHEMA_GEN, TRAINER
from pipeline.components import evaluator, evaluator_models
from pipeline.eval_config import make_eval_config
from tests.conftest import REPO_ROOT


def _newest(pipeline_root, component: str, output: str) -> str:
    folders = glob.glob(os.path.join(str(pipeline_root), component, output, "*"))
    return max(folders, key=lambda path: int(os.path.basename(path)))


def _preprocessing_names(evaluation_uri: str) -> set:
    with open(os.path.join(evaluation_uri, "eval_config.json")) as config_file:
        config = json.load(config_file)["evalConfig"]
    return {name for spec in config["modelSpecs"] for name in spec.get("preprocessingFunctionNames", [])}


def _without_label_signature(model_uri: str, target) -> str:
    """A copy of a Model artifact's SavedModel as a model exported before `transform_label`."""
    loaded = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    kept = {name: function for name, function in loaded.signatures.items() if name != signatures.TRANSFORM_LABEL}
    tf.saved_model.save(loaded, str(target / "Format-Serving"), signatures=kept)
    return str(target)


def _evaluate(examples_uri: str, model_uri: str, baseline_uri: str, output_dir, schema_uri: str = "") -> str:
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = json.dumps([configs.TRAIN_SPLIT, configs.EVAL_SPLIT])
    models = []
    for uri in (model_uri, baseline_uri):
        model = standard_artifacts.Model()
        model.uri = uri
        models.append(model)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(output_dir / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(output_dir / "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    inputs = {"examples": [examples], "model": models[:1], "baseline_model": models[1:]}
    if schema_uri:
        schema = standard_artifacts.Schema()
        schema.uri = schema_uri
        inputs["schema"] = [schema]
    context = BaseBeamExecutor.Context(beam_pipeline_args=["--runner=DirectRunner"], tmp_dir=str(output_dir / "tmp"), unique_id="test")
    evaluator.Executor(context).Do(
        inputs,
        {"evaluation": [evaluation], "blessing": [blessing]},
        {
            "eval_config": proto_utils.proto_to_json(make_eval_config(configs.BlessingThresholds())),
            "example_splits": json.dumps([configs.EVAL_SPLIT]),
        },
    )
    return evaluation.uri


def _metrics(evaluation_uri: str, model_name: str) -> dict:
    values = {}
    for slice_key, by_output in tfma.load_eval_result(evaluation_uri, model_name=model_name).slicing_metrics:
        for name, value in by_output[""][""].items():
            if "doubleValue" in value:
                # TFMA writes NaN (recall of a slice without positives) as the string "NaN".
                values[(slice_key, name)] = float(value["doubleValue"])
    return values


def test_the_pipelines_evaluator_read_the_label_alone(small_pipeline_run):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    assert _preprocessing_names(_newest(pipeline_root, EVALUATOR, "evaluation")) == {signatures.TRANSFORM_LABEL}
    model_dir = os.path.join(_newest(pipeline_root, TRAINER, "model"), "Format-Serving")
    assert {signatures.TRANSFORM_LABEL, signatures.TRANSFORM_FEATURES} <= evaluator.signature_names(model_dir)


def test_an_older_serving_model_is_read_through_transform_features(small_pipeline_run, tmp_path):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    examples_uri = _newest(pipeline_root, EXAMPLE_GEN, "examples")
    model_uri = _newest(pipeline_root, TRAINER, "model")
    older_uri = _without_label_signature(model_uri, tmp_path / "older")
    assert signatures.TRANSFORM_LABEL not in evaluator.signature_names(os.path.join(older_uri, "Format-Serving"))
    assert evaluator.preprocessing_signature([os.path.join(model_uri, "Format-Serving"), os.path.join(older_uri, "Format-Serving")]) == signatures.TRANSFORM_FEATURES

    label_alone = _evaluate(examples_uri, model_uri, model_uri, tmp_path / "label")
    mixed = _evaluate(examples_uri, model_uri, older_uri, tmp_path / "mixed")
    assert _preprocessing_names(label_alone) == {signatures.TRANSFORM_LABEL}
    assert _preprocessing_names(mixed) == {signatures.TRANSFORM_FEATURES}
    # The same trips, labels and predictions: the same metrics, for both models. (The re-saved
    # copy no longer loads as a Keras model, so TFMA adds no Keras loss for it: only the
    # pipeline's metrics are compared.)
    names = {"example_count", "auc", "binary_accuracy", "precision", "recall", "mean_label", "mean_prediction"}
    for model_name in ("candidate", "baseline"):
        first, second = _metrics(label_alone, model_name), _metrics(mixed, model_name)
        first = {key: value for key, value in first.items() if key[1] in names}
        assert {name for _, name in first} == names
        for key, value in first.items():
            # TFMA batches the trips differently each run, and the model's float32 answer to a trip
            # can move in its last bit with the batch it is in (about 1e-8 on a mean prediction).
            assert (math.isnan(value) and math.isnan(second[key])) or value == pytest.approx(second[key], rel=1e-6, abs=1e-6), (model_name, key)


def test_a_signature_called_positionally_is_called_by_its_keyword(small_pipeline_run):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    loaded = tf.saved_model.load(os.path.join(_newest(pipeline_root, TRAINER, "model"), "Format-Serving"))
    examples_uri = _newest(pipeline_root, EXAMPLE_GEN, "examples")
    files = glob.glob(os.path.join(examples_uri, f"Split-{configs.EVAL_SPLIT}", "*"))
    batch = tf.constant([record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(64)])
    for name in (signatures.SERVING_TF_EXAMPLE, signatures.TRANSFORM_LABEL):
        found = evaluator.keyword_callable(loaded, name)
        assert isinstance(found, evaluator.KeywordCall)
        assert found.structured_input_signature == loaded.signatures[name].structured_input_signature
        by_keyword = loaded.signatures[name](examples=batch)
        for key, value in found(batch).items():
            assert value.numpy().tolist() == by_keyword[key].numpy().tolist()
    # Anything but a signature of one keyword-only input is TFMA's own answer.
    assert evaluator.keyword_callable(loaded, "no such signature", required=False) is None


def test_keyword_calls_change_no_metric(small_pipeline_run, tmp_path, monkeypatch):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    examples_uri = _newest(pipeline_root, EXAMPLE_GEN, "examples")
    model_uri = _newest(pipeline_root, TRAINER, "model")
    calls = []

    def counted(model, signature_name=None, required=True):
        found = evaluator.keyword_callable(model, signature_name, required)
        calls.append(type(found).__name__)
        return found

    # TFMA as it is: the executor installs the keyword lookup, so this run undoes it first.
    monkeypatch.setattr(evaluator, "call_signatures_by_keyword", lambda: None)
    monkeypatch.setattr(model_util, "get_callable", evaluator._TFMA_GET_CALLABLE)
    positional = _evaluate(examples_uri, model_uri, model_uri, tmp_path / "positional")
    installed_by = []

    def install():
        installed_by.append(sys._getframe(1).f_code.co_name)
        model_util.get_callable = counted

    monkeypatch.setattr(evaluator, "call_signatures_by_keyword", install)
    keyword = _evaluate(examples_uri, model_uri, model_uri, tmp_path / "keyword")
    # TFMA looked its signatures up through the keyword lookup and got keyword calls. The lookup
    # was installed by the executor and by the model loaders TFX's Evaluator built with
    # `keyword_eval_shared_model`.
    assert "KeywordCall" in calls
    assert {"Do", "__call__"} <= set(installed_by)
    for model_name in ("candidate", "baseline"):
        first, second = _metrics(positional, model_name), _metrics(keyword, model_name)
        assert first.keys() == second.keys() and len(first) > 10
        for key, value in first.items():
            # The model's float32 answer to a trip can move in its last bit with its batch.
            assert (math.isnan(value) and math.isnan(second[key])) or value == pytest.approx(second[key], rel=1e-6, abs=1e-6), (model_name, key)


def test_a_worker_process_that_loads_a_model_calls_its_signatures_by_keyword(small_pipeline_run, tmp_path):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    model_dir = os.path.join(_newest(pipeline_root, TRAINER, "model"), "Format-Serving")
    shared = evaluator_models.keyword_eval_shared_model(
        eval_saved_model_path=model_dir, model_name="", eval_config=make_eval_config(configs.BlessingThresholds())
    )
    pickled = tmp_path / "model_loader.pickle"
    pickled.write_bytes(pickler.dumps(shared.model_loader))
    # A fresh process, as a Beam worker in another process is: it unpickles the model loader
    # with the pipeline, and TFMA's lookup is its own until the loader loads the model.
    script = (
        "import sys\n"
        "from apache_beam.internal import pickler\n"
        "from tensorflow_model_analysis.utils import model_util\n"
        "loader = pickler.loads(open(sys.argv[1], 'rb').read())\n"
        "print(model_util.get_callable.__module__)\n"
        "model = loader.load()\n"
        "print(model_util.get_callable.__module__)\n"
        "print(type(model_util.get_callable(model, sys.argv[2])).__name__)\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    worker = subprocess.run(
        [sys.executable, "-c", script, str(pickled), signatures.SERVING_TF_EXAMPLE], capture_output=True, text=True, env=environment, timeout=300
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert worker.stdout.split() == [model_util.__name__, evaluator.__name__, evaluator.KeywordCall.__name__]


def test_the_cut_schema_changes_no_metric(small_pipeline_run, tmp_path):
    pipeline_root = small_pipeline_run["output_dir"] / "pipeline_root"
    examples_uri = _newest(pipeline_root, EXAMPLE_GEN, "examples")
    model_uri = _newest(pipeline_root, TRAINER, "model")
    schema_uri = _newest(pipeline_root, SCHEMA_GEN, "schema")
    whole = _evaluate(examples_uri, model_uri, model_uri, tmp_path / "whole")
    cut = _evaluate(examples_uri, model_uri, model_uri, tmp_path / "cut", schema_uri)
    # The executor handed TFX's Evaluator the slicing features alone.
    (written,) = glob.glob(str(tmp_path / "cut" / "tmp" / "**" / "evaluated_schema" / "schema.pbtxt"), recursive=True)
    with open(written) as schema_file:
        decoded = text_format.Parse(schema_file.read(), schema_pb2.Schema())
    assert sorted(feature.name for feature in decoded.feature) == sorted(features.SLICE_FEATURE_KEYS)
    for model_name in ("candidate", "baseline"):
        first, second = _metrics(whole, model_name), _metrics(cut, model_name)
        # Every slice of every slicing feature is still there, with the same values.
        assert first.keys() == second.keys()
        assert {key for slice_key, _ in first for key, _ in slice_key} == set(features.SLICE_FEATURE_KEYS)
        for key, value in first.items():
            # The model's float32 answer to a trip can move in its last bit with its batch.
            assert (math.isnan(value) and math.isnan(second[key])) or value == pytest.approx(second[key], rel=1e-6, abs=1e-6), (model_name, key)
