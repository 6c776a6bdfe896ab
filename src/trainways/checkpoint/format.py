"""The checkpoint format: its file names, the :class:`Checkpoint` read back, where checkpoints lie.

Also the two facts about a model that both writing and restoring need: which of its variables
are random generators' states (:func:`random_state_variables`) and that its optimizer is built
(:func:`ensure_built`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainways import rundir

CHECKPOINTS = rundir.CHECKPOINTS
ARRAYS = "arrays.npz"
STATE = "state.json"
FORMAT_VERSION = 1
KEEP = 2

NAME_PATTERN = re.compile(r"^epoch-(\d+)$")
# Hidden names: listing complete checkpoints never sees a half-written or half-deleted one.
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"

History = dict[str, list[float]]
CallbackState = dict[str, Any]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One verified checkpoint, loaded into memory.

    Attributes:
        path: Its directory, ``<run_dir>/checkpoints/epoch-NNNN``.
        epoch: Number of completed epochs: resume with ``TrainSpec(initial_epoch=epoch)``.
        learning_rate: The optimizer's learning rate at the end of that epoch.
        history: Every epoch's logs so far, one list per key, as ``History.history``.
        callback_states: Saved state per tracked callback, keyed ``<TypeName>#<n>`` (the n-th
            tracked callback of that type); array fields hold lists of arrays.
        optimizer_class: Class name of the optimizer whose variables these are.
        weights: ``model.get_weights()``, in that order.
        optimizer_variables: The values of ``optimizer.variables``, in that order.
        extra_optimizers: Per optimizer a user's step applies besides the model's
            (:func:`trainways.steps.keeps`): its class name and variables' values.
        random_states: The model's random generators' states (its ``SeedGenerator`` s, which
            dropout draws from; not among ``get_weights()``), so that a resumed run draws the
            masks the unbroken run draws.
        files: Run files that callbacks before the checkpoint wrote (``best.keras``), by name:
            the sha256 of the copy the checkpoint holds beside its arrays, or ``None`` when the
            file did not exist at that epoch. :func:`~trainways.checkpoint.restore_files` puts
            them back, so a resume rolls back what an epoch wrote after its commit.
    """

    path: Path
    epoch: int
    learning_rate: float
    history: History
    callback_states: dict[str, CallbackState]
    optimizer_class: str
    weights: tuple[np.ndarray, ...]
    optimizer_variables: tuple[np.ndarray, ...]
    extra_optimizers: tuple[tuple[str, tuple[np.ndarray, ...]], ...] = ()
    random_states: tuple[np.ndarray, ...] = ()
    files: dict[str, str | None] = field(default_factory=dict)


def random_state_variables(model: keras.Model) -> list[Any]:
    """The model's variables that are neither weights nor optimizer state: its random
    generators' states, in the model's order."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def checkpoint_name(epoch: int) -> str:
    """The directory name of the checkpoint after ``epoch`` completed epochs."""
    return f"epoch-{epoch:04d}"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes (``state.json`` records that of ``arrays.npz``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def complete_dirs(checkpoints: Path) -> list[tuple[int, Path]]:
    """``(epoch, directory)`` of every directory named like a checkpoint, newest first."""
    if not checkpoints.is_dir():
        return []
    found = []
    for entry in checkpoints.iterdir():
        match = NAME_PATTERN.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, key=lambda item: item[0], reverse=True)


def ensure_built(model: keras.Model) -> keras.optimizers.Optimizer:
    """The model's optimizer, built if no training step has built it yet.

    Raises:
        ValueError: The model is not compiled.
    """
    optimizer = model.optimizer
    if optimizer is None:
        raise ValueError("the model has no optimizer: compile it before saving or restoring")
    # With the TensorFlow backend and no distribution strategy, every method (fit included)
    # builds the optimizer lazily, at the first training step; before that it holds only
    # iterations and the learning rate.
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return optimizer
