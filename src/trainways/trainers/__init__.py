"""The three training methods behind one contract and one setup.

``get_trainer(method, backend)(model, data, spec, callbacks) -> History`` is the contract. Every
method goes through :func:`prepare` first — compile, resolve ``steps_per_execution`` against the
data, and the backend's placement (strategy, one build, work-arounds) — and then its module's
``run(setup, callbacks)`` drives the epochs: ``fit`` hands them to Keras, ``batch`` and ``loop``
plug a stepper into :func:`trainways.trainers.base.drive`.

The backend is an argument: the module of the Keras backend the process runs on, which the run
layer gets from :func:`trainways.backends.current` and passes down. Nothing here looks it up,
as Keras's own base trainer never imports a backend.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import keras

from trainways.config import (
    METHODS,
    ConfigError,
    check_steps_method,
)
from trainways.trainers.base import TrainData, TrainSpec, compile_model, drive, steps_of

TrainFn = Callable[
    [keras.Model, TrainData, TrainSpec, Iterable[keras.callbacks.Callback] | None],
    keras.callbacks.History,
]


@dataclass(frozen=True)
class Setup:
    """A model ready to train, and everything its method needs.

    Attributes:
        model: The compiled, built model.
        data: The datasets as given (``fit`` distributes them itself).
        spec: The spec, ``steps_per_execution`` resolved to a whole number.
        backend: The Keras backend's module (:mod:`trainways.backends`).
        placement: Where the steps run: ``placement.distribute(data)`` gives the hand-driven
            methods their per-replica batches.
    """

    model: keras.Model
    data: TrainData
    spec: TrainSpec
    backend: ModuleType
    placement: Any


def prepare(model: keras.Model, data: TrainData, spec: TrainSpec, backend: ModuleType) -> Setup:
    """The one setup every method runs before its first epoch.

    Args:
        model: The model, built under the strategy it trains with.
        data: Its datasets.
        spec: What to train.
        backend: The Keras backend's module (:mod:`trainways.backends`).

    Raises:
        ConfigError: ``spec.steps_per_execution`` does not fit the data, or the backend refuses
            a setting.
    """
    steps = resolve_steps_per_execution(
        spec.steps_per_execution,
        data.steps_per_epoch or steps_of(data.train),
        stream=data.stream,
        auto=backend.auto_steps_per_execution(model),
    )
    backend.check_training(spec.jit_compile, steps)
    spec = dataclasses.replace(
        spec, steps_per_execution=steps, jit_compile=backend.jit_compile(spec.jit_compile)
    )
    compile_model(model, spec)
    return Setup(model, data, spec, backend, backend.prepare(model, data))


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


def _method(method: str) -> ModuleType:
    if method not in METHODS:
        raise ConfigError(
            f"unknown method {method!r}: choose one of {', '.join(METHODS)}", keys=("method",)
        )
    return importlib.import_module(f"{__name__}.{method}")


def get_trainer(method: str, backend: ModuleType) -> TrainFn:
    """The training function of ``method`` (``fit``, ``batch`` or ``loop``) on ``backend``, the
    Keras backend's module (:mod:`trainways.backends`).

    Raises:
        ConfigError: ``method`` is not one of them.
    """
    module = _method(method)

    def train(
        model: keras.Model,
        data: TrainData,
        spec: TrainSpec,
        callbacks: Iterable[keras.callbacks.Callback] | None = None,
    ) -> keras.callbacks.History:
        check_steps_method(method, step=spec.train_step, test_step=spec.test_step)
        return module.run(prepare(model, data, spec, backend), callbacks)

    train.__doc__ = module.run.__doc__
    train.__name__ = f"train_{method}"
    return train


__all__ = [
    "METHODS",
    "Setup",
    "TrainData",
    "TrainSpec",
    "compile_model",
    "drive",
    "get_trainer",
    "prepare",
    "resolve_steps_per_execution",
]
