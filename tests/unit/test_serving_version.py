"""Which version serves (`serving.versions.serving_version`): the one definition the Evaluator's
baseline, the Pusher, lineage, the report and housekeeping share."""
import pytest

from pipeline.configs import SERVING_MODEL_NAME
from pipeline.ops.rollback import model_config
from serving.versions import ServingConfigError, model_config_path, pinned_version, serving_version


def _push(serving_dir, version, complete=True):
    folder = serving_dir / str(version)
    folder.mkdir(parents=True)
    if complete:
        (folder / "saved_model.pb").write_bytes(b"")


def _write_config(serving_dir, text):
    path = model_config_path(str(serving_dir))
    with open(path, "w") as config_file:
        config_file.write(text)
    return path


@pytest.fixture
def serving_dir(tmp_path):
    serving_dir = tmp_path / "serving_model"
    for version in (100, 200):
        _push(serving_dir, version)
    _push(serving_dir, 300, complete=False)  # still being written: never the serving version
    return serving_dir


def test_without_a_config_the_newest_complete_version_serves(serving_dir):
    assert serving_version(str(serving_dir), SERVING_MODEL_NAME) == 200


def test_nothing_serves_before_the_first_push(tmp_path):
    assert serving_version(str(tmp_path / "serving_model"), SERVING_MODEL_NAME) is None


def test_the_config_beside_the_serving_dir_is_where_rollback_writes(serving_dir):
    assert model_config_path(str(serving_dir)) == str(serving_dir.parent / "models.config")
    assert model_config_path(str(serving_dir) + "/") == str(serving_dir.parent / "models.config")


def test_a_rollback_pin_is_the_serving_version(serving_dir):
    from google.protobuf import text_format

    _write_config(serving_dir, text_format.MessageToString(model_config(str(serving_dir), 100)))
    assert serving_version(str(serving_dir), SERVING_MODEL_NAME) == 100
    # `rollback --latest` writes the default policy back: the newest serves again.
    _write_config(serving_dir, text_format.MessageToString(model_config(str(serving_dir), None)))
    assert serving_version(str(serving_dir), SERVING_MODEL_NAME) == 200


def test_a_canary_config_serves_its_stable_label_else_its_highest_version():
    canary = """model_config_list { config { name: "big_tipper" base_path: "/m" model_platform: "tensorflow"
        model_version_policy { specific { versions: 100 versions: 200 } }
        version_labels { key: "stable" value: 100 } version_labels { key: "canary" value: 200 } } }"""
    assert pinned_version(canary, SERVING_MODEL_NAME) == 100
    unlabelled = canary.split("version_labels")[0] + "} }"
    assert pinned_version(unlabelled, SERVING_MODEL_NAME) == 200


def test_a_pin_of_a_missing_version_cannot_decide(serving_dir):
    from google.protobuf import text_format

    path = _write_config(serving_dir, text_format.MessageToString(model_config(str(serving_dir), 300)))
    with pytest.raises(ServingConfigError, match=f"{path} pins version 300 of 'big_tipper', which is not a complete version"):
        serving_version(str(serving_dir), SERVING_MODEL_NAME)


def test_a_config_without_the_model_or_unreadable_cannot_decide(serving_dir):
    path = _write_config(serving_dir, 'model_config_list { config { name: "other" base_path: "/m" } }')
    with pytest.raises(ServingConfigError, match=r"configures no model named 'big_tipper' \(it has \['other'\]\)"):
        serving_version(str(serving_dir), SERVING_MODEL_NAME)
    _write_config(serving_dir, "model_config_list { config { name: ")
    with pytest.raises(ServingConfigError, match=f"{path} is not a ModelServerConfig"):
        serving_version(str(serving_dir), SERVING_MODEL_NAME)
