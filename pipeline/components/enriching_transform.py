"""EnrichingTransform: TFX's Transform with the external tables as one more input.

Its executor passes the ExternalTables artifact's files to `preprocessing_fn`, which bakes the
join into the graph, so training and serving join the same table snapshot.
"""
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.transform import executor as transform_executor
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from modules.autograph import leave_libraries_unconverted
from pipeline.components.artifacts import EXTERNAL_TABLES_KEY, ExternalTables, table_file, table_records
from pipeline.validation.table_sources import preprocessing_config


class EnrichingTransformSpec(standard_component_specs.TransformSpec):
    """TFX's TransformSpec with the external tables as one more input."""

    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        EXTERNAL_TABLES_KEY: ChannelParameter(type=ExternalTables),
    }


class EnrichingTransformExecutor(transform_executor.Executor):
    """TFX's Transform executor; first puts the tables' files into `preprocessing_fn`'s custom_config."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Runs TFX's Transform with the tables' files in `preprocessing_fn`'s custom_config."""
        leave_libraries_unconverted()
        input_dict = dict(input_dict)
        tables_artifact = input_dict.pop(EXTERNAL_TABLES_KEY)[0]
        config_key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom_config = json_utils.loads(exec_properties.get(config_key) or "null") or {}
        custom_config.update(
            preprocessing_config({name: table_file(tables_artifact.uri, name) for name in table_records(tables_artifact)})
        )
        super().Do(input_dict, output_dict, {**exec_properties, config_key: json_utils.dumps(custom_config)})


class EnrichingTransform(Transform):
    """Transform whose `preprocessing_fn` joins the external tables of an ExternalTableGen.

    Writes the transform graph only, like TFX's Transform with `materialize=False`: no
    transformed examples and no pre- or post-transform statistics (StatisticsGen already has
    the raw data's). The Trainer, the Tuner and the ModelGate apply the graph to the raw
    examples as they read them, so a trip is transformed where it is used and nothing is
    written and read back for it.
    """

    SPEC_CLASS = EnrichingTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EnrichingTransformExecutor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        external_tables: types.BaseChannel,
        preprocessing_fn: str,
        custom_config: Optional[Dict] = None,
    ) -> None:
        """Builds the component.

        Args:
            examples: Raw examples.
            schema: The raw data's schema.
            external_tables: An ExternalTableGen's `tables` output.
            preprocessing_fn: Dotted path of a `preprocessing_fn(inputs, custom_config)`.
            custom_config: Passed to `preprocessing_fn`, with the tables' files added at run time
                under `modules.external.TABLES_CONFIG_KEY`.
        """
        artifact = standard_artifacts
        spec = EnrichingTransformSpec(
            examples=examples,
            schema=schema,
            external_tables=external_tables,
            preprocessing_fn=preprocessing_fn,
            custom_config=json_utils.dumps(custom_config or {}),
            force_tf_compat_v1=0,
            # Pre-transform statistics would repeat StatisticsGen's, and nothing here reads the
            # post-transform ones: skipping both saves 2 to 4 s of every run.
            disable_statistics=1,
            transform_graph=types.Channel(type=artifact.TransformGraph),
            # No transformed_examples: at 200,000 trips, writing every transformed trip took
            # about 40 % of Transform's time (docs/scale.md), and the Trainer reads only
            # train_steps batches of the train split.
            updated_analyzer_cache=types.Channel(type=artifact.TransformCache),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
