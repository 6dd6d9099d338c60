"""run_fn with warm start on, on the shared small run's Transform output and pushed model."""
import logging
import os
import shutil

import pytest

from modules.warm_start import RECORD_FILE, WARM_START_KEY, WARM_START_STEPS_KEY, read_record
from pipeline import component_ids, configs

pytestmark = pytest.mark.slow


def _trainer_inputs(connection):
    """The shared run's Trainer inputs as TFX artifacts, by input key."""
    from tfx.orchestration import metadata
    from tfx.types import artifact_utils

    from pipeline.ops import lineage

    with metadata.Metadata(connection) as handler:
        store = handler.store
        context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_ids.TRAINER}")
        trainer = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
        inputs = lineage.MetadataGraph(store, configs.PIPELINE_NAME).inputs(trainer.id)
        types = {artifact_type.id: artifact_type for artifact_type in store.get_artifact_types()}
        return {key: [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts] for key, artifacts in inputs.items()}


def _fn_args(small_pipeline_run, tmp_path, base_model: str):
    from tfx.components.trainer import fn_args_utils

    fn_args = fn_args_utils.get_common_fn_args(
        _trainer_inputs(small_pipeline_run["connection"]),
        {
            "train_args": '{"num_steps": 7}',
            "eval_args": '{"num_steps": 1}',
            "custom_config": f'{{"{WARM_START_KEY}": true, "{WARM_START_STEPS_KEY}": 3}}',
        },
    )
    fn_args.base_model = base_model
    fn_args.serving_model_dir = str(tmp_path / "model" / "Format-Serving")
    return fn_args


def test_a_base_model_whose_vocabulary_cannot_be_matched_trains_from_scratch_and_says_why(small_pipeline_run, tmp_path, caplog):
    from modules.train import run_fn

    serving_dir = small_pipeline_run["serving_model_dir"]
    base = tmp_path / "base"
    shutil.copytree(serving_dir / sorted(os.listdir(serving_dir))[-1], base)
    # One token more than the embedding has rows for (as a model made with another number of
    # out-of-vocabulary buckets would have): which company each row stands for is not known.
    with open(base / "assets" / "company_vocabulary", "a") as vocabulary:
        vocabulary.write("Imaginary Cab Co\n")
    with caplog.at_level(logging.INFO, logger="modules.train"):
        run_fn(_fn_args(small_pipeline_run, tmp_path, str(base)))
    record = read_record(str(tmp_path / "model"))
    assert record.requested and not record.warm_started
    assert record.base_model == str(base)
    assert record.reason.startswith("the serving model's layers do not fit this model: company_xf_embedding: the base model's embedding has")
    assert record.train_steps == 7  # from scratch: the full steps
    assert "NOT warm-started, training from scratch" in caplog.text and "company_xf_embedding" in caplog.text
    assert (tmp_path / "model" / "Format-Serving" / "saved_model.pb").exists()


def test_the_serving_model_of_the_same_data_warm_starts_every_layer(small_pipeline_run, tmp_path):
    from modules.train import run_fn

    serving_dir = small_pipeline_run["serving_model_dir"]
    base = str(serving_dir / sorted(os.listdir(serving_dir))[-1])
    run_fn(_fn_args(small_pipeline_run, tmp_path, base))
    record = read_record(str(tmp_path / "model"))
    assert record.warm_started and record.reason == "" and record.train_steps == 3
    assert record.layers["hidden_0"] == "copied"
    assert record.layers["company_xf_embedding"].startswith("copied: the same vocabulary")
    assert os.path.exists(tmp_path / "model" / RECORD_FILE)
