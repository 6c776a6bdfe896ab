"""Reading checkpoints back: verify each, newest first, and fall back past damaged ones."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainways.checkpoint.format import (
    ARRAYS,
    CHECKPOINTS,
    FORMAT_VERSION,
    STATE,
    CallbackState,
    Checkpoint,
    complete_dirs,
    sha256_of,
)

LOG = logging.getLogger("trainways")


class _Unusable(Exception):
    """A checkpoint failed verification; the message says why, in a few words."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _Unusable(reason)


def _read(path: Path, epoch: int) -> Checkpoint:
    """Load and verify one checkpoint directory.

    Raises:
        _Unusable: Any file is missing, unparsable, inconsistent or fails its checksum.
    """
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _Unusable(f"{STATE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Unusable(f"{STATE} is unreadable: {_one_line(error)}") from None
    _require(isinstance(state, dict), f"{STATE} is not an object")
    _require(
        state.get("format") == FORMAT_VERSION,
        f"{STATE} has format {state.get('format')!r}, expected {FORMAT_VERSION}",
    )
    _require(state.get("epoch") == epoch, f"{STATE} says epoch {state.get('epoch')!r}")
    try:
        n_weights = int(state["weights"])
        n_optimizer = int(state["optimizer"]["variables"])
        optimizer_class = str(state["optimizer"]["class"])
        learning_rate = float(state["learning_rate"])
        history = {str(k): [float(v) for v in vs] for k, vs in state["history"].items()}
        callbacks = {
            str(key): (dict(entry["values"]), {str(f): int(n) for f, n in entry["arrays"].items()})
            for key, entry in state["callbacks"].items()
        }
        expected_sha = str(state["arrays_sha256"])
        # Absent from checkpoints written before user steps existed: none then.
        extra_counts = [
            (str(entry["class"]), int(entry["variables"]))
            for entry in state.get("extra_optimizers", [])
        ]
        # Absent from checkpoints written before models had dropout: none then.
        n_random = int(state.get("random_states", 0))
        # Absent from checkpoints written before they held run files: none then.
        files = {
            str(name): None if sha is None else str(sha)
            for name, sha in state.get("files", {}).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _Unusable(f"{STATE} lacks a valid field: {_one_line(error)}") from None

    if not (path / ARRAYS).is_file():
        raise _Unusable(f"{ARRAYS} is missing")
    _require(sha256_of(path / ARRAYS) == expected_sha, f"{ARRAYS} does not match its sha256")
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _Unusable(f"{ARRAYS} is unreadable: {_one_line(error)}") from None

    def take(prefix: str, count: int) -> tuple[np.ndarray, ...]:
        keys = [f"{prefix}.{i:04d}" for i in range(count)]
        missing = [key for key in keys if key not in arrays]
        _require(not missing, f"{ARRAYS} lacks {', '.join(missing[:3])}")
        return tuple(arrays.pop(key) for key in keys)

    weights = take("weights", n_weights)
    optimizer_variables = take("optimizer", n_optimizer)
    random_states = take("random", n_random)
    extra_optimizers = tuple(
        (name, take(f"optimizer{k}", count))
        for k, (name, count) in enumerate(extra_counts, start=1)
    )
    callback_states: dict[str, CallbackState] = {}
    for key, (values, counts) in callbacks.items():
        callback_states[key] = dict(values)
        for field, count in counts.items():
            callback_states[key][field] = list(take(f"callbacks.{key}.{field}", count))
    _require(not arrays, f"{ARRAYS} has unexpected arrays {', '.join(sorted(arrays)[:3])}")
    for name, sha in files.items():
        if sha is not None:
            _require((path / name).is_file(), f"{name} is missing")
            _require(sha256_of(path / name) == sha, f"{name} does not match its sha256")
    return Checkpoint(
        path=path,
        epoch=epoch,
        learning_rate=learning_rate,
        history=history,
        callback_states=callback_states,
        optimizer_class=optimizer_class,
        weights=weights,
        optimizer_variables=optimizer_variables,
        extra_optimizers=extra_optimizers,
        random_states=random_states,
        files=files,
    )


def load_checkpoint(run_dir: Path | str, *, warn: Callable[[str], None]) -> Checkpoint | None:
    """The newest checkpoint of ``run_dir`` that verifies, or ``None`` if there is none.

    Each candidate, newest first, must have a parsable ``state.json``, an ``arrays.npz`` matching
    the sha256 recorded there, and every array it lists. Hidden temporary directories left by a
    crash are never candidates.

    Args:
        run_dir: The run directory.
        warn: Receives one line if any newer checkpoint had to be skipped, naming it, why, and
            what is used instead; it is not called when everything verifies or nothing exists.
    """
    bad: list[str] = []
    found: Checkpoint | None = None
    for epoch, path in complete_dirs(Path(run_dir) / CHECKPOINTS):
        try:
            found = _read(path, epoch)
            break
        except _Unusable as error:
            bad.append(f"{path} ({error})")
    if bad:
        outcome = (
            f"falling back to the previous one, {found.path.name}"
            if found is not None
            else "no usable checkpoint is left"
        )
        noun = "checkpoint" if len(bad) == 1 else "checkpoints"
        warn(_one_line(f"{noun} {'; '.join(bad)} unusable: {outcome}"))
    return found


def latest_checkpoint(run_dir: Path | str) -> Checkpoint | None:
    """:func:`load_checkpoint`, warning through the ``trainways`` logger."""
    return load_checkpoint(run_dir, warn=LOG.warning)


def lost_checkpoints(
    run_dir: Path | str, status: Mapping[str, Any], latest: Checkpoint | None
) -> str | None:
    """Why the checkpoints of a run with no usable one must have been lost, or ``None`` when
    a kill explains it (the run is then started over).

    The checkpoint is an epoch's commit point: ``history.csv`` rows or ``best.keras`` written
    after the last one are rolled back, not taken as lost checkpoints. A kill cannot damage a
    checkpoint (each is renamed into place complete) nor delete the newest one (pruning keeps
    it), and ``status.json`` counts only checkpointed epochs. So damaged checkpoints with none
    usable left, or a status counting epochs with no checkpoint at all, mean they were lost.

    Args:
        run_dir: The run directory.
        status: Its ``status.json``.
        latest: What :func:`load_checkpoint` found.
    """
    if latest is not None:
        return None
    damaged = [path.name for _, path in complete_dirs(Path(run_dir) / CHECKPOINTS)]
    counted = int(status.get("epochs_completed") or 0)
    if damaged:
        return f"its checkpoints ({', '.join(damaged)}) are damaged"
    if counted:
        return f"its status says {counted} epoch(s) completed"
    return None
