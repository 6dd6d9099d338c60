"""Span statistics computed once (`pipeline.validation.span_statistics`): kept, reused, merged."""
import json
import shutil

import pytest
import tensorflow_data_validation as tfdv

from pipeline import configs
from pipeline.components.drift_check import check_span
from pipeline.validation import span_statistics
from pipeline.validation.span_rows import common_header
from tests.conftest import DATA_ROOT, SCHEMA_PATH

pytestmark = pytest.mark.slow

SHIPPED = {span: [str(DATA_ROOT / f"span-{span}" / "data.csv")] for span in (1, 2, 3, 4)}


@pytest.fixture(scope="module")
def schema():
    return tfdv.load_schema_text(str(SCHEMA_PATH))


def _features(statistics):
    return {feature.path.step[0]: feature for feature in statistics.datasets[0].features}


def _common(feature):
    return feature.string_stats.common_stats if feature.HasField("string_stats") else feature.num_stats.common_stats


def test_a_later_run_reads_no_kept_span_again_and_reports_the_same(schema, tmp_path):
    store = span_statistics.SpanStatisticsStore(str(tmp_path / "store"))
    first = check_span(SHIPPED, schema, configs.DriftConfig(), str(tmp_path / "first"), store=store, salt="code-a")
    assert {span: entry["all"]["reused"] for span, entry in first["span_statistics"].items()} == {"1": False, "2": False, "3": False, "4": False}
    assert len(list((tmp_path / "store").glob("*.partials"))) == 4

    # The next day: span 5 (a copy of span 4's trips) joins the window; only it is read.
    (tmp_path / "span-5").mkdir()
    shutil.copy(SHIPPED[4][0], tmp_path / "span-5" / "data.csv")
    window = {**SHIPPED, 5: [str(tmp_path / "span-5" / "data.csv")]}
    without_store = check_span(window, schema, configs.DriftConfig(), str(tmp_path / "fresh"))
    second = check_span(window, schema, configs.DriftConfig(), str(tmp_path / "second"), store=store, salt="code-a")
    reused = {span: entry["all"]["reused"] for span, entry in second["span_statistics"].items()}
    # Span 5's files are span 4's bytes: the same key, so it is read from the store too.
    assert reused == {"1": True, "2": True, "3": True, "4": True, "5": True}
    for field in ("rows", "anomalies", "scores", "reference_spans"):
        assert second[field] == without_store[field]

    # A stored file is what the run reads: a damaged one fails the run, naming it.
    key = second["span_statistics"]["2"]["all"]["key"]
    (tmp_path / "store" / f"{key}.partials").write_bytes(b"not statistics")
    with pytest.raises(ValueError, match=f"{key}.partials cannot be read"):
        check_span(window, schema, configs.DriftConfig(), str(tmp_path / "third"), store=store, salt="code-a")


def test_a_changed_file_or_code_computes_the_span_again(schema, tmp_path):
    store = span_statistics.SpanStatisticsStore(str(tmp_path / "store"))
    (tmp_path / "span-4").mkdir()
    copy = tmp_path / "span-4" / "data.csv"
    shutil.copy(SHIPPED[4][0], copy)
    window = {3: SHIPPED[3], 4: [str(copy)]}
    first = check_span(window, schema, configs.DriftConfig(), str(tmp_path / "a"), store=store, salt="code-a")
    with open(copy) as trips:
        lines = trips.readlines()
    copy.write_text("".join(lines[:-100]))
    changed = check_span(window, schema, configs.DriftConfig(), str(tmp_path / "b"), store=store, salt="code-a")
    assert changed["span_statistics"]["3"]["all"]["reused"] and not changed["span_statistics"]["4"]["all"]["reused"]
    assert changed["rows"]["span"] == first["rows"]["span"] - 100
    other_code = check_span(window, schema, configs.DriftConfig(), str(tmp_path / "c"), store=store, salt="code-b")
    assert not any(entry["all"]["reused"] for entry in other_code["span_statistics"].values())


