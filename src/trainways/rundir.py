"""The run directory: what a training run leaves behind, and its truthful status.

Layout::

    config.json     the resolved configuration (seed included)
    status.json     {"state": "running" | "completed" | "interrupted" | "failed", ...}
    train.log       everything the run printed
    history.csv     one row per finished epoch (numbered from 1), written as the run goes
    metrics.json    final and best-epoch metrics, epoch times
    model.keras     the model after the last epoch
    best.keras      the model of the epoch with the best val_accuracy (Keras ModelCheckpoint)
    encoder.json    word index, topic names and encoding options, for ``predict``
    first_epoch.npz the weights after epoch 1, by variable path (for agreement reports)
    evaluation.json what ``trainways evaluate`` measured
    confusion_matrix.png / .svg   its confusion matrix
    checkpoints/    the last two epoch-end checkpoints (format: :mod:`trainways.checkpoint`)
    tensorboard/    TensorBoard logs, with ``--tensorboard``
    mlflow.json     with ``--mlflow``: the tracking URI and the MLflow run this run logs to
                    (``--resume`` continues that run)
    .lock           empty; the process writing the run holds an OS lock on it (:func:`lock`)

Beside the run directories (their parent), ``--mlflow`` without a URI keeps its SQLite store
``mlflow.db`` and the runs' artifacts in ``mlartifacts/``.

A comparison directory (``trainways compare``) holds one run directory per method, and::

    compare.json    the comparison's settings and each child's peak memory (for ``--resume``)
    configs/        each child run's configuration file, as ``train --config`` reads it
    comparison.json the report's figures
    report.md, report.html, plots/

This module is the only one that knows these names. ``status.json`` is written first as
"running" and rewritten last, so a directory is complete exactly when it says "completed"; every
file here is written atomically (:func:`trainways.files.write_atomic`). One process at a time
writes a run directory: every command that writes one holds its :func:`lock` while it does.
"""

from __future__ import annotations

import csv
import errno
import gc
import io
import json
import os
import shutil
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from trainways.files import write_atomic

CONFIG = "config.json"
STATUS = "status.json"
LOG = "train.log"
HISTORY = "history.csv"
METRICS = "metrics.json"
MODEL = "model.keras"
BEST = "best.keras"
CONFUSION = "confusion_matrix"
ENCODER = "encoder.json"
EVALUATION = "evaluation.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
FIRST_EPOCH = "first_epoch.npz"
TRACKING = "mlflow.json"
LOCK = ".lock"
# Beside the run directories: the default MLflow store and its artifacts.
TRACKING_STORE = "mlflow.db"
TRACKING_ARTIFACTS = "mlartifacts"

COMPARE_STATE = "compare.json"
COMPARE_CONFIGS = "configs"
# The weights every backend of a comparison (or agree --backends) starts from.
INITIAL_WEIGHTS = "initial.weights.h5"
COMPARISON = "comparison.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS = "plots"

# What a tracked run uploads as MLflow artifacts (those that exist): the run's record, the
# evaluation's once it is evaluated, and a comparison's report.
RUN_ARTIFACTS = (CONFIG, HISTORY, METRICS, BEST, LOG)
EVALUATION_ARTIFACTS = (EVALUATION, f"{CONFUSION}.png", f"{CONFUSION}.svg")
REPORT_ARTIFACTS = (REPORT_MD, REPORT_HTML, COMPARISON, PLOTS)

RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"


class RunDirError(ValueError):
    """The run directory cannot be used; the message is one line fit for a user."""


