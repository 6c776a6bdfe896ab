"""Runtime rules of the configuration: what a setting means once the data and the method are
known (:func:`resolve_steps_per_execution`), and which method can run a user's step
(:func:`check_steps_method`). The trainers apply them where they act; :class:`TrainConfig`
checks the second on construction too.
"""

from __future__ import annotations

from typing import Any

from trainways.config.fields import ConfigError


def check_steps_method(method: str, *, step: Any, test_step: Any) -> None:
    """Refuse a user's step function (or its ``FILE.py:FUNCTION``) for a method that cannot run it.

    Raises:
        ConfigError: A step is given and ``method`` is not ``loop``.
    """
    given = {"step": step, "test_step": test_step}
    keys = tuple(key for key, fn in given.items() if fn is not None)
    if method == "loop" or not keys:
        return
    raise ConfigError(
        f"a step function runs in the loop method, not {method}: use method 'loop', or, to "
        f"customise {method}, override your model's train_step / test_step (Keras's own "
        "convention, which every method runs)",
        keys=("method", *keys),
    )


def resolve_steps_per_execution(
    value: int | str, steps_per_epoch: int | None, *, stream: bool = False, auto: int = 1
) -> int:
    """The steps per execution that ``value`` (a number, ``"auto"`` or ``"epoch"``) means.

    On data that is one epoch per pass, an epoch's last execution runs the steps that remain
    (the pass ends there), so any number works; more than an epoch is an epoch. An endless
    stream cannot end an execution early: ``fit``'s would take the next epoch's batches, so
    there the value must divide the epoch (``"auto"`` takes the largest divisor up to ``auto``).

    Args:
        value: The setting.
        steps_per_epoch: Steps per epoch, ``None`` if the data does not say.
        stream: Whether the data is an endless stream of epochs.
        auto: What ``"auto"`` means (the backend's choice).

    Raises:
        ConfigError: ``"epoch"`` without ``steps_per_epoch``, or a stream's ``value`` that does
            not divide ``steps_per_epoch`` (the message lists the values that do).
    """
    if value == "epoch" and steps_per_epoch is None:
        raise ConfigError(
            "steps_per_execution 'epoch' needs a dataset that knows its epoch: pass "
            "steps_per_epoch, or a number",
            keys=("steps_per_execution",),
        )
    resolved = auto if value == "auto" else steps_per_epoch if value == "epoch" else value
    if steps_per_epoch is None:
        return int(resolved)
    resolved = min(int(resolved), steps_per_epoch)
    if value == "auto" and stream:  # the largest that divides the epoch, at worst 1
        resolved = max(d for d in range(1, resolved + 1) if steps_per_epoch % d == 0)
    if not stream or steps_per_epoch % resolved == 0:
        return resolved
    choices = [d for d in range(1, steps_per_epoch + 1) if steps_per_epoch % d == 0]
    if len(choices) > 12:
        choices = [*choices[:11], steps_per_epoch]
    raise ConfigError(
        f"steps_per_execution {value} does not divide the {steps_per_epoch} steps of an epoch of "
        f"this endless stream: choose one of {', '.join(map(str, choices))} or 'epoch', or give "
        "data with one epoch per pass",
        keys=("steps_per_execution",),
    )
