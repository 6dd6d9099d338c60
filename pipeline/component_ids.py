"""The ids of the pipeline's nodes (`pipeline.dag`), as ML Metadata records them.

A file of its own, with no imports, so the tools that read a run (`pipeline.ops`) name a
component without loading the DAG's libraries (TFMA, TFDV, Beam).
"""

EXAMPLE_GEN = "CsvExampleGen"
EXTERNAL_TABLE_GEN = "ExternalTableGen"
EXTERNAL_FEATURE_CHECK = "ExternalFeatureCheck"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
DATA_GATE = "DataGate"
DRIFT_CHECK = "SpanDriftCheck"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
# The Evaluator's baseline: the serving model (pipeline.components.serving_baseline).
MODEL_RESOLVER = "baseline_model_resolver"
EVALUATOR = "Evaluator"
# The newest span alone, read and scored again (pipeline.dag).
NEWEST_SPAN_EXAMPLE_GEN = "NewestSpanExampleGen"
NEWEST_SPAN_EVALUATOR = "NewestSpanEvaluator"
# What a model that learned nothing scores on the eval split, read by the ModelGate.
TRIVIAL_BASELINES = "TrivialBaselines"
MODEL_GATE = "ModelGate"
SERVING_CHECK = "ServingCheck"
PUSHER = "Pusher"
