"""Method 1: Keras ``Model.fit`` with validation data and callbacks."""

from __future__ import annotations

from collections.abc import Iterable

import keras

from trainways.trainers.base import (
    TrainData,
    TrainSpec,
    check_steps_per_execution,
    compile_model,
)


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
    check_steps_per_execution(spec.steps_per_execution, data.steps_per_epoch)
    compile_model(model, spec)
    if model.distribute_strategy.num_replicas_in_sync > 1:
        from trainways.trainers.distribute import work_around_keras_multiworker

        work_around_keras_multiworker(model, data.train.element_spec)
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