def test_merged_spans_hold_the_statistics_of_their_trips_together(schema, tmp_path):
    paths = [path for span in (1, 2, 3) for path in SHIPPED[span]]
    options = span_statistics.statistics_options(schema)
    header = common_header(paths)
    partials = span_statistics.span_partials({span: SHIPPED[span] for span in (1, 2, 3)}, header, schema, options, None)
    merged = span_statistics.merged_statistics([partials[span]["all"]["partials"] for span in (1, 2, 3)], options)
    together = span_statistics.span_partials({0: paths}, header, schema, options, None)
    direct = span_statistics.merged_statistics([together[0]["all"]["partials"]], options)
    assert merged.datasets[0].num_examples == direct.datasets[0].num_examples == sum(
        sum(1 for _ in open(path)) - 1 for path in paths
    )
    merged_features, direct_features = _features(merged), _features(direct)
    assert set(merged_features) == set(direct_features)
    for name, feature in direct_features.items():
        ours = merged_features[name]
        assert _common(ours).num_non_missing == _common(feature).num_non_missing, name
        assert _common(ours).num_missing == _common(feature).num_missing, name
        if feature.HasField("string_stats"):
            counts = {b.label: b.sample_count for b in feature.string_stats.rank_histogram.buckets}
            assert {b.label: b.sample_count for b in ours.string_stats.rank_histogram.buckets} == counts, name
        else:
            assert (ours.num_stats.min, ours.num_stats.max) == (feature.num_stats.min, feature.num_stats.max), name
            assert ours.num_stats.mean == pytest.approx(feature.num_stats.mean, rel=1e-9), name
            # Quantiles are sketches: merged per span or in one pass, within TFDV's epsilon.
            quantiles = [h for h in feature.num_stats.histograms if h.type == h.QUANTILES][0]
            merged_quantiles = [h for h in ours.num_stats.histograms if h.type == h.QUANTILES][0]
            spread = feature.num_stats.max - feature.num_stats.min
            for a, b in zip(quantiles.buckets, merged_quantiles.buckets):
                assert abs(a.high_value - b.high_value) <= 0.02 * spread + 1e-9, name


def test_options_whose_statistics_cannot_be_kept_per_span_are_refused(schema):
    with pytest.raises(ValueError, match="combiner generators only"):
        span_statistics.generators(tfdv.StatsOptions(schema=schema))


def test_the_window_statistics_per_split_are_tfx_statisticsgen_s(tmp_path):
    # The real ExampleGen writes spans 1 and 2; TFX's own StatisticsGen reads its examples, and
    # the pipeline's WindowStatisticsGen computes each span's trips per split from the CSV files.
    from tfx import v1 as tfx
    from tfx.orchestration import metadata
    from tfx.utils import proto_utils

    from pipeline import dag
    from pipeline.components.curated_schema import ImportCuratedSchema
    from pipeline.components.artifacts import SPAN_STATISTICS_PROPERTY
    from pipeline.components.window_statistics import WindowStatisticsGen
    from pipeline.ops import run_summary

    options = configs.PipelineOptions(code_fingerprint="test")
    example_gen = dag.make_example_gen(str(DATA_ROOT), [1, 2], options)
    schema_gen = ImportCuratedSchema(schema_file=str(SCHEMA_PATH), code_fingerprint="test").with_id("Schema")
    theirs = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id("TfxStatisticsGen")
    ours = WindowStatisticsGen(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        split_config=proto_utils.proto_to_json(dag.example_split_config(options)),
        code_fingerprint="test",
        span_statistics_dir=str(tmp_path / "store"),
    ).with_id("WindowStatisticsGen")
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.db"))
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="window_statistics_test",
            pipeline_root=str(tmp_path / "root"),
            components=[example_gen, schema_gen, theirs, ours],
            metadata_connection_config=connection,
        )
    )
    with metadata.Metadata(connection) as handler:
        found = {
            node: run_summary.latest_node_outputs(handler.store, "window_statistics_test", node, 0)["statistics"][0]
            for node in ("TfxStatisticsGen", "WindowStatisticsGen")
        }
    recorded = json.loads(found["WindowStatisticsGen"].custom_properties[SPAN_STATISTICS_PROPERTY].string_value)
    assert sorted(recorded) == ["1", "2"] and all(set(by_split) == {configs.TRAIN_SPLIT, configs.EVAL_SPLIT} for by_split in recorded.values())
    for split in (configs.TRAIN_SPLIT, configs.EVAL_SPLIT):
        expected, got = (tfdv.load_stats_binary(f"{found[node].uri}/Split-{split}/FeatureStats.pb") for node in ("TfxStatisticsGen", "WindowStatisticsGen"))
        assert got.datasets[0].num_examples == expected.datasets[0].num_examples > 0
        expected_features, got_features = _features(expected), _features(got)
        # A column of the files no trip of the split fills is missing in every trip here;
        # TFX's StatisticsGen, reading tf.Examples, does not see it at all.
        unseen = set(got_features) - set(expected_features)
        assert set(expected_features) <= set(got_features)
        assert all(_common(got_features[name]).num_non_missing == 0 for name in unseen), unseen
        for name, feature in expected_features.items():
            mine = got_features[name]
            assert (_common(mine).num_non_missing, _common(mine).num_missing) == (_common(feature).num_non_missing, _common(feature).num_missing), (split, name)
            if feature.HasField("string_stats"):
                counts = {b.label: b.sample_count for b in feature.string_stats.rank_histogram.buckets}
                assert {b.label: b.sample_count for b in mine.string_stats.rank_histogram.buckets} == counts, (split, name)
            else:
                assert (mine.num_stats.min, mine.num_stats.max) == (feature.num_stats.min, feature.num_stats.max), (split, name)
                assert mine.num_stats.mean == pytest.approx(feature.num_stats.mean, rel=1e-9), (split, name)
