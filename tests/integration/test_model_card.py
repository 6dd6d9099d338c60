"""The model card of a pushed version: what it says, where it lies, and that it renders in a real
headless browser (the shared small run's version, on a copy of its output dir)."""
import re
import shutil
import subprocess

import pytest

from pipeline.components.pusher import model_digest
from pipeline.ops import lineage
from tests.integration.test_report import CHROMIUM_FLAGS, _chromium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def card(small_pipeline_run, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("card") / "output"
    shutil.copytree(small_pipeline_run["output_dir"], output_dir)
    version = small_pipeline_run["summary"].pushed_version
    version_dir = output_dir / "serving_model" / version
    digest_before = model_digest(str(version_dir))
    return {"output_dir": output_dir, "version": version, "version_dir": version_dir, "digest_before": digest_before}


def test_the_card_command_writes_both_files_next_to_the_version(card, capsys):
    assert lineage.main(["--output-dir", str(card["output_dir"]), "--card"]) == lineage.EXIT_OK
    printed = capsys.readouterr().out.split()
    expected = [str(card["version_dir"] / "assets.extra" / name) for name in ("model_card.md", "model_card.html")]
    assert printed == expected
    # The Pusher's "already serving" comparison leaves the card out: the same model stays the same.
    assert model_digest(str(card["version_dir"])) == card["digest_before"]


def test_the_card_says_what_was_trained_on_how_good_it_is_and_where_it_is_weak(card, small_pipeline_run):
    lineage.main(["--output-dir", str(card["output_dir"]), "--card"])
    text = (card["version_dir"] / "assets.extra" / "model_card.md").read_text()
    traced = lineage.trace_version(str(card["output_dir"]), card["version"])
    assert f"# Model card: big_tipper, version {card['version']}" in text
    assert "tips > 20% of fare, compared in whole cents" in text
    assert "Spans 1, 2, 3" in text
    for span_file in traced.data.files:
        assert span_file.path in text and span_file.sha256 in text
    assert traced.external_tables.records["us_il_holidays"]["sha256"] in text
    assert traced.trainer.module_fingerprint in text
    summary = small_pipeline_run["summary"]
    assert f"| auc | {summary.metrics['auc'][0]:.4f} | - | >= 0.85, drop <= 0.002 |" in text
    for check in ("auc vs one-feature rule", "accuracy vs majority", "auc, card-paid", "auc, newest span"):
        assert f"| {check} |" in text
    assert "payment_type=Cash" in text and "Weakest slices by AUC" in text
    assert "Cash tips are not recorded" in text
    assert f"| PushedModel | {traced.push.pushed_model.id} |" in text and f"| Model | {traced.trainer.model.id} |" in text
    assert "no version was serving when this one was evaluated" in text


def test_the_html_card_needs_no_network_and_renders_in_headless_chromium(card, tmp_path):
    lineage.main(["--output-dir", str(card["output_dir"]), "--card"])
    page_path = card["version_dir"] / "assets.extra" / "model_card.html"
    page = page_path.read_text()
    assert not re.search(r"(src|href)\s*=", page) and "<script" not in page
    chromium = _chromium()
    common = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    screenshot = tmp_path / "card.png"
    subprocess.run(
        [chromium, *common, f"--screenshot={screenshot}", "--window-size=1280,1600", f"file://{page_path}"],
        check=True, capture_output=True, timeout=120,
    )
    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert len(colours) > 100, f"only {len(colours)} colours: the page rendered blank"
    dom = subprocess.run(
        [chromium, *common, "--dump-dom", f"file://{page_path}"], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert re.search(rf'id="title">Model card: big_tipper, version {card["version"]}<', dom)
    assert "<th>check (whole eval split unless named)</th>" in dom
