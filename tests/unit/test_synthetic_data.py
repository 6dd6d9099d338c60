"""pipeline.data_tools.synthetic_data (and its script): row counts, determinism, what the noise keeps."""
import csv
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from modules import features
from pipeline.data_tools import synthetic_data
from pipeline.spans import SpanError
from tests.conftest import DATA_ROOT, REPO_ROOT, read_csv_header, sample_data_root


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.csv")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _rows(root, span=None):
    rows = []
    for path in sorted(root.glob(f"span-{span if span is not None else '*'}/*.csv")):
        with open(path, newline="") as data_file:
            reader = csv.DictReader(data_file)
            assert reader.fieldnames == read_csv_header()
            rows.extend(reader)
    return rows


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "data"
    written = synthetic_data.generate(str(DATA_ROOT), str(root), 20_003, seed=3, rows_per_file=4_000)
    return root, written


def test_row_counts_are_exact_and_shared_like_the_source(generated):
    root, written = generated
    assert sorted(written) == [1, 2, 3, 4]
    counts = {span: len(_rows(root, span)) for span in written}
    assert sum(counts.values()) == 20_003
    # Source spans hold 4,388 / 5,145 / 4,636 / 833 trips (data/README.md).
    assert counts == dict(zip([1, 2, 3, 4], synthetic_data.split_rows(20_003, [4388, 5145, 4636, 833])))
    assert counts[2] > counts[3] > counts[1] > counts[4]


def test_files_are_split_at_rows_per_file(generated):
    root, written = generated
    assert [path.rsplit("/", 1)[1] for path in written[2]] == ["data-00000.csv", "data-00001.csv"]
    with open(written[2][0]) as first:
        assert sum(1 for _ in first) == 4_000 + 1


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synthetic_data.generate(str(DATA_ROOT), str(tmp_path / name), 3_000, seed=seed)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def _big_tipper_share(rows):
    labels = [
        bool(row["fare"]) and features.is_big_tip(features.cents(float(row["tips"] or 0)), features.cents(float(row["fare"])))
        for row in rows
    ]
    return sum(labels) / len(labels)


def test_mixes_missingness_and_label_stay_close_to_the_source(generated):
    root, _ = generated
    synthetic, source = _rows(root), _rows(DATA_ROOT)
    for key in ("payment_type", "trip_start_hour"):
        for value in ("Cash", "Credit Card") if key == "payment_type" else ("0", "12", "19"):
            source_share = sum(row[key] == value for row in source) / len(source)
            assert abs(sum(row[key] == value for row in synthetic) / len(synthetic) - source_share) < 0.02, (key, value)
    for key in ("company", "fare", "trip_miles", "dropoff_latitude", "pickup_census_tract"):
        source_missing = sum(not row[key] for row in source) / len(source)
        assert abs(sum(not row[key] for row in synthetic) / len(synthetic) - source_missing) < 0.02, key
    assert abs(_big_tipper_share(synthetic) - _big_tipper_share(source)) < 0.02


def test_fares_are_jittered_and_tips_follow_them():
    source = synthetic_data.SpanSource(
        span=1,
        header=["fare", "tips", "trip_miles", "trip_seconds", "company"],
        columns={
            "fare": np.array(["10.00"] * 2000, dtype=object),
            "tips": np.array(["2.50"] * 2000, dtype=object),
            "trip_miles": np.array(["2.0"] * 2000, dtype=object),
            "trip_seconds": np.array([""] * 2000, dtype=object),
            "company": np.array([""] * 2000, dtype=object),
        },
    )
    columns = synthetic_data.synthesize(source, 2000, np.random.default_rng(0))
    fares = columns["fare"].astype(float)
    tips = columns["tips"].astype(float)
    assert 0.05 < np.std(np.log(fares)) < 0.12
    assert len(set(columns["fare"])) > 100
    np.testing.assert_allclose(tips / fares, 0.25, atol=0.005)
    assert np.corrcoef(fares, columns["trip_miles"].astype(float))[0, 1] > 0.7
    assert set(columns["trip_seconds"]) == {""} and set(columns["company"]) == {""}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"total_rows": 3}, synthetic_data.SyntheticDataError, "total_rows must be at least the number of spans (4), got 3"),
        ({"total_rows": 10, "rows_per_file": 0}, synthetic_data.SyntheticDataError, "rows_per_file must be at least 1, got 0"),
    ],
)
def test_bad_requests_are_refused(tmp_path, kwargs, error, message):
    with pytest.raises(error) as raised:
        synthetic_data.generate(str(DATA_ROOT), str(tmp_path / "out"), **kwargs)
    assert message in str(raised.value)


def test_an_output_root_with_spans_is_refused(tmp_path):
    sample_data_root(tmp_path / "out", spans=(1,))
    with pytest.raises(synthetic_data.SyntheticDataError, match="already holds span folders; choose an empty folder"):
        synthetic_data.generate(str(DATA_ROOT), str(tmp_path / "out"), 10)


def test_a_source_without_spans_is_refused(tmp_path):
    with pytest.raises(SpanError, match="holds no span-<N> folder"):
        synthetic_data.generate(str(tmp_path), str(tmp_path / "out"), 10)


def test_a_source_missing_a_jittered_column_is_refused(tmp_path):
    (tmp_path / "src" / "span-1").mkdir(parents=True)
    (tmp_path / "src" / "span-1" / "data.csv").write_text("fare,tips,trip_miles\n1.0,0.1,0.5\n")
    with pytest.raises(synthetic_data.SyntheticDataError, match="no column trip_seconds in the header"):
        synthetic_data.generate(str(tmp_path / "src"), str(tmp_path / "out"), 10)


def test_a_span_of_headers_only_is_refused(tmp_path):
    (tmp_path / "src" / "span-1").mkdir(parents=True)
    (tmp_path / "src" / "span-1" / "data.csv").write_text(",".join(read_csv_header()) + "\n")
    with pytest.raises(synthetic_data.SyntheticDataError, match="holds no trip"):
        synthetic_data.generate(str(tmp_path / "src"), str(tmp_path / "out"), 10)


def test_script_writes_spans_and_reports_errors(tmp_path):
    script = str(REPO_ROOT / "scripts" / "generate_taxi_data.py")
    done = subprocess.run([sys.executable, script, "--rows", "40", "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "span 4: 1 file(s)" in done.stdout
    assert len(_rows(tmp_path / "out")) == 40
    refused = subprocess.run([sys.executable, script, "--rows", "2", "--output", str(tmp_path / "other")], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "error: total_rows must be at least the number of spans (4), got 2" in refused.stderr
