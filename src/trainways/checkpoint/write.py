"""Writing a checkpoint atomically, and pruning the older ones."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainways.checkpoint.adapters import callback_states, is_array_list
from trainways.checkpoint.format import (
    ARRAYS,
    CHECKPOINTS,
    FORMAT_VERSION,
    KEEP,
    OLD_PREFIX,
    STATE,
    TMP_PREFIX,
    checkpoint_name,
    complete_dirs,
    ensure_built,
    random_state_variables,
    sha256_of,
)
from trainways.files import default_mode, fsync_dir, write_atomic


def _remove_dir(path: Path) -> None:
    """Delete a directory by first renaming it to a hidden name, so it vanishes atomically."""
    doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{OLD_PREFIX}{path.name}-"))
    os.replace(path, doomed / path.name)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def _prune(checkpoints: Path, newest: int) -> None:
    """Keep the checkpoint just written and the newest ones before it, ``KEEP`` in all.

    Checkpoints of later epochs belong to a run that was resumed from an earlier one: they are
    an abandoned future and would otherwise be mistaken for the latest.
    """
    older = [path for epoch, path in complete_dirs(checkpoints) if epoch < newest]
    later = [path for epoch, path in complete_dirs(checkpoints) if epoch > newest]
    for path in later + older[KEEP - 1 :]:
        _remove_dir(path)
    # Leftovers of a crash mid-write or mid-delete: nothing reads them, so free the space.
    for entry in checkpoints.iterdir():
        if entry.name.startswith((TMP_PREFIX, OLD_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _copy_files(files: Sequence[Path], into: Path) -> dict[str, str | None]:
    """Copy each of ``files`` that exists into ``into``; name → sha256 of the copy, or ``None``."""
    copies: dict[str, str | None] = {}
    for path in files:
        path = Path(path)
        if path.name in (ARRAYS, STATE):
            raise ValueError(f"a checkpoint cannot hold a file named {path.name}")
        if not path.is_file():
            copies[path.name] = None
            continue
        write_atomic(into / path.name, path.read_bytes())  # flushed to disk, as the arrays
        copies[path.name] = sha256_of(into / path.name)
    return copies


def save_checkpoint(
    run_dir: Path | str,
    model: keras.Model,
    *,
    epoch: int,
    history: Mapping[str, Sequence[float]],
    callbacks: Iterable[keras.callbacks.Callback] = (),
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
    files: Sequence[Path] = (),
) -> Path:
    """Write the checkpoint of ``epoch`` completed epochs atomically, then prune older ones.

    Args:
        run_dir: The run directory; checkpoints go to its ``checkpoints/``.
        model: A compiled model (its optimizer is built first if no step has built it yet).
        epoch: Number of completed epochs (1-based).
        history: Logs of every completed epoch, one list per key.
        callbacks: Callbacks whose state to save; those without a registered adapter are skipped.
        extra_optimizers: Optimizers a user's step applies besides ``model.optimizer``.
        files: Run files written this epoch before the checkpoint (``best.keras``): a copy of
            each that exists goes into the checkpoint, so that the checkpoint is the epoch's one
            commit point and a resume can put back the version of that epoch.

    Returns:
        The checkpoint's directory.
    """
    optimizer = ensure_built(model)
    checkpoints = Path(run_dir) / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(epoch)

    arrays: dict[str, np.ndarray] = {}
    weights = model.get_weights()
    for i, value in enumerate(weights):
        arrays[f"weights.{i:04d}"] = np.asarray(value)
    variables = [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
    for i, value in enumerate(variables):
        arrays[f"optimizer.{i:04d}"] = value
    random_states = [
        np.asarray(keras.ops.convert_to_numpy(v)) for v in random_state_variables(model)
    ]
    for i, value in enumerate(random_states):
        arrays[f"random.{i:04d}"] = value
    extras = []
    for k, extra in enumerate(extra_optimizers, start=1):
        values = [np.asarray(keras.ops.convert_to_numpy(v)) for v in extra.variables]
        for i, value in enumerate(values):
            arrays[f"optimizer{k}.{i:04d}"] = value
        extras.append({"class": type(extra).__name__, "variables": len(values)})
    callback_json: dict[str, dict[str, Any]] = {}
    for key, state in callback_states(callbacks).items():
        values, counts = {}, {}
        for field, value in state.items():
            if is_array_list(value):
                counts[field] = len(value)
                for i, item in enumerate(value):
                    arrays[f"callbacks.{key}.{field}.{i:04d}"] = np.asarray(item)
            else:
                values[field] = value
        callback_json[key] = {"values": values, "arrays": counts}

    tmp = Path(tempfile.mkdtemp(dir=checkpoints, prefix=f"{TMP_PREFIX}{name}-"))
    os.chmod(tmp, default_mode(directory=True))
    try:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(tmp / ARRAYS, buffer.getvalue())
        copies = _copy_files(files, tmp)
        state = {
            "format": FORMAT_VERSION,
            "epoch": epoch,
            "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            "history": {key: [float(v) for v in values] for key, values in history.items()},
            "callbacks": callback_json,
            "optimizer": {"class": type(optimizer).__name__, "variables": len(variables)},
            "extra_optimizers": extras,
            "weights": len(weights),
            "random_states": len(random_states),
            "keras_version": keras.__version__,
            # Hashed from the file as written, so it vouches for the bytes on disk.
            "arrays_sha256": sha256_of(tmp / ARRAYS),
            "files": copies,
        }
        write_atomic(tmp / STATE, json.dumps(state, indent=1) + "\n")
        fsync_dir(tmp)
        final = checkpoints / name
        if final.exists():
            # Rewriting an epoch after resuming from an earlier checkpoint. A crash between this
            # and the rename below leaves that earlier checkpoint as the latest: still correct.
            _remove_dir(final)
        os.replace(tmp, final)
        fsync_dir(checkpoints)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(checkpoints, epoch)
    return final
