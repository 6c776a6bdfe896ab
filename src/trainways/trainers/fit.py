"""Method 1: Keras ``Model.fit`` with validation data and callbacks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from trainways.trainers import Setup


def run(
    setup: Setup, callbacks: Iterable[keras.callbacks.Callback] | None = None
) -> keras.callbacks.History:
    """Train with ``Model.fit``; Keras owns the loop, the callbacks and the History.

    Returns:
        The History of per-epoch logs.
    """
    data, spec = setup.data, setup.spec
    # Keras opens a pass per epoch after the epoch-begin hooks: the clock must say which first.
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, _: data.set_epoch(epoch))
    return setup.model.fit(
        data.train if data.fit_train is None else data.fit_train,
        validation_data=data.validation if data.fit_validation is None else data.fit_validation,
        validation_steps=data.validation_steps,
        validation_freq=spec.validation_freq,
        epochs=spec.epochs,
        initial_epoch=spec.initial_epoch,
        # Only for a stream: a pass that ends lets Keras end an epoch's last execution early.
        steps_per_epoch=data.steps_per_epoch if data.stream else None,
        callbacks=[clock, *(callbacks or [])],
        shuffle=False,  # The dataset reshuffles itself each epoch; Keras must not try to.
        # 0 on the command line, whose progress and epoch lines come from its own callbacks.
        verbose=spec.verbose,
    )
