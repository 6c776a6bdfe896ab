"""``first_epoch.npz``: the weights after epoch 1, by variable path, kept after pruning."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np

from trainways import rundir
from trainways.files import write_atomic


def named_weights(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """``(variable path, value)`` of every model variable, in ``model.weights`` order."""
    return [(v.path, np.asarray(keras.ops.convert_to_numpy(v))) for v in model.weights]


def save_first_epoch_weights(run_dir: Path | str, model: keras.Model) -> Path:
    """Keep the weights after epoch 1 in ``first_epoch.npz``, by variable path.

    The epoch-1 checkpoint is pruned as training goes on; these stay, so a report can say how far
    apart several methods were after one epoch, not only at the end.
    """
    named = named_weights(model)
    arrays = {f"weights.{i:04d}": value for i, (_, value) in enumerate(named)}
    arrays["names"] = np.array([name for name, _ in named], dtype=str)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = Path(run_dir) / rundir.FIRST_EPOCH
    write_atomic(path, buffer.getvalue())
    return path


def first_epoch_weights(run_dir: Path | str) -> list[tuple[str, np.ndarray]] | None:
    """``(variable path, value)`` after epoch 1 (see :func:`save_first_epoch_weights`), or
    ``None`` if the run has not finished an epoch."""
    path = Path(run_dir) / rundir.FIRST_EPOCH
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        names = [str(name) for name in arrays["names"]]
        return [(name, arrays[f"weights.{i:04d}"]) for i, name in enumerate(names)]
