"""What a version folder of a served model is: the one definition every part of the project uses.

TF Serving watches a model's base path and treats each child folder whose name parses as an
int64 as one version of the model; any other folder or file is ignored. A version is complete
once its `saved_model.pb` is written (the Pusher writes that file last), so readers that pick
a version to serve, compare with or roll back to take complete versions only.

Which version *serves* is the other fact with one home here (`serving_version`): what the
model config next to the serving directory pins (`python -m pipeline rollback` writes it),
else the newest complete version, which is what TF Serving's default policy answers an
unversioned request with. The Evaluator's baseline, the Pusher's "already serving" check,
lineage and the run report all ask this function.

Paths may be local or any URI `tf.io.gfile` reads (gs://...); TensorFlow is imported only for
the latter, so the entry points can check a local folder before they pay for TensorFlow.
"""
import os
from typing import List, Optional

SAVED_MODEL_FILE = "saved_model.pb"
# A version's model card (`pipeline.ops.model_card`), relative to its folder: TF Serving reads
# nothing in assets.extra/ but the warm-up file, and comparisons of model files leave these out.
MODEL_CARD_FILES = ("assets.extra/model_card.md", "assets.extra/model_card.html")
# The ModelServerConfig `python -m pipeline rollback` writes, next to the serving directory.
MODEL_CONFIG_FILE = "models.config"
# The label a pinned config gives the version that answers unlabelled traffic.
STABLE_LABEL = "stable"
_INT64_MAX = 2**63 - 1


def parse_version(name: str) -> Optional[int]:
    """The version number a folder name stands for, or None when TF Serving would ignore it:
    decimal digits only, within int64 (`99999999999999999999` is not a version)."""
    name = name.rstrip("/")
    if not name.isascii() or not name.isdigit():
        return None
    number = int(name)
    return number if number <= _INT64_MAX else None


def _is_remote(path: str) -> bool:
    return "://" in path


def _listdir(path: str) -> List[str]:
    if _is_remote(path):
        import tensorflow as tf

        return [name.rstrip("/") for name in tf.io.gfile.listdir(path)] if tf.io.gfile.isdir(path) else []
    return os.listdir(path) if os.path.isdir(path) else []


def _exists(path: str) -> bool:
    if _is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def version_dir(base_dir: str, version: int) -> str:
    """The folder of one version under a model's base path."""
    return os.path.join(base_dir, str(version))


def version_numbers(base_dir: str, complete_only: bool = True) -> List[int]:
    """The version numbers under a model's base path, ascending; [] when it does not exist.

    Args:
        base_dir: The model's base path (e.g. `OUTPUT_DIR/serving_model`).
        complete_only: Keep only versions whose `saved_model.pb` is written.
    """
    found = []
    for name in _listdir(base_dir):
        number = parse_version(name)
        if number is None:
            continue
        if complete_only and not _exists(os.path.join(base_dir, name, SAVED_MODEL_FILE)):
            continue
        found.append(number)
    return sorted(found)


def newest_version(base_dir: str) -> Optional[int]:
    """The highest complete version under a model's base path, or None."""
    found = version_numbers(base_dir)
    return found[-1] if found else None


class ServingConfigError(ValueError):
    """The model config next to a serving directory cannot say which version serves."""


def model_config_path(base_dir: str) -> str:
    """The model config of a serving directory: `models.config` beside it (OUTPUT_DIR/models.config
    for OUTPUT_DIR/serving_model), where `python -m pipeline rollback` writes it by default."""
    return os.path.join(os.path.dirname(os.path.abspath(base_dir.rstrip("/"))), MODEL_CONFIG_FILE)


def _read_text(path: str) -> str:
    if _is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as config_file:
            return config_file.read()
    with open(path) as config_file:
        return config_file.read()


def pinned_version(config_text: str, model_name: str, where: str = "the model config") -> Optional[int]:
    """The version a text-format ModelServerConfig makes serve `model_name`, or None when its
    policy is "the newest" (`latest` or `all`, or no policy).

    A `specific` policy serves its `stable` label when it has one, else its highest version
    (TF Serving answers an unversioned request with the highest loaded version).

    Raises:
        ServingConfigError: when the text does not parse or names no such model.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(config_text, config)
    except text_format.ParseError as error:
        raise ServingConfigError(f"{where} is not a ModelServerConfig: {error}") from None
    entries = [entry for entry in config.model_config_list.config if entry.name == model_name]
    if not entries:
        names = [entry.name for entry in config.model_config_list.config]
        raise ServingConfigError(f"{where} configures no model named {model_name!r} (it has {names})")
    policy = entries[0].model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return None
    if STABLE_LABEL in entries[0].version_labels:
        return entries[0].version_labels[STABLE_LABEL]
    if not policy.specific.versions:
        raise ServingConfigError(f"{where} pins no version of {model_name!r}: its specific policy is empty")
    return max(policy.specific.versions)


def serving_version(base_dir: str, model_name: str, config_file: Optional[str] = None) -> Optional[int]:
    """The version that serves `model_name` from `base_dir`, or None when nothing is pushed.

    What the model config pins (`pinned_version`) when the config file exists, else the newest
    complete version.

    Args:
        base_dir: The model's base path (e.g. `OUTPUT_DIR/serving_model`).
        model_name: The served model's name in the config.
        config_file: The ModelServerConfig the server reads (default: `model_config_path(base_dir)`).

    Raises:
        ServingConfigError: when the config does not parse, names no such model, or pins a
            version that is not a complete folder under `base_dir`.
    """
    config_file = config_file or model_config_path(base_dir)
    if _exists(config_file):
        pinned = pinned_version(_read_text(config_file), model_name, config_file)
        if pinned is not None:
            if pinned not in version_numbers(base_dir):
                raise ServingConfigError(
                    f"{config_file} pins version {pinned} of {model_name!r}, which is not a complete version under {base_dir}"
                )
            return pinned
    return newest_version(base_dir)
