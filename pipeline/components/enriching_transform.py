"""EnrichingTransform: TFX's Transform with the external tables as one more input, and the
window's analysis cached per span.

Its executor passes the ExternalTables artifact's files to `preprocessing_fn`, which bakes the
join into the graph, so training and serving join the same table snapshot.

With an analyzer cache folder (`analyzer_cache_dir`, `<pipeline_root>/TransformCache`) and a
window whose Examples artifact records its kept span examples (`pipeline.components.example_gen`),
the executor gives TFX's Transform each span's kept entry as an Examples artifact of its own
instead of the window's one. TFX's Transform then analyzes each span as a dataset of its own,
keyed by the entry's folder (which names the span's content), and TFT's analyzer cache holds
each dataset's accumulators. The cache of every span analyzed so far is kept in the folder, and
each run starts from it, so a window's analysis computes only its new spans and merges the rest
from the cache. The files are the ones the window's artifact links, byte for byte.
"""
import json
import logging
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tfx
from tfx import types
from tfx.components.transform import executor as transform_executor
from tfx.components.transform.component import Transform
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils

from modules.autograph import leave_libraries_unconverted
from pipeline.components.artifacts import (
    EXTERNAL_TABLES_KEY,
    SPAN_EXAMPLES_DIR_PROPERTY,
    SPAN_EXAMPLES_PROPERTY,
    ExternalTables,
    table_file,
    table_records,
)
from pipeline.components.example_gen import SpanExamplesStore, split_folder_name
from pipeline.validation.table_sources import preprocessing_config

logger = logging.getLogger(__name__)

# Execution properties: the folder where the analyzer cache is kept from run to run, and the
# bytes of examples a window's spans must hold on average to be analyzed one by one.
ANALYZER_CACHE_DIR_KEY = "analyzer_cache_dir"
ANALYZER_CACHE_MIN_SPAN_BYTES_KEY = "analyzer_cache_min_span_bytes"
# TFT writes each dataset's cache entries, then this file, in the dataset's folder.
_TFT_MANIFEST = "MANIFEST"


class EnrichingTransformSpec(standard_component_specs.TransformSpec):
    """TFX's TransformSpec with the external tables as one more input."""

    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        EXTERNAL_TABLES_KEY: ChannelParameter(type=ExternalTables),
    }
    PARAMETERS = {
        **standard_component_specs.TransformSpec.PARAMETERS,
        ANALYZER_CACHE_DIR_KEY: ExecutionParameter(type=str, optional=True),
        ANALYZER_CACHE_MIN_SPAN_BYTES_KEY: ExecutionParameter(type=int, optional=True),
    }


class EnrichingTransformExecutor(transform_executor.Executor):
    """TFX's Transform executor; first puts the tables' files into `preprocessing_fn`'s custom_config."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Runs TFX's Transform with the tables' files in `preprocessing_fn`'s custom_config and,
        with an analyzer cache folder, each kept span as a dataset whose analysis is cached."""
        leave_libraries_unconverted()
        input_dict = dict(input_dict)
        tables_artifact = input_dict.pop(EXTERNAL_TABLES_KEY)[0]
        config_key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom_config = json_utils.loads(exec_properties.get(config_key) or "null") or {}
        custom_config.update(
            preprocessing_config({name: table_file(tables_artifact.uri, name) for name in table_records(tables_artifact)})
        )
        cache_dir = exec_properties.get(ANALYZER_CACHE_DIR_KEY) or ""
        min_span_bytes = int(exec_properties.get(ANALYZER_CACHE_MIN_SPAN_BYTES_KEY) or 0)
        parts = span_datasets(input_dict[standard_component_specs.EXAMPLES_KEY], min_span_bytes) if cache_dir else None
        kept_cache = None
        if parts:
            input_dict[standard_component_specs.EXAMPLES_KEY] = parts
            kept_cache = os.path.join(cache_dir, cache_version())
            if tf.io.gfile.isdir(kept_cache) and tf.io.gfile.listdir(kept_cache):
                cache = standard_artifacts.TransformCache()
                cache.uri = kept_cache
                input_dict[standard_component_specs.ANALYZER_CACHE_KEY] = [cache]
            logger.info("Analyzing %d span(s) as datasets of their own, with the analyzer cache kept in %s.", len(parts), kept_cache)
        super().Do(input_dict, output_dict, {**exec_properties, config_key: json_utils.dumps(custom_config)})
        updated = output_dict.get(standard_component_specs.UPDATED_ANALYZER_CACHE_KEY)
        if kept_cache and updated:
            keep_cache(artifact_utils.get_single_uri(updated), kept_cache)


