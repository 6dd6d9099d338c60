"""WindowStatisticsGen: the window's statistics per split, merged from statistics kept per span.

The pipeline's StatisticsGen step (id `StatisticsGen`, output `statistics`, laid out as TFX's
StatisticsGen lays it out: `Split-<split>/FeatureStats.pb`, read by ExampleValidator, the run
report and `pipeline.ops.skew`). TFX's StatisticsGen reads every trip of the window each run;
this one merges the statistics of each span's trips in each split, computed once and kept in
the pipeline root (`pipeline.validation.span_statistics`). It runs after the drift check,
which computes and keeps what a new span adds; a span nothing keeps is computed here, from the
span files in ExampleGen's ranges, in the component's Beam pipeline.

Each trip's split is the window ExampleGen's (its hash buckets, from `split_config`), computed
on the same serialized tf.Example ExampleGen writes, so the statistics of a split are those of
the examples in that split. Types come from the curated schema, as ExampleGen types the cells.
"""
import json
import os

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from pipeline.components import example_gen
from pipeline.components.artifacts import SPAN_FILES_PROPERTY, SPAN_STATISTICS_PROPERTY, span_fingerprints
from pipeline.components.curated_schema import SCHEMA_FILE_NAME
from pipeline.validation import span_statistics

# TFX's StatisticsGen's file name in each split's folder (tfx.components.statistics_gen.executor).
STATISTICS_FILE = "FeatureStats.pb"


@component(use_beam=True)
def WindowStatisticsGen(
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
    split_config: Parameter[str],
    code_fingerprint: Parameter[str] = "",
    span_statistics_dir: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Writes the window's statistics of each split of `examples` (see the module docstring).

    `split_config` is the window ExampleGen's output config (JSON); `span_statistics_dir` the
    folder of kept span statistics (empty: every span computed here), under keys salted with
    the fingerprint of the code that computes them (`example_gen.split_statistics_salt`);
    `code_fingerprint` part of the cache key.

    Raises:
        ValueError: when `examples` records no span files, or its splits are not the config's.
    """
    del code_fingerprint  # part of the cache key only
    fingerprints = span_fingerprints(examples.get_string_custom_property(SPAN_FILES_PROPERTY))
    if not fingerprints:
        raise ValueError(f"the Examples artifact {examples.uri} records no span files ({SPAN_FILES_PROPERTY})")
    parts = example_gen.split_parts(split_config)
    splits = artifact_utils.decode_split_names(examples.split_names)
    if sorted(splits) != sorted(parts.names):
        raise ValueError(f"the Examples artifact {examples.uri} has splits {splits}; the split config names {list(parts.names)}")
    schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE_NAME))
    options = span_statistics.statistics_options(schema_proto)
    span_files = {span: list(files) for span, files in fingerprints.items()}
    partials = span_statistics.span_partials(
        span_files,
        span_statistics.window_header(span_files),
        schema_proto,
        options,
        span_statistics.SpanStatisticsStore(span_statistics_dir) if span_statistics_dir else None,
        example_gen.split_statistics_salt(),
        {path: sha for files in fingerprints.values() for path, sha in files.items()},
        beam_pipeline,
        parts,
    )
    for split in splits:
        merged = span_statistics.merged_statistics([by_part[split]["partials"] for by_part in partials.values()], options)
        folder = os.path.join(statistics.uri, f"Split-{split}")
        tf.io.gfile.makedirs(folder)
        with tf.io.gfile.GFile(os.path.join(folder, STATISTICS_FILE), "wb") as written:
            written.write(merged.SerializeToString())
    statistics.split_names = artifact_utils.encode_split_names(splits)
    if examples.has_property("span"):
        statistics.span = examples.span
    statistics.set_string_custom_property(
        SPAN_STATISTICS_PROPERTY,
        json.dumps(
            {
                str(span): {split: {"key": entry["key"], "reused": entry["reused"]} for split, entry in by_part.items()}
                for span, by_part in partials.items()
            },
            sort_keys=True,
        ),
    )
