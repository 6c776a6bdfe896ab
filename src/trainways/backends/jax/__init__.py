"""The JAX backend: one device or ``DataParallel``, the ``loop`` method's jitted step, user steps,
devices. See :mod:`trainways.backends` for the names every backend offers.

``fit`` and ``train_on_batch`` are Keras's own on JAX; the hand-driven methods get NumPy batches
(:meth:`Placement.distribute`), since a JAX step cannot take TensorFlow tensors. This package
imports neither Keras nor JAX until a name that needs them is used: JAX reads its platform and
memory settings (:mod:`.environment`) when it is imported.
"""

from __future__ import annotations

from typing import Any

from trainways.backends import INTERFACE, load_lazily

# Imported eagerly (neither imports Keras), listed in __all__ by INTERFACE.
from trainways.backends.jax import devices as devices
from trainways.backends.jax import environment as environment

__getattr__ = load_lazily(__name__)


def enable_determinism() -> None:
    """Nothing to do: JAX on the CPU computes the same bits every run."""


def check_training(jit_compile: bool, steps_per_execution: int | str) -> None:
    """Every speed option applies here: nothing to refuse."""


def jit_compile(requested: bool) -> bool:
    """Always: on JAX a step is one XLA program, ``--xla`` or not (Keras's JAX trainer runs a
    step uncompiled, op by op, when ``jit_compile`` is off: a debugging mode, several times
    slower, that rounds differently from every compiled step)."""
    return True


# A step function's arguments (docs/custom-steps.md): a pure function of the state.
STEP_ARGUMENTS = ("model", "state", "x", "y")


def auto_steps_per_execution(model: Any) -> int:
    """What ``--steps-per-execution auto`` runs: 16 steps per call, as on TensorFlow (``fit``'s
    multi-step program; the ``loop`` method's Python loop over its jitted step)."""
    return 16


__all__ = sorted(INTERFACE)
