"""trainways: train a Keras model three ways — ``fit``, ``train_on_batch``, ``GradientTape`` —
behind one configuration, with the same metrics, callbacks, logs and outputs.

``import trainways`` stays light: the training entry point pulls in Keras and TensorFlow only
when it is first used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Loop", "__version__", "fit"]


def __getattr__(name: str) -> Any:
    if name == "fit":
        from trainways.api import fit

        return fit
    if name == "Loop":
        from trainways.own_loop import Loop

        return Loop
    raise AttributeError(f"module 'trainways' has no attribute {name!r}")
