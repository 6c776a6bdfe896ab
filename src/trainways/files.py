"""Writing files so that a crash never leaves half of one, and never through a symbolic link:
the helpers every writer uses.

:func:`write_atomic` for a file; :func:`open_append` and :class:`NoFollowFileHandler` for a file
written as it goes (``train.log``); :func:`refuse_symlink` for a path about to be written by
someone else (Keras, matplotlib); :func:`fsync_dir` to make a rename inside a directory durable
(a checkpoint directory renamed into place); :func:`default_mode` for what is renamed into place.

A run writes only inside its directory: a symbolic link there (``train.log`` pointing at a
user's file) would carry a write out of it, so every writer here refuses one
(:class:`SymlinkRefused`) instead of following or replacing it.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import TextIO

# Not on Windows, where open() does not follow links the same way: refuse_symlink checks there.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SymlinkRefused(ValueError):
    """A file to write is a symbolic link; the message is one line fit for a user."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"{path} is a symbolic link: trainways writes no file through a link, so that "
            "nothing outside the directory changes; remove the link (or put a copy of what it "
            "points to in its place) and try again"
        )
        self.path = Path(path)


def refuse_symlink(path: Path | str) -> None:
    """Refuse to write ``path`` if it is a symbolic link (``os.lstat``: the link itself).

    Raises:
        SymlinkRefused: ``path`` is a link, dangling or not.
    """
    if os.path.islink(path):
        raise SymlinkRefused(path)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file atomically and durably: a crash leaves the old file or the new one.

    The bytes go to a hidden temporary file beside ``path``, are flushed to disk, and the file is
    renamed over ``path``; text is written as UTF-8. New files get the usual 0644-style mode
    (the process umask), like every other file of a run.

    Raises:
        SymlinkRefused: ``path`` is a symbolic link (it is left as it is).
    """
    path = Path(path)
    refuse_symlink(path)
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


def open_append(path: Path | str, *, encoding: str = "utf-8") -> TextIO:
    """Open ``path`` to append text, creating it, without following a symbolic link.

    Raises:
        SymlinkRefused: ``path`` is a symbolic link.
    """
    refuse_symlink(path)
    try:
        # O_NOFOLLOW closes the gap between the check above and the open.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SymlinkRefused(path) from None
        raise
    return os.fdopen(fd, "a", encoding=encoding)


class NoFollowFileHandler(logging.FileHandler):
    """``logging.FileHandler`` appending to its file through :func:`open_append`: a log file
    that is a symbolic link is refused (:class:`SymlinkRefused`), not followed."""

    def _open(self) -> TextIO:
        return open_append(self.baseFilename, encoding=self.encoding or "utf-8")


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


__all__ = [
    "NoFollowFileHandler",
    "SymlinkRefused",
    "default_mode",
    "fsync_dir",
    "open_append",
    "refuse_symlink",
    "write_atomic",
]
