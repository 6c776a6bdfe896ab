"""Putting a checkpoint back into a model, its optimizers and its callbacks, and the run files it
holds back into the run directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras

from trainways.checkpoint.adapters import tracked_callbacks
from trainways.checkpoint.format import Checkpoint, ensure_built, random_state_variables
from trainways.files import write_atomic


def _matching_variables(
    where: str,
    what: str,
    owner: str,
    optimizer: keras.optimizers.Optimizer,
    saved_class: str,
    saved: Any,
) -> list[Any]:
    """``optimizer``'s variables, checked against a checkpoint's saved class and shapes."""
    if type(optimizer).__name__ != saved_class:
        raise ValueError(
            f"checkpoint {where} holds a {saved_class} {what}, the {owner} has "
            f"{type(optimizer).__name__}"
        )
    variables = optimizer.variables
    shapes = [tuple(v.shape) for v in variables]
    saved_shapes = [tuple(a.shape) for a in saved]
    if shapes != saved_shapes:
        if len(shapes) != len(saved_shapes):
            detail = f"{len(saved_shapes)} {what} variables, the {owner}'s {len(shapes)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(saved_shapes, shapes, strict=True)) if a != b)
            detail = f"{what} variable {i} of shape {saved_shapes[i]}, the {owner}'s {shapes[i]}"
        raise ValueError(
            f"checkpoint {where} holds {detail}: is it the same model, data, step and optimizer "
            "configuration?"
        )
    return variables


def restore_model(
    checkpoint: Checkpoint,
    model: keras.Model,
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
) -> None:
    """Put the checkpoint's weights and optimizer variables (learning rate included) into ``model``.

    Builds the optimizer first if no training step has built it yet.

    Args:
        checkpoint: The checkpoint.
        model: The compiled model.
        extra_optimizers: The optimizers a user's step applies besides the model's, built (a
            traced step has built them), in the order they were saved.

    Raises:
        ValueError: The model has no optimizer, or model or optimizers do not match the
            checkpoint.
    """
    optimizer = ensure_built(model)
    where = checkpoint.path.name
    assignments = list(
        zip(
            _matching_variables(
                where,
                "optimizer",
                "model",
                optimizer,
                checkpoint.optimizer_class,
                checkpoint.optimizer_variables,
            ),
            checkpoint.optimizer_variables,
            strict=True,
        )
    )
    if len(extra_optimizers) != len(checkpoint.extra_optimizers):
        raise ValueError(
            f"checkpoint {where} holds {len(checkpoint.extra_optimizers)} optimizer(s) besides "
            f"the model's, the run's step keeps {len(extra_optimizers)}: resume with the same step"
        )
    for k, (extra, (saved_class, saved)) in enumerate(
        zip(extra_optimizers, checkpoint.extra_optimizers, strict=True), start=1
    ):
        what = f"optimizer {k} of the step"
        variables = _matching_variables(where, what, "step", extra, saved_class, saved)
        assignments += zip(variables, saved, strict=True)
    states = random_state_variables(model)
    if len(states) != len(checkpoint.random_states):
        raise ValueError(
            f"checkpoint {where} holds {len(checkpoint.random_states)} random generator "
            f"state(s), the model has {len(states)}: resume with the same model"
        )
    assignments += zip(states, checkpoint.random_states, strict=True)
    model.set_weights(list(checkpoint.weights))
    for variable, value in assignments:
        variable.assign(value)


def restore_callbacks(
    checkpoint: Checkpoint, callbacks: Iterable[keras.callbacks.Callback]
) -> None:
    """Put the saved states back into the tracked callbacks (``EarlyStopping`` and registered).

    Call it after the callbacks' ``on_train_begin``: ``EarlyStopping`` resets itself there.

    Raises:
        ValueError: The tracked callbacks differ from those the checkpoint saved.
    """
    tracked = tracked_callbacks(callbacks)
    if set(tracked) != set(checkpoint.callback_states):
        raise ValueError(
            f"checkpoint {checkpoint.path.name} saved state for "
            f"[{', '.join(sorted(checkpoint.callback_states))}] but the run has "
            f"[{', '.join(sorted(tracked))}]: resume with the same callbacks"
        )
    for key, (callback, adapter) in tracked.items():
        adapter.set(callback, checkpoint.callback_states[key])


def restore(
    checkpoint: Checkpoint,
    model: keras.Model,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
) -> None:
    """Restore weights, optimizer variables, learning rate and callback states, right now.

    Within a training run, use ``EpochCheckpoint(restore_from=...)`` instead: it calls this at
    the right moment, after the trainer has attached the optimizer and after ``EarlyStopping``
    has reset itself in ``on_train_begin``.
    """
    restore_model(checkpoint, model, extra_optimizers)
    restore_callbacks(checkpoint, callbacks)


def restore_files(checkpoint: Checkpoint, run_dir: Path | str) -> list[str]:
    """Put the run files the checkpoint holds (``best.keras``) back as they were at its epoch.

    A file the checkpoint records as absent is removed: it was written by an epoch after it.

    Returns:
        The names of the files changed.
    """
    changed = []
    for name, sha in checkpoint.files.items():
        target = Path(run_dir) / name
        if sha is None:
            if target.exists():
                target.unlink()
                changed.append(name)
            continue
        saved = (checkpoint.path / name).read_bytes()
        if not target.is_file() or target.read_bytes() != saved:
            write_atomic(target, saved)
            changed.append(name)
    return changed
