"""Nadams on PyTorch: Keras's own (gradients are dense already); no XLA-compiled update."""

from __future__ import annotations

from trainways.backends.common import DenseNadam, refuse_xla_optimizer

XlaNadam = refuse_xla_optimizer(
    "xla_optimizer compiles TensorFlow's Nadam update, which PyTorch does not run: drop it, "
    "or use backend tensorflow"
)

__all__ = ["DenseNadam", "XlaNadam"]
