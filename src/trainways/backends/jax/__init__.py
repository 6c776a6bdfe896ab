"""The JAX backend: one device, the ``loop`` method's jitted step, devices. See
:mod:`trainways.backends` for the names every backend offers.

``fit`` and ``train_on_batch`` are Keras's own on JAX; the hand-driven methods get NumPy batches
(:meth:`Placement.distribute`), since a JAX step cannot take TensorFlow tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainways.backends.jax import devices
from trainways.backends.jax.loop import LoopStepper
from trainways.backends.jax.own_loop import compile_step
from trainways.config import ConfigError
from trainways.trainers.base import TrainData, build_compiled


class _NumpyBatches:
    """A ``tf.data`` dataset seen as NumPy batches (one pass per ``iter``)."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self._dataset.as_numpy_iterator()


@dataclass(frozen=True)
class Placement:
    """Where the steps run on JAX: one device (``strategy`` is always ``None`` for now)."""

    strategy: Any = None
    spans_workers: bool = False

    def distribute(self, data: TrainData) -> TrainData:
        """``data`` as NumPy batches for the hand-driven methods."""
        validation = data.validation
        return dataclasses.replace(
            data,
            train=_NumpyBatches(data.train),
            validation=None if validation is None else _NumpyBatches(validation),
        )

    def batch_size(self, y: Any) -> int:
        return int(np.shape(y)[0])

    def gather(self, value: Any) -> Any:
        return value


def prepare(model: Any, data: TrainData) -> Placement:
    """Build what ``fit`` builds on first use (compiled loss and metrics, the optimizer), once."""
    x_spec, y_spec = data.train.element_spec
    x = np.zeros([1, *x_spec.shape[1:]], dtype=x_spec.dtype.as_numpy_dtype)
    y = np.zeros([1, *y_spec.shape[1:]], dtype=y_spec.dtype.as_numpy_dtype)
    build_compiled(model, x, y)
    model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return Placement()


def XlaNadam(**_: Any) -> Any:
    """Refused on JAX: there every step, the optimizer's update included, is one XLA program."""
    raise ConfigError(
        "xla_optimizer compiles TensorFlow's Nadam update; on JAX the whole step is already one "
        "XLA program: drop it",
        keys=("xla_optimizer",),
    )


def enable_determinism() -> None:
    """Nothing to do: JAX on the CPU computes the same bits every run."""


def is_cluster_failure(error: BaseException) -> bool:
    """JAX runs on one process here: no peer to lose."""
    return False


def jit_compile(requested: bool) -> bool:
    """Always: on JAX a step is one XLA program, ``--xla`` or not (Keras's JAX trainer runs a
    step uncompiled, op by op, when ``jit_compile`` is off: a debugging mode, several times
    slower, that rounds differently from every compiled step)."""
    return True


# A step function's arguments (docs/custom-steps.md): a pure function of the state.
STEP_ARGUMENTS = ("model", "state", "x", "y")


__all__ = [
    "STEP_ARGUMENTS",
    "LoopStepper",
    "Placement",
    "XlaNadam",
    "compile_step",
    "devices",
    "enable_determinism",
    "is_cluster_failure",
    "jit_compile",
    "prepare",
]
