"""Transform's analysis of a window reuses each kept span's analyzer cache (the real ExampleGen,
schema import, ExternalTableGen and EnrichingTransform under TFX's LocalDagRunner)."""
import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from pipeline import component_ids, configs, dag
from pipeline.components.curated_schema import ImportCuratedSchema
from pipeline.components.external_table_gen import ExternalTableGen
from pipeline.ops import run_summary
from pipeline.validation.table_sources import sources_json
from tests.conftest import SAMPLE_OPTIONS, sample_data_root

pytestmark = pytest.mark.slow

PIPELINE = "transform_cache_test"
ROWS = 600


def _run(data_root, output_dir, spans, min_span_mib=0.0):
    """Runs ExampleGen, the schema import, ExternalTableGen and Transform on spans, with spans
    of min_span_mib or more analyzed one by one; returns the outputs' folders: the Transform
    graph's and the window's examples'."""
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.pipeline import Pipeline

    options = dataclasses.replace(SAMPLE_OPTIONS, code_fingerprint="test", analyzer_cache_min_span_mib=min_span_mib)
    root = str(output_dir / "root")
    example_gen = dag.make_example_gen(str(data_root), spans, options, f"{root}/{configs.SPAN_EXAMPLES_FOLDER}")
    schema_gen = ImportCuratedSchema(schema_file=configs.CURATED_SCHEMA_PATH, code_fingerprint="test").with_id(component_ids.SCHEMA_GEN)
    tables = ExternalTableGen(sources=sources_json(options.external_tables), code_fingerprint="test").with_id(component_ids.EXTERNAL_TABLE_GEN)
    transform = dag.make_transform(
        example_gen.outputs["examples"], schema_gen.outputs["schema"], tables.outputs["tables"], options, root
    )
    connection = metadata.sqlite_metadata_connection_config(str(output_dir / "metadata.db"))
    LocalDagRunner().run(
        Pipeline(
            pipeline_name=PIPELINE,
            pipeline_root=root,
            components=[example_gen, schema_gen, tables, transform],
            metadata_connection_config=connection,
            enable_cache=True,
        )
    )
    with metadata.Metadata(connection) as handler:
        graph = run_summary.latest_node_outputs(handler.store, PIPELINE, component_ids.TRANSFORM, 0)["transform_graph"][0]
        examples = run_summary.latest_node_outputs(handler.store, PIPELINE, component_ids.EXAMPLE_GEN, 0)["examples"][0]
    return graph.uri, examples.uri


def _vocabularies(graph_uri):
    output = tft.TFTransformOutput(graph_uri)
    keys = features.VOCABULARY_FEATURE_KEYS + features.INTEGER_VOCABULARY_FEATURE_KEYS
    return {key: output.vocabulary_by_name(features.vocabulary_name(key)) for key in keys}


def _transformed(graph_uri, examples_uri):
    """The float outputs of the graph on the window's eval trips: the means, variances and
    quantile boundaries of the analysis show in them."""
    output = tft.TFTransformOutput(graph_uri)
    files = sorted(glob.glob(f"{examples_uri}/Split-{configs.EVAL_SPLIT}/*"))
    serialized = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    outputs = output.transform_features_layer()(tf.io.parse_example(serialized, output.raw_feature_spec()))
    return {name: tensor.numpy() for name, tensor in sorted(outputs.items()) if isinstance(tensor, tf.Tensor)}


def _empty_kept_train_files(output_dir):
    """Replaces every kept train file with an empty one, under the same name. The window
    artifacts that link the old files keep them."""
    emptied = 0
    for folder in (output_dir / "root" / configs.SPAN_EXAMPLES_FOLDER).glob(f"*/Split-{configs.TRAIN_SPLIT}"):
        for path in folder.iterdir():
            replacement = folder / f".{path.name}.empty"
            with tf.io.TFRecordWriter(str(replacement), tf.io.TFRecordOptions(compression_type="GZIP")):
                pass
            os.replace(replacement, path)
            emptied += 1
    return emptied


def test_a_window_s_analysis_reads_the_kept_spans_from_the_cache_and_equals_a_fresh_one(tmp_path):
    data_root = sample_data_root(tmp_path / "data", spans=(1, 2, 3), rows_per_span=ROWS)
    output_dir = tmp_path / "out"
    _run(data_root, output_dir, [1, 2])
    kept = output_dir / "root" / configs.TRANSFORM_CACHE_FOLDER
    assert len([path for path in kept.glob("*/*") if (path / "MANIFEST").is_file()]) == 2  # a dataset per span
    # From here on, the kept train examples of spans 1 and 2 read as empty: an analysis that
    # read them again would miss their trips; one from the cache has them.
    assert _empty_kept_train_files(output_dir) == 2
    cached_graph, examples = _run(data_root, output_dir, [1, 2, 3])
    assert len([path for path in kept.glob("*/*") if (path / "MANIFEST").is_file()]) == 3
    fresh_graph, fresh_examples = _run(data_root, tmp_path / "fresh", [1, 2, 3])
    # Vocabularies are exact counts: the same with each span's counts from the cache.
    fresh_vocabularies = _vocabularies(fresh_graph)
    assert _vocabularies(cached_graph) == fresh_vocabularies
    assert all(len(vocabulary) > 1 for vocabulary in fresh_vocabularies.values())
    # Means, variances and quantile boundaries merge each span's accumulators either way.
    cached, fresh = _transformed(cached_graph, examples), _transformed(fresh_graph, fresh_examples)
    assert cached.keys() == fresh.keys() and len(cached) > 10
    for name in cached:
        np.testing.assert_allclose(cached[name], fresh[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_spans_smaller_than_the_threshold_are_analyzed_as_one_dataset_and_keep_no_cache(tmp_path):
    data_root = sample_data_root(tmp_path / "data", spans=(1, 2), rows_per_span=ROWS)
    output_dir = tmp_path / "out"
    # About 30 KiB of examples a span, under the default's MiB.
    graph, examples = _run(data_root, output_dir, [1, 2], min_span_mib=configs.ANALYZER_CACHE_MIN_SPAN_MIB)
    assert not (output_dir / "root" / configs.TRANSFORM_CACHE_FOLDER).exists()
    assert _transformed(graph, examples)
