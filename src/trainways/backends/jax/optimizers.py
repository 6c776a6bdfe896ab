"""Nadams on JAX: Keras's own (gradients are dense already); no XLA-compiled update to add."""

from __future__ import annotations

from trainways.backends.common import DenseNadam, refuse_xla_optimizer

# Every step on JAX, the optimizer's update included, is one XLA program already.
XlaNadam = refuse_xla_optimizer(
    "xla_optimizer compiles TensorFlow's Nadam update; on JAX the whole step is already one "
    "XLA program: drop it"
)

__all__ = ["DenseNadam", "XlaNadam"]
