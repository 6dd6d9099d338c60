"""`create_pipeline(...)`: the one definition of the pipeline every orchestrator runs."""
import dataclasses
import json
from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2
# TFX's own modules rather than `tfx.v1`: importing `tfx.v1` also imports its Google Cloud
# extensions (the Vertex AI SDK, BigQuery), about 2.7 s of every run's start-up.
from tfx.components import Evaluator, ExampleValidator, Pusher, Trainer, Tuner
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.utils import proto_utils

from modules.warm_start import WARM_START_KEY, WARM_START_STEPS_KEY
from pipeline import configs
from pipeline.component_ids import (
    DATA_GATE,
    DRIFT_CHECK,
    EVALUATOR,
    EXAMPLE_GEN,
    EXAMPLE_VALIDATOR,
    EXTERNAL_FEATURE_CHECK,
    EXTERNAL_TABLE_GEN,
    MODEL_GATE,
    MODEL_RESOLVER,
    NEWEST_SPAN_EVALUATOR,
    NEWEST_SPAN_EXAMPLE_GEN,
    PUSHER,
    SCHEMA_GEN,
    SERVING_CHECK,
    STATISTICS_GEN,
    TRAINER,
    TRANSFORM,
    TRIVIAL_BASELINES,
    TUNER,
)
from pipeline.components import example_gen, pusher, serving_baseline
from pipeline.components.artifacts import GATE_BLESSING_KEY
from pipeline.components.curated_schema import ImportCuratedSchema
from pipeline.components.data_gate import DataGate
from pipeline.components.drift_check import SpanDriftCheck
from pipeline.components.enriching_transform import EnrichingTransform
from pipeline.components.evaluator import reads_the_label_alone
from pipeline.components.external_check import ExternalFeatureCheck
from pipeline.components.external_table_gen import ExternalTableGen
from pipeline.components.model_gate import ModelGate
from pipeline.components.serving_check import ServingCheck
from pipeline.components.trivial_baselines import TrivialBaselines
from pipeline.components.window_statistics import WindowStatisticsGen
from pipeline.eval_config import make_eval_config, make_newest_span_eval_config
from pipeline.validation.acceptance import acceptances_json
from pipeline.validation.table_sources import check_sources, sources_json

# Key of the project's code fingerprint in the custom_config of components that take one.
CODE_FINGERPRINT_KEY = example_gen.CODE_FINGERPRINT_KEY


def example_split_config(options: configs.PipelineOptions) -> example_gen_pb2.Output:
    """ExampleGen's train and eval splits, by hash buckets of each serialized example."""
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name=configs.TRAIN_SPLIT, hash_buckets=options.train_buckets),
                example_gen_pb2.SplitConfig.Split(name=configs.EVAL_SPLIT, hash_buckets=options.eval_buckets),
            ]
        )
    )


def make_example_gen(
    data_root: str, spans: List[int], options: configs.PipelineOptions, span_examples_dir: str = "", source_hashes_dir: str = ""
) -> FileBasedExampleGen:
    """Returns the ExampleGen of spans: rows typed by the curated schema, split into train and
    eval by hash of each example, so a trip falls in the same split whichever window reads it.
    With span_examples_dir, each span is read once and its examples kept there for later runs;
    with source_hashes_dir, each span file is hashed again only when it changed."""
    return FileBasedExampleGen(
        input_base=data_root,
        input_config=example_gen_pb2.Input(
            splits=[
                example_gen_pb2.Input.Split(name="single_split", pattern=configs.SPAN_FILES_GLOB)
            ]
        ),
        output_config=example_split_config(options),
        custom_config=example_gen.span_window_config(
            spans[0],
            spans[-1],
            options.schema_path or configs.CURATED_SCHEMA_PATH,
            options.code_fingerprint,
            span_examples_dir=span_examples_dir,
            source_hashes_dir=source_hashes_dir,
        ),
        custom_executor_spec=executor_spec.BeamExecutorSpec(example_gen.Executor),
    ).with_id(EXAMPLE_GEN)


