"""The data root's layout: its span folders and the training window; a file's fingerprint.

`file_sha256` imports TensorFlow when called, so an entry point can parse its flags and find
its spans before it pays for TensorFlow. `kept_file_sha256` keeps each file's SHA-256 beside its
size and times (`file_signature`), so a run reads only the files that changed since one hashed them.
"""
import hashlib
import json
import logging
import os
import re
import time
import uuid
from typing import Dict, List, Optional

from pipeline.configs import SPAN_COMPLETE_MARKER, SPAN_FILE_PATTERN, SPAN_FOLDER_PREFIX

logger = logging.getLogger(__name__)

# A kept hash is written only for a file last modified at least this long before its hash
# began. A write in the same tick of the file system's clock as the one hashed (1 s on some
# file systems) would leave the size and modification time unchanged with other bytes.
SETTLED_SECONDS = 2.0

_SPAN_FOLDER = re.compile(re.escape(SPAN_FOLDER_PREFIX) + r"(\d+)$")


class SpanError(ValueError):
    """The data root does not hold usable spans."""


class NoSpanError(SpanError):
    """The data root holds no span yet, or no complete one: a watcher waits for one."""


def span_of_folder(name: str) -> Optional[int]:
    """Returns the span number of a folder named `span-<N>`, or None for any other name."""
    match = _SPAN_FOLDER.match(name)
    return int(match.group(1)) if match else None


def data_root_problem(data_root: str) -> str:
    """What makes `data_root` no data root at all, for a usage error before anything runs:
    "is not a folder", "holds no span-<N> folder", or "" when it has a span folder (whether the
    spans are good is the data checks' business)."""
    if not os.path.isdir(data_root):
        return "is not a folder"
    if not any(span_of_folder(name) is not None and os.path.isdir(os.path.join(data_root, name)) for name in os.listdir(data_root)):
        return f"holds no {SPAN_FOLDER_PREFIX}<N> folder"
    return ""


def stray_folders(data_root: str) -> List[str]:
    """The folders under `data_root` that look like spans but are not (`span-old`, `span-x`):
    `discover_spans` skips them, and the entry points say so."""
    if not os.path.isdir(data_root):
        return []
    return sorted(
        name
        for name in os.listdir(data_root)
        if name.startswith(SPAN_FOLDER_PREFIX) and span_of_folder(name) is None and os.path.isdir(os.path.join(data_root, name))
    )


def stray_text(data_root: str) -> str:
    """"skipped folder(s) span-old under DATA_ROOT: ..." for the stray folders, or ""."""
    stray = stray_folders(data_root)
    if not stray:
        return ""
    return f"skipped folder(s) {', '.join(stray)} under {data_root}: span folders are named {SPAN_FOLDER_PREFIX}<N> with N a number"


def is_complete(span_dir: str) -> bool:
    """True when the producer of a span folder has written its completeness marker."""
    return os.path.isfile(os.path.join(span_dir, SPAN_COMPLETE_MARKER))


def discover_spans(data_root: str, complete_only: bool = False) -> List[int]:
    """Lists the span numbers under `data_root`, in ascending order.

    Args:
        data_root: Folder of `span-<N>/` folders.
        complete_only: Keep only spans whose folder holds the completeness marker, and only
            up to the first one that does not (a later span never jumps a gap).

    Raises:
        SpanError: when the folder is missing, holds no span, a span folder holds no CSV file,
            or two folders name one span. A `span-` folder whose suffix is not a number is not a
            span and is skipped (see `stray_folders`).
    """
    if not os.path.isdir(data_root):
        raise SpanError(f"data root {data_root!r} is not a folder")
    spans = []
    folders = {}
    for name in sorted(os.listdir(data_root)):
        path = os.path.join(data_root, name)
        if not os.path.isdir(path) or not name.startswith(SPAN_FOLDER_PREFIX):
            continue
        span = span_of_folder(name)
        if span is None:
            continue  # not a span (`stray_folders` names it for the entry points to report)
        if not any(entry.endswith(SPAN_FILE_PATTERN.lstrip("*")) for entry in os.listdir(path)):
            raise SpanError(f"span folder {path!r} holds no {SPAN_FILE_PATTERN} file")
        if span in folders:
            raise SpanError(f"folders {folders[span]!r} and {name!r} under {data_root!r} both name span {span}; keep one")
        folders[span] = name
        spans.append(span)
    spans = sorted(spans)
    if complete_only:
        complete = []
        for span in spans:
            if not is_complete(os.path.join(data_root, f"{SPAN_FOLDER_PREFIX}{span}")):
                break
            complete.append(span)
        if not complete:
            raise NoSpanError(f"data root {data_root!r} holds no complete span (a span folder is complete once it holds {SPAN_COMPLETE_MARKER})")
        spans = complete
    if not spans:
        raise NoSpanError(f"data root {data_root!r} holds no {SPAN_FOLDER_PREFIX}<N> folder")
    return spans