def cache_version() -> str:
    """The kept cache's subfolder: the versions of the libraries that write and read it, so
    another version never reads entries it did not write."""
    return f"tft-{tft.__version__}-tfx-{tfx.__version__}-tf-{tf.__version__}"


def span_datasets(examples: List[types.Artifact], min_span_bytes: int = 0) -> Optional[List[types.Artifact]]:
    """The window's kept span entries as Examples artifacts of their own, spans ascending; None
    (the window is analyzed as one dataset) when the window is not one artifact recording its
    kept span examples, an entry is no longer complete (logged), or the entries hold fewer than
    min_span_bytes of examples on average: each dataset adds Beam stages of its own (reading its
    cache, merging it), which on small spans cost more than analyzing their trips again."""
    if len(examples) != 1:
        return None
    window = examples[0]
    recorded = window.get_string_custom_property(SPAN_EXAMPLES_PROPERTY)
    folder = window.get_string_custom_property(SPAN_EXAMPLES_DIR_PROPERTY)
    if not recorded or not folder:
        return None
    store = SpanExamplesStore(folder)
    parts = []
    total_bytes = 0
    for span, by_split in sorted(json.loads(recorded).items(), key=lambda item: int(item[0])):
        for _, entry in sorted(by_split.items()):
            files = store.files(entry["key"])
            if files is None:
                logger.warning("The kept examples of span %s are incomplete: the window is analyzed as one dataset, without the cache.", span)
                return None
            total_bytes += sum(
                tf.io.gfile.stat(os.path.join(store.entry(entry["key"]), split_folder_name(split), name)).length
                for split, names in files.items()
                for name in names
            )
            part = standard_artifacts.Examples()
            part.uri = store.entry(entry["key"])
            part.split_names = window.split_names
            examples_utils.set_payload_format(part, examples_utils.get_payload_format(window))
            examples_utils.set_file_format(part, examples_utils.get_file_format(window))
            parts.append(part)
    if total_bytes < min_span_bytes * len(parts):
        logger.info(
            "The window's spans hold %.1f MiB of examples on average, under %.1f MiB: the window is analyzed as one dataset.",
            total_bytes / len(parts) / 2**20,
            min_span_bytes / 2**20,
        )
        return None
    return parts


def keep_cache(updated: str, kept: str) -> None:
    """Copies the run's analyzer cache (TFX's Transform writes in it the window's datasets, those
    read from the kept cache and those computed) into the kept folder; in each dataset's folder
    TFT's manifest is copied last, so a reader never finds it naming an entry not yet there."""
    if not tf.io.gfile.isdir(updated):
        return
    for dataset in tf.io.gfile.listdir(updated):
        source = os.path.join(updated, dataset.rstrip("/"))
        if not tf.io.gfile.isdir(source):
            continue
        target = os.path.join(kept, dataset.rstrip("/"))
        tf.io.gfile.makedirs(target)
        names = sorted(name for name in tf.io.gfile.listdir(source) if not tf.io.gfile.isdir(os.path.join(source, name)))
        for name in sorted(names, key=lambda name: name == _TFT_MANIFEST):
            tf.io.gfile.copy(os.path.join(source, name), os.path.join(target, name), overwrite=True)


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
        analyzer_cache_dir: str = "",
        analyzer_cache_min_span_bytes: int = 0,
    ) -> None:
        """Builds the component.

        Args:
            examples: Raw examples.
            schema: The raw data's schema.
            external_tables: An ExternalTableGen's `tables` output.
            preprocessing_fn: Dotted path of a `preprocessing_fn(inputs, custom_config)`.
            custom_config: Passed to `preprocessing_fn`, with the tables' files added at run time
                under `modules.external.TABLES_CONFIG_KEY`.
            analyzer_cache_dir: Where the analyzer cache of each kept span is kept from run to
                run (`<pipeline_root>/TransformCache`); empty: the window is analyzed whole.
            analyzer_cache_min_span_bytes: The bytes of examples a window's kept spans must
                hold on average to be analyzed one by one with the cache; below, the window is
                analyzed whole.
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
            analyzer_cache_dir=analyzer_cache_dir,
            analyzer_cache_min_span_bytes=analyzer_cache_min_span_bytes,
        )
        base_component.BaseComponent.__init__(self, spec=spec)
