"""The TensorFlow backend: ``tf.distribute`` placement, the GradientTape step, the XLA optimizer,
devices and strategies. See :mod:`trainways.backends` for the names every backend offers."""

from __future__ import annotations

from trainways.backends.tensorflow import devices
from trainways.backends.tensorflow.distribute import Placement, is_cluster_failure, prepare
from trainways.backends.tensorflow.loop import LoopStepper
from trainways.backends.tensorflow.optimizers import XlaNadam
from trainways.backends.tensorflow.own_loop import compile_step


def enable_determinism() -> None:
    """Make TensorFlow choose deterministic kernels (with a seed, runs repeat bit for bit)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


__all__ = [
    "LoopStepper",
    "Placement",
    "XlaNadam",
    "compile_step",
    "devices",
    "enable_determinism",
    "is_cluster_failure",
    "prepare",
]