def spans_text(spans: List[int]) -> str:
    """"1-3" for a run of three or more spans, "1,2" or "1,3" otherwise."""
    spans = list(spans)
    if len(spans) > 2 and spans == list(range(spans[0], spans[-1] + 1)):
        return f"{spans[0]}-{spans[-1]}"
    return ",".join(map(str, spans))


def window(spans: List[int], span_window: Optional[int]) -> List[int]:
    """Returns the newest `span_window` spans (all of them when `span_window` is None).

    Raises:
        SpanError: when `span_window` is not a positive number, or a span inside the window is
            missing (the window is a run of consecutive spans).
    """
    if span_window is not None and span_window < 1:
        raise SpanError(f"span window must be at least 1, got {span_window}")
    chosen = list(spans) if span_window is None else list(spans)[-span_window:]
    missing = sorted(set(range(chosen[0], chosen[-1] + 1)) - set(chosen)) if chosen else []
    if missing:
        raise SpanError(
            f"span(s) {missing} missing between span {chosen[0]} and span {chosen[-1]}: a window is a run of "
            f"consecutive spans (add the missing span folders, or train on the newest spans with --span-window)"
        )
    return chosen


def file_sha256(path: str) -> str:
    """Returns the SHA-256 of a file's bytes (any path tf.io.gfile reads)."""
    import tensorflow as tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as data_file:
        for chunk in iter(lambda: data_file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_signature(path: str) -> Dict[str, int]:
    """What changes when a file's bytes change, read without reading them: its size and
    modification time, and on a local file system its inode and status-change time too (a copy
    or `touch` that sets the modification time back still changes those).

    Raises:
        OSError (local) or tf.errors.NotFoundError (any other file system): when the file does
            not exist.
    """
    if "://" not in path:
        status = os.stat(path)
        return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "ctime_ns": status.st_ctime_ns, "inode": status.st_ino}
    import tensorflow as tf

    status = tf.io.gfile.stat(path)
    return {"size": status.length, "mtime_ns": status.mtime_nsec}


def _kept_hash_path(hashes_dir: str, path: str, signature: Dict[str, int]) -> str:
    name = hashlib.sha256(json.dumps([path, signature], sort_keys=True).encode("utf-8")).hexdigest()
    return os.path.join(hashes_dir, name + ".json")


def read_kept_hash(entry_path: str) -> Optional[dict]:
    """A kept hash's record ({"path", "signature", "sha256"}), or None when it is unreadable."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(entry_path) as entry_file:
            record = json.load(entry_file)
        if isinstance(record, dict) and isinstance(record.get("path"), str) and isinstance(record.get("signature"), dict):
            if isinstance(record.get("sha256"), str) and len(record["sha256"]) == 64:
                return record
    except (ValueError, tf.errors.OpError):
        pass
    return None


def kept_file_sha256(path: str, hashes_dir: str) -> str:
    """Returns the SHA-256 of a file's bytes, read from `hashes_dir` while the file's
    signature (`file_signature`) is the one it was hashed with, else computed and kept there.

    The same trust as TFX's own ExampleGen driver, which reruns a span only when its files'
    sizes or modification times change; a file hashed within SETTLED_SECONDS of its last write
    is hashed again next time. The record is written to a temporary name and renamed, so a
    reader never sees half of one.
    """
    import tensorflow as tf

    signature = file_signature(path)
    entry_path = _kept_hash_path(hashes_dir, path, signature)
    if tf.io.gfile.exists(entry_path):
        record = read_kept_hash(entry_path)
        if record and record["path"] == path and record["signature"] == signature:
            return record["sha256"]
        logger.warning("The kept hash %s of %s is unreadable or another file's: hashing the file again.", entry_path, path)
    started = time.time()
    digest = file_sha256(path)
    if file_signature(path) == signature and signature["mtime_ns"] <= (started - SETTLED_SECONDS) * 1e9:
        tf.io.gfile.makedirs(hashes_dir)
        temp_path = os.path.join(hashes_dir, f".{uuid.uuid4().hex}.tmp")
        with tf.io.gfile.GFile(temp_path, "w") as entry_file:
            json.dump({"path": path, "signature": signature, "sha256": digest}, entry_file, sort_keys=True)
        tf.io.gfile.rename(temp_path, entry_path, overwrite=True)
    return digest


def stale_kept_hashes(hashes_dir: str) -> List[str]:
    """The files of `hashes_dir` no present file matches: hashes of files since changed or
    removed, unreadable records and temporary files of writes that stopped."""
    import tensorflow as tf

    stale = []
    for name in sorted(os.listdir(hashes_dir)) if os.path.isdir(hashes_dir) else []:
        entry_path = os.path.join(hashes_dir, name)
        record = read_kept_hash(entry_path) if name.endswith(".json") else None
        if record is not None:
            try:
                if _kept_hash_path(hashes_dir, record["path"], file_signature(record["path"])) == entry_path:
                    continue
            except (OSError, tf.errors.OpError):  # removed, or no longer readable
                pass
        stale.append(entry_path)
    return stale
