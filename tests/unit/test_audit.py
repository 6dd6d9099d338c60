"""Fast tests of the audit helpers: eval-config thresholds in words, moved artifact folders,
the report's decision words and its refusal of bad retention policies."""
import pytest

from pipeline import configs
from pipeline.eval_config import make_eval_config
from pipeline.ops import housekeeping, lineage, report
from pipeline.ops.run_summary import RunSummary


def test_thresholds_in_words_come_from_the_pipelines_eval_config():
    from google.protobuf import json_format

    eval_config = json_format.MessageToDict(make_eval_config(configs.BlessingThresholds()))
    thresholds = lineage.thresholds_from_eval_config(eval_config)
    assert thresholds == {"auc": ">= 0.93, drop <= 0.002", "binary_accuracy": ">= 0.85, drop <= 0.005"}


def test_thresholds_in_words_of_a_run_that_named_tfmas_own_classes():
    # Runs before the one-pass metrics recorded TFMA's class names ("AUC", "BinaryAccuracy").
    from google.protobuf import json_format

    from pipeline import eval_metrics

    older = eval_metrics.with_tfma_classes(make_eval_config(configs.BlessingThresholds()))
    assert {metric.class_name for spec in older.metrics_specs for metric in spec.metrics} >= {"AUC", "BinaryAccuracy"}
    thresholds = lineage.thresholds_from_eval_config(json_format.MessageToDict(older))
    assert thresholds == {"auc": ">= 0.93, drop <= 0.002", "binary_accuracy": ">= 0.85, drop <= 0.005"}


def test_moved_output_dir_finds_artifacts_by_component_output_and_execution(tmp_path):
    moved = tmp_path / "new" / "pipeline_root"
    (moved / "Trainer" / "model" / "8").mkdir(parents=True)
    assert lineage.local_artifact_path("/old/pipeline_root/Trainer/model/8", str(moved)) == str(moved / "Trainer" / "model" / "8")
    # Not there either: the recorded URI is kept, so nothing outside the new root is guessed.
    assert lineage.local_artifact_path("/old/pipeline_root/Trainer/model/9", str(moved)) == "/old/pipeline_root/Trainer/model/9"


def test_decision_names_failed_thresholds_and_the_push():
    refused = RunSummary(blessed=False, failed_thresholds=["auc 0.8000 is below the required 0.9300"], metrics={"auc": (0.8, None)})
    css, headline, reasons = report.decision_text(refused)
    assert (css, headline) == ("no", "NOT BLESSED")
    assert reasons == ["auc 0.8000 is below the required 0.9300", "nothing pushed"]
    pushed = RunSummary(blessed=True, pushed_version="17", pushed_path="/srv/models/17")
    assert report.decision_text(pushed)[1:] == ("BLESSED: every threshold met", ["pushed as version 17 to /srv/models/17"])
    refused_data = RunSummary(anomalies=["fare: values below 0"])
    assert report.decision_text(refused_data) == ("no", "DATA REFUSED: nothing was trained or pushed", ["fare: values below 0"])


def test_unknown_protected_version_is_named(tmp_path):
    (tmp_path / "serving_model" / "5").mkdir(parents=True)
    with pytest.raises(housekeeping.HousekeepingError, match=r"--protect-version 6: no such folder under .*serving_model"):
        housekeeping.plan(str(tmp_path), protect_versions=["6"], store=object())


def test_server_version_refuses_a_server_without_an_available_version(monkeypatch):
    import io
    import json
    import urllib.request

    answer = {"model_version_status": [{"version": "3", "state": "LOADING"}]}

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(json.dumps(answer).encode()))
    with pytest.raises(lineage.LineageError, match=r"has no AVAILABLE version of 'big_tipper' \(3=LOADING\)"):
        lineage.server_version("http://127.0.0.1:8501", "big_tipper")