def make_transform(
    examples: Channel, schema: Channel, external_tables: Channel, options: configs.PipelineOptions, pipeline_root: str
) -> EnrichingTransform:
    """Returns the Transform of the window's examples, joining the external tables; with spans
    of `options.analyzer_cache_min_span_mib` or more, each kept span's analysis is cached in
    `<pipeline_root>/TransformCache` from run to run."""
    return EnrichingTransform(
        examples=examples,
        schema=schema,
        external_tables=external_tables,
        preprocessing_fn=configs.PREPROCESSING_FN,
        # The executor joining the external tables is the project's code.
        custom_config={"module_fingerprint": options.module_fingerprint, CODE_FINGERPRINT_KEY: options.code_fingerprint},
        analyzer_cache_dir=f"{pipeline_root.rstrip('/')}/{configs.TRANSFORM_CACHE_FOLDER}",
        analyzer_cache_min_span_bytes=int(options.analyzer_cache_min_span_mib * 2**20),
    ).with_id(TRANSFORM)


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    spans: List[int],
    serving_model_dir: str,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig],
    options: configs.PipelineOptions = configs.PipelineOptions(),
    beam_pipeline_args: Optional[List[str]] = None,
) -> Pipeline:
    """Builds the taxi pipeline, from CSV spans to a pushed, blessed model.

    Args:
        pipeline_name: Name recorded in ML Metadata.
        pipeline_root: Where components write their artifacts.
        data_root: Folder of `span-<N>/` folders of CSV files.
        spans: The span numbers to train on (consecutive, ascending), e.g. from
            `pipeline.spans.window(...)`.
        serving_model_dir: Where Pusher writes numbered versions for TF Serving.
        metadata_connection_config: ML Metadata connection (None lets the orchestrator choose).
        options: Steps, thresholds, window and hyperparameters.
        beam_pipeline_args: Beam options for the Beam-powered components.

    Returns:
        The pipeline, ready for any TFX orchestrator.

    Raises:
        ValueError: when `spans` is empty or not consecutive, or `options.external_tables`
            does not name each table the model joins exactly once.
    """
    if not spans or list(spans) != list(range(spans[0], spans[0] + len(spans))):
        raise ValueError(f"spans must be a non-empty run of consecutive numbers, got {spans}")
    check_sources(options.external_tables)
    components = []

    # Each span's examples are written once and kept here; every window's artifact links them.
    # A span file's SHA-256, which names its kept examples, is kept too, beside the file's size
    # and times: a run hashes only the files that changed.
    span_examples_dir = f"{pipeline_root.rstrip('/')}/{configs.SPAN_EXAMPLES_FOLDER}"
    source_hashes_dir = f"{pipeline_root.rstrip('/')}/{configs.SOURCE_HASHES_FOLDER}"
    example_gen = make_example_gen(data_root, spans, options, span_examples_dir, source_hashes_dir)
    components.append(example_gen)

    schema_gen = ImportCuratedSchema(
        schema_file=options.schema_path or configs.CURATED_SCHEMA_PATH, code_fingerprint=options.code_fingerprint
    ).with_id(SCHEMA_GEN)
    components.append(schema_gen)

    # Each span's statistics, per split, are computed once and kept here for the runs whose
    # window holds it: the drift check computes what a new span adds, StatisticsGen merges.
    # The external-table check keeps each span's joined-column results here too.
    span_statistics_dir = f"{pipeline_root.rstrip('/')}/{configs.SPAN_STATISTICS_FOLDER}"
    split_config = proto_utils.proto_to_json(example_split_config(options))
    drift_check = SpanDriftCheck(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        drift_config=options.drift.to_json(),
        split_config=split_config,
        code_fingerprint=options.code_fingerprint,
        span_statistics_dir=span_statistics_dir,
    ).with_id(DRIFT_CHECK)
    components.append(drift_check)

    statistics_gen = WindowStatisticsGen(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        split_config=split_config,
        code_fingerprint=options.code_fingerprint,
        span_statistics_dir=span_statistics_dir,
    ).with_id(STATISTICS_GEN)
    statistics_gen.add_upstream_node(drift_check)
    components.append(statistics_gen)

    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR)
    components.append(example_validator)

    external_table_gen = ExternalTableGen(
        sources=sources_json(options.external_tables), code_fingerprint=options.code_fingerprint
    ).with_id(EXTERNAL_TABLE_GEN)
    components.append(external_table_gen)

    external_check = ExternalFeatureCheck(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        external_tables=external_table_gen.outputs["tables"],
        drift_config=options.drift.to_json(),
        code_fingerprint=options.code_fingerprint,
        span_statistics_dir=span_statistics_dir,
    ).with_id(EXTERNAL_FEATURE_CHECK)
    components.append(external_check)

    # Schema anomalies are judged first: a span that breaks the schema is refused as such.
    data_gate = DataGate(
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        drift_report=drift_check.outputs["drift_report"],
        external_report=external_check.outputs["report"],
        accepted_spans=acceptances_json(options.acceptances),
        code_fingerprint=options.code_fingerprint,
    ).with_id(DATA_GATE)
    components.append(data_gate)

    code_config = {"module_fingerprint": options.module_fingerprint}
    transform = make_transform(
        example_gen.outputs["examples"], schema_gen.outputs["schema"], external_table_gen.outputs["tables"], options, pipeline_root
    )
    transform.add_upstream_node(data_gate)
    components.append(transform)

    best_hyperparameters = None
    if options.tune:
        tuner = Tuner(
            tuner_fn=configs.TUNER_FN,
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(num_steps=options.train_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=options.eval_steps),
            custom_config={**options.hyperparameters, **code_config, "max_trials": options.tune_trials},
        ).with_id(TUNER)
        components.append(tuner)
        best_hyperparameters = tuner.outputs["best_hyperparameters"]

    # The model that serves: the Evaluators' baseline, and the Trainer's start with warm start on.
    if options.baseline == configs.BASELINE_SERVING:
        model_resolver = Resolver(
            strategy_class=serving_baseline.ServingModelStrategy,
            config={"serving_model_dir": serving_model_dir, "model_name": configs.SERVING_MODEL_NAME},
            model=Channel(type=standard_artifacts.Model),
            pushed_model=Channel(type=standard_artifacts.PushedModel),
        ).with_id(MODEL_RESOLVER)
    else:
        model_resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(MODEL_RESOLVER)
    components.append(model_resolver)

    warm_start_config = (
        {WARM_START_KEY: True, WARM_START_STEPS_KEY: options.warm_start_steps} if options.warm_start else {}
    )
    trainer = Trainer(
        run_fn=configs.RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=best_hyperparameters,
        # Empty when nothing serves yet; the Trainer then trains from scratch.
        base_model=model_resolver.outputs["model"] if options.warm_start else None,
        train_args=trainer_pb2.TrainArgs(num_steps=options.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=options.eval_steps),
        custom_config={**options.hyperparameters, **code_config, **warm_start_config},
    ).with_id(TRAINER)
    components.append(trainer)

    # The baselines read the examples and the Transform graph, not the model: they are counted
    # while the Trainer trains.
    trivial_baselines = TrivialBaselines(
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        code_fingerprint=options.code_fingerprint,
    ).with_id(TRIVIAL_BASELINES)
    components.append(trivial_baselines)

    evaluator = reads_the_label_alone(
        Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=model_resolver.outputs["model"],
            schema=schema_gen.outputs["schema"],
            eval_config=make_eval_config(options.thresholds),
        ).with_id(EVALUATOR)
    )
    components.append(evaluator)

    newest_span_evaluation = None
    # A one-span window's eval split is the newest span's eval trips: the gate judges the
    # newest-span limits on the Evaluator's metrics instead of scoring the same trips again.
    newest_span_is_window = options.newest_span_check and len(spans) == 1
    if options.newest_span_check and not newest_span_is_window:
        # The newest span's eval trips are the same trips as in the window's eval split (the split
        # hashes each example), scored again alone: the traffic the model serves next.
        newest_span_example_gen = make_example_gen(data_root, [spans[-1]], options, span_examples_dir, source_hashes_dir).with_id(NEWEST_SPAN_EXAMPLE_GEN)
        # After the window's ExampleGen, it links the newest span's kept examples; nothing
        # waits for it before the Trainer has trained.
        newest_span_example_gen.add_upstream_node(example_gen)
        components.append(newest_span_example_gen)
        newest_span_evaluator = reads_the_label_alone(
            Evaluator(
                examples=newest_span_example_gen.outputs["examples"],
                example_splits=[configs.EVAL_SPLIT],
                model=trainer.outputs["model"],
                baseline_model=model_resolver.outputs["model"],
                schema=schema_gen.outputs["schema"],
                eval_config=make_newest_span_eval_config(options.thresholds),
            ).with_id(NEWEST_SPAN_EVALUATOR)
        )
        components.append(newest_span_evaluator)
        newest_span_evaluation = newest_span_evaluator.outputs["evaluation"]

    model_gate = ModelGate(
        model=trainer.outputs["model"],
        baselines=trivial_baselines.outputs["baselines"],
        evaluation=evaluator.outputs["evaluation"],
        newest_span_evaluation=newest_span_evaluation,
        newest_span_is_window=int(newest_span_is_window),
        thresholds=json.dumps(dataclasses.asdict(options.thresholds), sort_keys=True),
        code_fingerprint=options.code_fingerprint,
    ).with_id(MODEL_GATE)
    components.append(model_gate)

    serving_check = ServingCheck(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"], code_fingerprint=options.code_fingerprint
    ).with_id(SERVING_CHECK)
    components.append(serving_check)

    model_pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=model_gate.outputs[GATE_BLESSING_KEY],
        infra_blessing=serving_check.outputs["infra_blessing"],
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher.Executor),
        custom_config={CODE_FINGERPRINT_KEY: options.code_fingerprint},
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    ).with_id(PUSHER)
    components.append(model_pusher)

    return Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
