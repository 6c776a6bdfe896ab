"""Method 1: Keras ``Model.fit`` with validation data and callbacks."""

from __future__ import annotations

from collections.abc import Iterable

import keras

from trainways.trainers.base import TrainData, TrainSpec, compile_model


def train(
    model: keras.Model,
    data: TrainData,
    spec: TrainSpec,
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
) -> keras.callbacks.History:
    """Train with ``Model.fit``; Keras owns the loop, the callbacks and the History.

    Args:
        model: An uncompiled or compiled Keras model; it is (re)compiled from ``spec``.
        data: Batched training and optional validation datasets.
        spec: Epochs, loss, optimizer, metrics and XLA setting.
        callbacks: Keras callbacks, driven by ``fit`` itself.

    Returns:
        The History of per-epoch logs.
    """
    compile_model(model, spec)
    return model.fit(
        data.train,
        validation_data=data.validation,
        epochs=spec.epochs,
        initial_epoch=spec.initial_epoch,
        steps_per_epoch=data.steps_per_epoch,
        callbacks=list(callbacks or []),
        shuffle=False,  # The dataset reshuffles itself each epoch; Keras must not try to.
        verbose=0,  # Progress and epoch lines come from trainways' own callbacks, in every method.
    )
