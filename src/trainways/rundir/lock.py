"""One writer per run directory: the OS lock every command that writes a run directory holds
while it does (:func:`lock`), and new directories that runs started together do not share
(:func:`new_run_dir`)."""

from __future__ import annotations

import errno
import gc
import os
import weakref
from pathlib import Path

from trainways.rundir.format import LOCK, RunDirError, default_run_dir, prepare


class RunDirBusy(RunDirError):
    """Another process (or another run in this one) holds the run directory's :func:`lock`."""


def new_run_dir(method: str, root: Path = Path("runs")) -> Path:
    """Make a new, empty directory named :func:`default_run_dir`, or with ``-2``, ``-3``... after
    that name if it is taken: creating a directory fails if it exists, so runs started together
    each get their own.

    Raises:
        RunDirError: ``root`` cannot hold a new directory.
    """
    base = default_run_dir(method, root)
    path, number = base, 1
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                path.mkdir()
                return path
            except FileExistsError:
                number += 1
                path = base.with_name(f"{base.name}-{number}")
    except OSError as error:
        raise RunDirError(
            f"cannot make a run directory in {root}: {error.strerror or error}; pass --out"
        ) from None


class RunDirLock:
    """The right to write one run directory, held until :meth:`release` (:func:`lock`).

    A context manager: ``with lock(path): ...`` releases it at the block's end.

    Attributes:
        path: The run directory.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        # Closing the file drops the OS lock; an abandoned holder (a Loop left mid-run) is
        # released when it is collected.
        self._close = weakref.finalize(self, os.close, fd) if fd is not None else None

    def release(self) -> None:
        """Let another process write the directory (again: nothing happens)."""
        if self._close is not None:
            self._close()

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock(path: Path, *, create: bool = False, advice: str = "wait for it to end") -> RunDirLock:
    """Become the only process that writes the run directory ``path``, or refuse at once.

    An OS lock (``flock``) on ``path/.lock``, held until :meth:`RunDirLock.release` or until the
    process ends: the OS drops it then, however the process died, so a killed run never leaves
    a stale lock. Taking it writes nothing but the empty ``.lock`` file, the first time, so a
    command refused afterwards leaves the run as it was. On a file system without locks (or
    without ``fcntl``) no lock is taken.

    Args:
        path: The run directory. Check first that it is the run the caller means (a lock file
            must not appear in a directory that is not a run), and again under the lock where
            another process may have changed it in between.
        create: Make ``path`` first (:func:`prepare`'s checks) if it is not a directory.
        advice: What the refusal tells the user to do instead.

    Raises:
        RunDirBusy: Another process holds the lock (its pid is named where the OS tells it).
        RunDirError: ``path`` cannot be made or written.
    """
    path = Path(path)
    if create and not path.is_dir():
        prepare(path, overwrite=False)
    try:
        import fcntl
    except ImportError:  # Windows
        return RunDirLock(path, None)
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as error:
        raise RunDirError(f"cannot write to {path}: {error.strerror or error}") from None
    for attempt in range(2):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return RunDirLock(path, fd)
        except BlockingIOError:
            # A Loop this process abandoned mid-run may hold it until it is collected.
            if attempt == 0:
                gc.collect()
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise RunDirError(f"cannot lock {path}: {error.strerror or error}") from None
            os.close(fd)
            return RunDirLock(path, None)  # this file system cannot lock
    holder = _lock_holder(path / LOCK)
    os.close(fd)
    who = "another run in this process" if holder == os.getpid() else "another trainways process"
    pid = f" (pid {holder})" if holder is not None else ""
    raise RunDirBusy(f"{path} is in use by {who}{pid}: {advice}")


def _lock_holder(lock_file: Path) -> int | None:
    """The pid holding ``lock_file``'s ``flock``, as Linux's ``/proc/locks`` says; ``None`` where
    there is no such table (the lock file itself is never written, see :func:`lock`)."""
    try:
        inode = str(os.stat(lock_file).st_ino)
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in table.splitlines():
        # "3: FLOCK  ADVISORY  WRITE 1234 fd:01:56789 0 EOF"; a waiter's has "->" before FLOCK.
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
            return int(fields[4]) if fields[4].isdigit() else None
    return None
