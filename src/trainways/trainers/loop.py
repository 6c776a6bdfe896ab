"""Method 3: a hand-written training loop — the backend's gradient step, driven by trainways.

The step (forward pass, loss, gradients, one optimizer update, metric updates) is the backend's
``LoopStepper`` (:mod:`trainways.backends.tensorflow.loop`: ``tf.GradientTape`` steps compiled
with ``tf.function``); the epochs, validation and callbacks are the shared driver's. The step may
be trainways' own, the model's own ``train_step``, or the user's step function
(:mod:`trainways.steps`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import keras

from trainways.trainers.base import drive

if TYPE_CHECKING:
    from trainways.trainers import Setup


def make_stepper(setup: Setup) -> Any:
    """The backend's stepper for ``setup``: built-in, the model's own or the user's step,
    traced once (a broken user step fails here, before any step runs)."""
    return setup.backend.LoopStepper(
        setup.model, setup.spec, setup.data.train.element_spec, setup.placement
    )


def run(
    setup: Setup, callbacks: Iterable[keras.callbacks.Callback] | None = None
) -> keras.callbacks.History:
    """Train with the backend's hand-written step, callbacks driven in ``fit``'s order.

    Returns:
        The History of per-epoch logs.
    """
    return drive(
        setup.model,
        make_stepper(setup),
        setup.placement.distribute(setup.data),
        setup.spec,
        callbacks,
    )
