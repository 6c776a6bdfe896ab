"""The three training methods behind one contract.

Each method module has ``train(model, data, spec, callbacks) -> History``; :func:`get_trainer`
picks one by name. They build nothing themselves: model, loss, optimizer and metrics come from the
same factories, so the methods differ only in how the loop is driven.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

import keras

from trainways.config import METHODS, ConfigError
from trainways.trainers.base import TrainData, TrainSpec, compile_model, drive

TrainFn = Callable[
    [keras.Model, TrainData, TrainSpec, Iterable[keras.callbacks.Callback] | None],
    keras.callbacks.History,
]


def get_trainer(method: str) -> TrainFn:
    """The ``train`` function of ``method`` (``fit``, ``batch`` or ``loop``).

    Raises:
        ConfigError: ``method`` is not one of them.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    # Imported on demand: the loop method imports TensorFlow directly.
    return importlib.import_module(f"trainways.trainers.{method}").train


__all__ = ["METHODS", "TrainData", "TrainSpec", "compile_model", "drive", "get_trainer"]
