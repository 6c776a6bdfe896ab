"""The TensorFlow backend: ``tf.distribute`` placement, the GradientTape step, the XLA optimizer,
devices and strategies. See :mod:`trainways.backends` for the names every backend offers."""

from __future__ import annotations

from typing import Any

from trainways.backends import INTERFACE, load_lazily

# Imported eagerly (neither imports Keras), listed in __all__ by INTERFACE.
from trainways.backends.tensorflow import devices as devices
from trainways.backends.tensorflow import environment as environment

# TensorFlow is imported when a name of LAZY is first used, not with this package: the CLI
# starts it with its start-up messages hidden, after choosing the backend.
__getattr__ = load_lazily(__name__)


def enable_determinism() -> None:
    """Make TensorFlow choose deterministic kernels (with a seed, runs repeat bit for bit)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def check_training(jit_compile: bool, steps_per_execution: int | str) -> None:
    """Every speed option applies here: nothing to refuse."""


def jit_compile(requested: bool) -> bool:
    """What Keras's ``jit_compile`` is for ``--xla``: XLA if asked, TensorFlow's graphs if not."""
    return requested


# A step function's arguments (docs/custom-steps.md): the tutorial's GradientTape step.
STEP_ARGUMENTS = ("model", "x", "y")


def auto_steps_per_execution(model: Any) -> int:
    """What ``--steps-per-execution auto`` runs: 16 steps per call — as fast as 8 or a whole epoch
    per call on a 2-core CPU, with the tutorial model's progress bar moving several times a
    second (benchmarks/RESULTS.md, issue 14) — and 1 across workers, where Keras 3 cannot run
    several (:func:`trainways.backends.tensorflow.placement.prepare`)."""
    import tensorflow as tf

    spans_workers = isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
    return 1 if spans_workers else 16


__all__ = sorted(INTERFACE)