class RunDirBusy(RunDirError):
    """Another process (or another run in this one) holds the run directory's :func:`lock`."""


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (:func:`trainways.files.write_atomic`)."""
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file of a run, with a one-line error if it is missing or broken."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing: is {Path(path).parent} a trainways run?") from None
    except (OSError, json.JSONDecodeError) as error:
        raise RunDirError(f"cannot read {path}: {error}") from None


def default_run_dir(method: str, root: Path = Path("runs")) -> Path:
    """``runs/<local time and UTC offset>-<method>``: the name of a run started now (runs started
    in the same second share it: :func:`new_run_dir` makes each its own)."""
    return root / f"{datetime.now().astimezone().strftime('%Y%m%d-%H%M%S%z')}-{method}"


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


def prepare(path: Path, *, overwrite: bool) -> Path:
    """Create the run directory, refusing to mix a new run into an old one.

    Raises:
        RunDirError: ``path`` is a file, is a non-empty directory and ``overwrite`` is off, or is
            not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file: choose a directory path")
    if path.is_dir() and any(entry.name != LOCK for entry in path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"--out {path} exists and is not empty: choose another --out or pass --overwrite"
            )
        names = (
            CONFIG,
            STATUS,
            LOG,
            HISTORY,
            METRICS,
            MODEL,
            BEST,
            ENCODER,
            EVALUATION,
            FIRST_EPOCH,
            TRACKING,  # an old run's MLflow run must not be continued by this one
            f"{CONFUSION}.png",
            f"{CONFUSION}.svg",
        )
        for name in names:
            (path / name).unlink(missing_ok=True)
        # An old run's checkpoints would otherwise be resumed as if they were this run's.
        shutil.rmtree(path / CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(path / TENSORBOARD, ignore_errors=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise RunDirError(f"cannot write to --out {path}: {error.strerror or error}") from None
    return path


def resume_command(path: Path) -> str:
    """The command that continues the run in ``path``."""
    return f"trainways train --resume {path}"


def set_status(path: Path, state: str, **details: Any) -> None:
    """Record the run's state (with a timestamp and any details) in ``status.json``."""
    write_json(
        Path(path) / STATUS,
        {
            "state": state,
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
            **details,
        },
    )


def require_resumable(path: Path) -> dict[str, Any]:
    """The status of a run that ``--resume`` can continue, or a one-line error saying why not."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"--resume {path}: no such directory; pass the --out of a training run")
    if not (path / CONFIG).is_file() or not (path / STATUS).is_file():
        raise RunDirError(
            f"--resume {path}: not a trainways run (no {CONFIG} / {STATUS}); "
            "pass the --out of a training run"
        )
    status = read_json(path / STATUS)
    if status.get("state") == COMPLETED:
        raise RunDirError(
            f"--resume {path}: the run is already completed; start a new one with --out"
        )
    return status


def require_completed(path: Path) -> dict[str, Any]:
    """The status of a finished run, or a one-line error saying why ``path`` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist: pass the --out of a training run")
    status = read_json(path / STATUS)
    if status.get("state") != COMPLETED:
        raise RunDirError(
            f"run {path} is {status.get('state', 'unknown')}, not completed: "
            "train it to the end first"
        )
    return status


def read_status(path: Path) -> dict[str, Any] | None:
    """The run's ``status.json``, or ``None`` if the run has none yet."""
    status = Path(path) / STATUS
    return read_json(status) if status.is_file() else None


def read_config(path: Path) -> dict[str, Any]:
    """The run's ``config.json`` as saved (``RunConfig.from_dict`` validates it)."""
    return read_json(Path(path) / CONFIG)


def read_metrics(path: Path) -> dict[str, Any]:
    """The run's ``metrics.json``."""
    return read_json(Path(path) / METRICS)


def write_history_csv(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Write a run's ``history.csv`` as :class:`trainways.callbacks.HistoryCSV` writes it
    (epochs from 1), atomically.

    Same columns (``epoch`` then the keys sorted) and the same text for each value, so that a
    resumed run's ``CSVLogger(append=True)`` continues the file seamlessly.

    Args:
        history: ``History.history`` (one list per log key).
        path: The run directory.
    """
    keys = sorted(history)
    epochs = len(history[keys[0]]) if keys else 0
    target = Path(path) / HISTORY
    if not epochs:
        # A header alone would make CSVLogger(append=True) skip writing its own, with the keys.
        target.unlink(missing_ok=True)
        return
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["epoch", *keys])
    writer.writeheader()
    for epoch in range(epochs):
        writer.writerow({"epoch": epoch + 1, **{key: history[key][epoch] for key in keys}})
    write_atomic(target, text.getvalue())


def read_history(path: Path) -> dict[str, list[float]]:
    """The run's ``history.csv`` as ``History.history`` (one list per log key)."""
    import pandas as pd

    frame = pd.read_csv(Path(path) / HISTORY)
    return {column: frame[column].tolist() for column in frame.columns if column != "epoch"}


def read_tracking(path: Path) -> dict[str, Any] | None:
    """The run's ``mlflow.json`` (``tracking_uri``, ``experiment_id``, ``run_id``), or ``None``
    if the run was never logged to MLflow."""
    record = Path(path) / TRACKING
    return read_json(record) if record.is_file() else None


def write_tracking(path: Path, record: Mapping[str, Any]) -> None:
    """Record which MLflow run the run in ``path`` logs to."""
    write_json(Path(path) / TRACKING, dict(record))


def comparison_config(out: Path, method: str) -> Path:
    """Where ``compare`` writes the configuration of its ``method`` child."""
    return Path(out) / COMPARE_CONFIGS / f"{method}.json"
