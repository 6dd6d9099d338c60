"""One writer at a time per output dir: pipeline runs, accept, rollback and housekeeping.

Every command that writes ML Metadata or the serving directory holds an exclusive `flock` on
`OUTPUT_DIR/.writer.lock` while it writes. A second writer is refused at once with a message
naming the holder (its pid, command and start time) and exit code 75 (sysexits' EX_TEMPFAIL:
try again later); the span watcher instead leaves its span pending and tries on its next poll.
The kernel drops the lock when the holder exits, however it exits (kill -9 included), so a
lock is never stale. Readers (lineage, report, skew) take no lock.

With ML Metadata in MySQL/MariaDB the database is shared by whoever can reach it, so the
output dir also records which metadata it uses (`OUTPUT_DIR/metadata_location`), and a run
with another setting is refused: one output dir's history never splits across two stores.
"""
import contextlib
import datetime
import errno
import fcntl
import os
import shlex
import sys
from typing import Iterator, Optional, Sequence

from pipeline.ops import metadata
from pipeline.ops.metadata import OutputLayout

LOCK_FILE = ".writer.lock"
LOCATION_FILE = "metadata_location"
EXIT_BUSY = 75  # sysexits' EX_TEMPFAIL


class OutputBusyError(RuntimeError):
    """Another process is writing to the output dir."""


class MetadataLocationError(RuntimeError):
    """The output dir's history is kept in other metadata than the setting names."""


def _holder_text(lock_path: str) -> str:
    try:
        with open(lock_path) as lock_in:
            text = lock_in.read().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def hold(output_dir: str, what: Optional[Sequence[str]] = None) -> Iterator[str]:
    """Holds the output dir's writer lock for the `with` block (the folder is made if absent).

    Args:
        output_dir: The output dir written to.
        what: The command that writes, for the message another writer sees (default: argv).

    Raises:
        OutputBusyError: at once, naming the holder, when another process holds the lock.
    """
    os.makedirs(output_dir, exist_ok=True)
    lock_path = os.path.join(output_dir, LOCK_FILE)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputBusyError(
                f"{output_dir} is being written by {_holder_text(lock_path)}; nothing was changed. "
                "Run again once it has finished (one writer at a time per output dir)."
            ) from None
        command = " ".join(shlex.quote(part) for part in (what if what is not None else sys.argv))
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} ({command}, since {started})\n".encode(), 0)
        try:
            yield lock_path
        finally:
            # The lock goes with the descriptor; the file stays, so a waiting writer's open
            # file is the same one.
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def writing(output_dir: str, setting: metadata.MetadataSetting, what: Optional[Sequence[str]] = None) -> Iterator:
    """The output dir's ML Metadata store, opened to write, for the `with` block, under the
    writer lock, once the output dir is known to keep its history there (the tools that record:
    accept, rollback, housekeeping).

    Raises:
        MetadataLocationError: when the output dir keeps its metadata elsewhere.
        OutputBusyError: when another process writes to the output dir.
        pipeline.ops.metadata.MetadataSettingError: when the metadata does not exist or open.
    """
    check_location(output_dir, setting.location, record=False)
    with hold(output_dir, what):
        yield metadata.open_store(setting, output_dir, metadata.WRITE)


def check_location(output_dir: str, location: str, record: bool) -> None:
    """Refuses a metadata setting other than the one the output dir's history is in.

    Args:
        output_dir: The output dir.
        location: `MetadataSetting.location` (no password, nothing machine-specific).
        record: Write the location when the output dir has none yet (a run); tools only check.

    Raises:
        MetadataLocationError: naming both locations.
    """
    path = os.path.join(output_dir, LOCATION_FILE)
    try:
        with open(path) as location_in:
            recorded = location_in.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        # An output dir from before the location was recorded: its history is the SQLite file.
        recorded = metadata.SQLITE_LOCATION if os.path.lexists(OutputLayout(output_dir).metadata_path) else ""
    if recorded and recorded != location:
        raise MetadataLocationError(
            f"{output_dir} keeps its ML Metadata in {recorded}, not in {location}: give the same metadata setting "
            f"(--metadata-url / TAXI_METADATA_URL) as its earlier runs, or use another --output-dir"
        )
    if not recorded and record:
        os.makedirs(output_dir, exist_ok=True)
        with open(f"{path}.tmp", "w") as location_out:
            location_out.write(location + "\n")
        os.replace(f"{path}.tmp", path)
