"""What a version folder of a served model is: the one definition every part of the project uses.

TF Serving watches a model's base path and treats each child folder whose name parses as an
int64 as one version of the model; any other folder or file is ignored. A version is complete
once its `saved_model.pb` is written (the Pusher writes that file last), so readers that pick
a version to serve, compare with or roll back to take complete versions only.

Paths may be local or any URI `tf.io.gfile` reads (gs://...); TensorFlow is imported only for
the latter, so the entry points can check a local folder before they pay for TensorFlow.
"""
import os
from typing import List, Optional

SAVED_MODEL_FILE = "saved_model.pb"
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
