"""The run directory's files: their names, how each is written and read, what ``--overwrite``
may remove (the layout is :mod:`trainways.rundir`'s docstring)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from trainways.config.run_config import SECTIONS
from trainways.files import refuse_symlink, write_atomic

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
STATES = (RUNNING, COMPLETED, INTERRUPTED, FAILED)

# Everything a run writes into its directory: what --overwrite removes (that and nothing else),
# and what must not be a symbolic link, which would carry a write out of the directory.
RUN_FILES = (
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
# An old run's checkpoints would otherwise be resumed as if they were the new run's.
RUN_DIRS = (CHECKPOINTS, TENSORBOARD)
# A comparison's own files, beside the run directories of its methods (or backends).
COMPARISON_FILES = (COMPARE_STATE, INITIAL_WEIGHTS, COMPARISON, REPORT_MD, REPORT_HTML, TRACKING)
COMPARISON_DIRS = (COMPARE_CONFIGS, PLOTS)


class RunDirError(ValueError):
    """The run directory cannot be used; the message is one line fit for a user."""


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


def prepare(path: Path, *, overwrite: bool) -> Path:
    """Create the run directory, refusing to mix a new run into an old one.

    With ``overwrite``, a non-empty ``path`` must be a trainways run (a readable ``status.json``
    and ``config.json`` of one) or comparison (its ``compare.json``): every check passes first,
    then only the files and folders trainways writes are removed (a symbolic link among them is
    removed itself, never what it points to); the user's other files stay.

    Raises:
        RunDirError: ``path`` is a file, is a non-empty directory and ``overwrite`` is off or it
            is no trainways run, or is not writable. Nothing has been removed then.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file: choose a directory path")
    doomed: list[Path] = []
    if path.is_dir() and any(entry.name != LOCK for entry in path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"--out {path} exists and is not empty: choose another --out or pass --overwrite"
            )
        doomed = _written_by_trainways(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
        for entry in doomed:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot write to --out {path}: {error.strerror or error}") from None
    for child in {entry.parent for entry in doomed} - {path}:
        with contextlib.suppress(OSError):  # a comparison's run directory, if now empty
            child.rmdir()
    return path


def _written_by_trainways(path: Path) -> list[Path]:
    """What ``--overwrite`` removes from ``path``: the entries trainways writes there, or a
    one-line error if ``path`` is neither a trainways run nor a comparison."""
    if is_run(path):
        return _entries(path, RUN_FILES + RUN_DIRS)
    children = _comparison_children(path)
    if children is None:
        raise RunDirError(
            f"--out {path} is not a trainways run (no readable {STATUS} and {CONFIG} of one): "
            "--overwrite replaces only a trainways run or comparison; choose another --out, or "
            "empty the directory yourself"
        )
    doomed = _entries(path, COMPARISON_FILES + COMPARISON_DIRS)
    for name in children:
        child = path / name
        if child.is_symlink():
            doomed.append(child)
        elif child.is_dir():
            doomed += _entries(child, RUN_FILES + RUN_DIRS)
    return doomed


def _entries(path: Path, names: Sequence[str]) -> list[Path]:
    """The entries of ``path`` with these names, links included, and the temporary files that a
    crash mid-write left of them (:func:`trainways.files.write_atomic`)."""
    found = [path / name for name in names if os.path.lexists(path / name)]
    for name in names:
        found += sorted(path.glob(f".{name}.*.tmp"))
    return found


def is_run(path: Path) -> bool:
    """Whether ``path`` holds a trainways run: a ``status.json`` with a run's state and a
    ``config.json`` of a run's sections (of ``trainways train`` or of a ``Loop``)."""
    try:
        status = json.loads((Path(path) / STATUS).read_text(encoding="utf-8"))
        config = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(status, dict)
        and status.get("state") in STATES
        and isinstance(config, dict)
        and set(config) <= {*SECTIONS, "loop"}
    )


