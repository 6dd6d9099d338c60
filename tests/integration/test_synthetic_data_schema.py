"""Synthetic trips through TFDV: their statistics agree with the curated schema."""
import pytest
import tensorflow_data_validation as tfdv

from pipeline.data_tools import synthetic_data
from tests.conftest import DATA_ROOT

pytestmark = pytest.mark.slow


def test_generated_data_matches_the_curated_schema(tmp_path, schema_path):
    root = tmp_path / "data"
    synthetic_data.generate(str(DATA_ROOT), str(root), 20_003, seed=3)
    schema = tfdv.load_schema_text(str(schema_path))
    options = tfdv.StatsOptions(schema=schema, infer_type_from_schema=True)
    statistics = tfdv.generate_statistics_from_csv(str(root / "span-*" / "*.csv"), stats_options=options)
    anomalies = tfdv.validate_statistics(statistics, schema, environment="TRAINING")
    assert dict(anomalies.anomaly_info) == {}
    assert not anomalies.HasField("dataset_anomaly_info")
    assert statistics.datasets[0].num_examples == 20_003
