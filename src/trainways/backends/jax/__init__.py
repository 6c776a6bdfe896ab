"""The JAX backend: one device or ``DataParallel``, the ``loop`` method's jitted step, user steps,
devices. See :mod:`trainways.backends` for the names every backend offers.

``fit`` and ``train_on_batch`` are Keras's own on JAX; the hand-driven methods get NumPy batches
(:meth:`Placement.distribute`), since a JAX step cannot take TensorFlow tensors. This package
imports neither Keras nor JAX until a name that needs them is used: JAX reads its platform and
memory settings (:mod:`.environment`) when it is imported.
"""

from __future__ import annotations

from typing import Any

from trainways.backends import load_lazily
from trainways.backends.jax import devices, environment
from trainways.config import ConfigError

__getattr__ = load_lazily(
    __name__,
    {
        "LoopStepper": "loop",
        "Placement": "placement",
        "prepare": "placement",
        "compile_step": "own_loop",
    },
)


def XlaNadam(**_: Any) -> Any:
    """Refused on JAX: there every step, the optimizer's update included, is one XLA program."""
    raise ConfigError(
        "xla_optimizer compiles TensorFlow's Nadam update; on JAX the whole step is already one "
        "XLA program: drop it",
        keys=("xla_optimizer",),
    )


def DenseNadam(**kwargs: Any) -> Any:
    """Keras's Nadam: gradients here are dense already (see the TensorFlow backend's)."""
    import keras

    return keras.optimizers.Nadam(**kwargs)


def enable_determinism() -> None:
    """Nothing to do: JAX on the CPU computes the same bits every run."""


def is_cluster_failure(error: BaseException) -> bool:
    """A lost peer of a multi-process JAX job ends in a collective's error, not one trainways can
    tell apart yet: nothing is treated as a lost worker."""
    return False


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


__all__ = [
    "STEP_ARGUMENTS",
    "DenseNadam",
    "LoopStepper",
    "Placement",
    "XlaNadam",
    "auto_steps_per_execution",
    "check_training",
    "compile_step",
    "devices",
    "enable_determinism",
    "environment",
    "is_cluster_failure",
    "jit_compile",
    "prepare",
]