def _comparison_children(path: Path) -> list[str] | None:
    """The names of a comparison's run directories, from its ``compare.json``; ``None`` if
    ``path`` holds no readable one."""
    try:
        state = json.loads((path / COMPARE_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    names = state.get("backends") or state.get("methods")
    plain = isinstance(names, list) and all(
        isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name
        for name in names
    )
    return names if plain else None


def refuse_links(path: Path, names: Sequence[str] = RUN_FILES + RUN_DIRS) -> None:
    """Refuse a run directory in which a file trainways writes is a symbolic link.

    Keras, matplotlib, the CSV logger and the log append to or replace a run's files by name; a
    link there would carry the write out of the run directory.

    Raises:
        SymlinkRefused: One of ``names`` in ``path`` is a link (:mod:`trainways.files`).
    """
    for name in names:
        refuse_symlink(Path(path) / name)


def resume_command(path: Path) -> str:
    """The command that continues the run in ``path``."""
    return f"trainways train --resume {path}"


def set_status(path: Path, state: str, **details: Any) -> None:
    """Record the run's state (with a timestamp and any details) in ``status.json``.

    A run starts (``running``) only in a directory whose run files are no symbolic links
    (:func:`refuse_links`): every entry point (``train``, ``--resume``, ``Loop``) passes here
    before its first write.
    """
    if state == RUNNING:
        refuse_links(path)
    write_json(
        Path(path) / STATUS,
        {
            "state": state,
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
            **details,
        },
    )


def killed_before_status(path: Path) -> bool:
    """Whether ``path`` holds only what a run writes before its first ``status.json`` — its
    ``config.json``, the lock, a temporary file —: a run killed at its very start."""
    entries = list(Path(path).iterdir()) if Path(path).is_dir() else []
    return any(entry.name == CONFIG for entry in entries) and all(
        entry.name in (CONFIG, LOCK) or (entry.name.startswith(".") and entry.name.endswith(".tmp"))
        for entry in entries
    )


def require_resumable(path: Path) -> dict[str, Any]:
    """The status of a run that ``--resume`` can continue, or a one-line error saying why not.

    A run killed after its ``config.json`` but before its first ``status.json``
    (:func:`killed_before_status`) is ``running`` with no epoch done: it starts over."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"--resume {path}: no such directory; pass the --out of a training run")
    if killed_before_status(path):
        read_config(path)  # a run's configuration, or one line saying it is not
        refuse_links(path)
        return {"state": RUNNING, "epochs_completed": 0}
    if not (path / CONFIG).is_file() or not (path / STATUS).is_file():
        raise RunDirError(
            f"--resume {path}: not a trainways run (no {CONFIG} / {STATUS}); "
            "pass the --out of a training run"
        )
    status = _read_status_file(path / STATUS)
    if status["state"] == COMPLETED:
        raise RunDirError(
            f"--resume {path}: the run is already completed; start a new one with --out"
        )
    # Checked before anything is written: the log, the CSV logger and Keras follow links.
    refuse_links(path)
    return status


def require_completed(path: Path) -> dict[str, Any]:
    """The status of a finished run, or a one-line error saying why ``path`` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist: pass the --out of a training run")
    status = _read_status_file(path / STATUS)
    if status["state"] != COMPLETED:
        raise RunDirError(
            f"run {path} is {status['state']}, not completed: train it to the end first"
        )
    return status


def read_status(path: Path) -> dict[str, Any] | None:
    """The run's ``status.json``, or ``None`` if the run has none yet.

    Raises:
        RunDirError: It is not a run's status (broken JSON, no known ``state``).
    """
    status = Path(path) / STATUS
    return _read_status_file(status) if status.is_file() else None


def _read_status_file(path: Path) -> dict[str, Any]:
    status = read_json(path)
    if not isinstance(status, dict) or status.get("state") not in STATES:
        raise RunDirError(
            f"{path} is not a run's status (a JSON object whose state is one of "
            f"{', '.join(STATES)}): repair it, or train anew into a new --out"
        )
    return status


def _read_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file of the run that must hold an object: one line if it holds anything else."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise RunDirError(
            f"{path} holds {type(value).__name__}, not {what}: repair it, or train anew"
        )
    return value


def read_config(path: Path) -> dict[str, Any]:
    """The run's ``config.json`` as saved (``RunConfig.from_dict`` validates its values).

    Raises:
        RunDirError: It is missing or broken, or is not a JSON object of sections.
    """
    file = Path(path) / CONFIG
    config = _read_object(file, "a run's configuration (a JSON object of sections)")
    for name, section in config.items():
        if not isinstance(section, dict):
            raise RunDirError(
                f"{file}: section {name!r} holds {type(section).__name__}, not a JSON object: "
                "repair it, or train anew"
            )
    return config


def read_metrics(path: Path) -> dict[str, Any]:
    """The run's ``metrics.json``."""
    return _read_object(Path(path) / METRICS, "a run's metrics (a JSON object)")


# encoder.json: what each field must hold for ``predict`` and ``export`` to encode text.
_ENCODER_FIELDS: dict[str, tuple[str, Any]] = {
    "word_index": ("an object of words and whole numbers", dict),
    "topics": ("a list of topic names", list),
    "max_len": ("a whole number", int),
    "num_words": ("a whole number or null", (int, type(None))),
    "skip_top": ("a whole number", int),
    "start_char": ("a whole number", int),
    "oov_char": ("a whole number", int),
    "index_from": ("a whole number", int),
}


def read_encoder(path: Path) -> dict[str, Any]:
    """The run's ``encoder.json`` (word index, topics, encoding options, ``max_len``), checked.

    Raises:
        RunDirError: It is missing or broken, or a field is missing or of the wrong type.
    """
    file = Path(path) / ENCODER
    state = _read_object(file, "a run's encoder (a JSON object)")
    for name, (kind, types) in _ENCODER_FIELDS.items():
        value = state.get(name)
        fine = isinstance(value, types) and not isinstance(value, bool)
        if name == "word_index" and fine:
            fine = all(isinstance(i, int) and not isinstance(i, bool) for i in value.values())
        if name == "topics" and fine:
            fine = bool(value) and all(isinstance(topic, str) for topic in value)
        if not fine:
            shown = "missing" if name not in state else f"{value!r:.60}"
            raise RunDirError(
                f"{file}: {name} must be {kind}, got {shown}: the run's encoder is damaged; "
                "restore it from a copy, or train anew"
            )
    return state


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
    """The run's ``history.csv`` as ``History.history`` (one list per log key); empty when the
    file is empty or absent (Keras's ``CSVLogger`` creates it when training begins, and a run
    killed in its first epoch leaves it so)."""
    import pandas as pd

    target = Path(path) / HISTORY
    if not target.is_file() or not target.read_text(encoding="utf-8").strip():
        return {}
    frame = pd.read_csv(target)
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
