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
TRAINER = "Trainer"
MODEL_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
SERVING_CHECK = "ServingCheck"
PUSHER = "Pusher"
