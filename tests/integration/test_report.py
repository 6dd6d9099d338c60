"""The HTML run report of the shared small run: content, and rendering in a real headless browser."""
import re
import shutil
import subprocess

import pytest

from pipeline import configs
from pipeline.ops import report
from pipeline.validation.table_sources import resolve_sources

pytestmark = pytest.mark.slow

TIMINGS = [("CsvExampleGen", "ran", 5.3), ("Trainer", "ran", 30.9), ("Pusher", "ran", 0.1)]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def report_path(small_pipeline_run):
    return report.write_report(
        str(small_pipeline_run["output_dir"]), small_pipeline_run["connection"], configs.PIPELINE_NAME, 0, TIMINGS
    )


def test_report_holds_decision_metrics_timings_and_lineage(report_path, small_pipeline_run):
    summary = small_pipeline_run["summary"]
    page = open(report_path, encoding="utf-8").read()
    assert report_path.startswith(str(small_pipeline_run["output_dir"] / "reports" / "run-"))
    assert "Decision: BLESSED" in page
    assert f"{summary.metrics['auc'][0]:.4f}" in page
    assert f"{summary.metrics['binary_accuracy'][0]:.4f}" in page
    assert "payment_type=Credit Card" in page
    assert "&gt;= 0.85, drop &lt;= 0.002" in page  # HTML-escaped
    assert "Trainer" in page and "30.9" in page
    assert f"version {summary.pushed_version}" in page
    assert "trip_miles" in page  # the per-feature statistics
    # The external table with its fingerprint, and the joined columns' checks per span.
    (source,) = resolve_sources()
    assert source.sha256 in page and "us_il_holidays: trips joined per span" in page
    assert "us_il_holidays-span-3 split" in page and "is_day_before_holiday" in page


def test_report_needs_no_network(report_path):
    page = open(report_path, encoding="utf-8").read()
    assert not re.search(r"(src|href)\s*=", page), "the page must load nothing"
    assert "<script" not in page
    assert "http://" not in page and "https://" not in page


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); the browser rendering is not checked")
    return path


def test_report_renders_in_headless_chromium(report_path, tmp_path):
    chromium = _chromium()
    screenshot = tmp_path / "report.png"
    common = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [chromium, *common, f"--screenshot={screenshot}", "--window-size=1280,2000", f"file://{report_path}"],
        check=True, capture_output=True, timeout=120,
    )
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1280, 2000)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert len(colours) > 200, f"only {len(colours)} colours: the page rendered blank"
        not_white = sum(count for count, colour in colours if colour != (255, 255, 255))
        assert not_white > 0.05 * 1280 * 2000
    dom = subprocess.run(
        [chromium, *common, "--dump-dom", f"file://{report_path}"], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert re.search(r'id="decision".*Decision: BLESSED', dom, re.S)


def test_the_report_command_writes_the_newest_runs_report_again(small_pipeline_run, capsys, tmp_path):
    assert report.main(["--output-dir", str(small_pipeline_run["output_dir"])]) == 0
    path = capsys.readouterr().out.strip()
    page = open(path, encoding="utf-8").read()
    assert path.startswith(str(small_pipeline_run["output_dir"] / "reports" / "run-"))
    assert "Decision: BLESSED" in page and f"version {small_pipeline_run['summary'].pushed_version}" in page
    # An output dir without a run: named, exit 1, nothing written.
    assert report.main(["--output-dir", str(tmp_path)]) == 1
    assert "no ML Metadata file at" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
