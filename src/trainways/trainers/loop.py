"""Method 3: a hand-written training loop — the backend's gradient step, driven by trainways.

The step (forward pass, loss, gradients, one optimizer update, metric updates) is the backend's
``LoopStepper`` (:mod:`trainways.backends.tensorflow.loop`: ``tf.GradientTape`` steps compiled
with ``tf.function``); the epochs, validation and callbacks are the shared driver's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import keras

from trainways.trainers.base import drive

if TYPE_CHECKING:
    from trainways.trainers import Setup


def run(
    setup: Setup, callbacks: Iterable[keras.callbacks.Callback] | None = None
) -> keras.callbacks.History:
    """Train with the backend's hand-written step, callbacks driven in ``fit``'s order.

    Returns:
        The History of per-epoch logs.
    """
    stepper = setup.backend.LoopStepper(
        setup.model, setup.spec, setup.data.train.element_spec, setup.placement
    )
    return drive(
        setup.model, stepper, setup.placement.distribute(setup.data), setup.spec, callbacks
    )
