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
        data.train,
        validation_data=data.validation,
        epochs=spec.epochs,
        initial_epoch=spec.initial_epoch,
        # Only for a stream: a pass that ends lets Keras end an epoch's last execution early.
        steps_per_epoch=data.steps_per_epoch if data.stream else None,
        callbacks=[clock, *(callbacks or [])],
        shuffle=False,  # The dataset reshuffles itself each epoch; Keras must not try to.
        verbose=0,  # Progress and epoch lines come from trainways' own callbacks, in every method.
    )
