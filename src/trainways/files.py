"""Writing files so that a crash never leaves half of one: the helpers every writer uses.

:func:`write_atomic` for a file; :func:`fsync_dir` to make a rename inside a directory durable
(a checkpoint directory renamed into place); :func:`default_mode` for what is renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file atomically and durably: a crash leaves the old file or the new one.

    The bytes go to a hidden temporary file beside ``path``, are flushed to disk, and the file is
    renamed over ``path``; text is written as UTF-8. New files get the usual 0644-style mode
    (the process umask), like every other file of a run.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX only: Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_mode(*, directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file or directory under the process umask.

    ``tempfile`` creates files 0600 and directories 0700; whatever is renamed into place gets
    this instead, so every file of a run has the same permissions.
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


__all__ = ["default_mode", "fsync_dir", "write_atomic"]
