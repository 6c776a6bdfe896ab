"""The PyTorch backend: one device, the ``loop`` method's autograd step, devices. See
:mod:`trainways.backends` for the names every backend offers.

``fit`` and ``train_on_batch`` are Keras's own on PyTorch; the hand-driven methods get tensors on
Keras's device made from NumPy batches (:meth:`Placement.distribute`). This package imports
neither Keras nor PyTorch until a name that needs them is used: :mod:`.environment` must run
before Keras is imported.
"""

from __future__ import annotations

from typing import Any

from trainways.backends import INTERFACE, load_lazily

# Imported eagerly (neither imports Keras), listed in __all__ by INTERFACE.
from trainways.backends.torch import devices as devices
from trainways.backends.torch import environment as environment
from trainways.config import ConfigError

__getattr__ = load_lazily(__name__)


def enable_determinism() -> None:
    """PyTorch's deterministic algorithms (an error, not silence, where one has none)."""
    import torch

    torch.use_deterministic_algorithms(True)


def check_training(jit_compile: bool, steps_per_execution: int | str) -> None:
    """Refuse the speed options PyTorch has no use for.

    Raises:
        ConfigError: ``--xla`` (XLA is TensorFlow's and JAX's compiler), or
            ``--steps-per-execution`` above 1 (Keras's PyTorch trainer runs one step per call).
    """
    if jit_compile:
        raise ConfigError(
            "xla compiles TensorFlow and JAX steps; PyTorch runs eagerly: drop xla, or use "
            "backend tensorflow or jax",
            keys=("jit_compile",),
        )
    if steps_per_execution not in (1, "auto"):
        raise ConfigError(
            f"steps_per_execution {steps_per_execution}: Keras runs one step per call on "
            "PyTorch; drop steps_per_execution, or use backend tensorflow or jax",
            keys=("steps_per_execution", "backend"),
        )


def jit_compile(requested: bool) -> bool:
    """Never: PyTorch runs eagerly, as Keras's ``fit`` does there by default (``--xla`` is
    refused by :func:`check_training`)."""
    return False


# A step function's arguments (docs/custom-steps.md): an autograd step.
STEP_ARGUMENTS = ("model", "x", "y")


def auto_steps_per_execution(model: Any) -> int:
    """What ``--steps-per-execution auto`` runs: 1, the only value Keras's PyTorch trainer runs."""
    return 1


__all__ = sorted(INTERFACE)
