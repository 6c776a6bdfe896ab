"""What :class:`trainways.Loop` needs from JAX: a user's pure step, compiled, its state kept.

On JAX a step is a pure function: ``fn(state, x, y) -> (logs, state)`` for training and
``fn(state, x, y) -> logs`` for validation (``x, y, sample_weight`` or ``x`` alone in place of
``x, y``, as the batch has them), ``state`` being the model's ``(trainable, non_trainable,
optimizer_variables)`` arrays. :func:`compile_step` compiles it with ``jax.jit`` and returns a
callable ``(*batch) -> logs`` that reads the state from the model's variables and writes the new
state back, so that the loop's callbacks, checkpoints and saved model see the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax


def compile_step(
    fn: Callable[..., Any], model: Any, placement: Any, element_spec: Any
) -> Callable[..., Mapping[str, Any]]:
    """``fn`` compiled, and run on the state of ``model`` (see the module).

    Args:
        fn: The user's pure step.
        model: The loop's model: its variables and its optimizer's hold the state.
        placement: Where it runs: its ``put`` places each batch (split over the devices of a
            ``DataParallel``).
        element_spec: Unused (``jax.jit`` compiles once per batch shape).
    """
    compiled = jax.jit(fn)
    groups = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)

    def run(*parts: Any) -> Mapping[str, Any]:
        state = tuple([v.value for v in group] for group in groups)
        out = compiled(state, *placement.put(parts))
        if not isinstance(out, tuple):  # a test step: logs only
            return out
        logs, state = out
        for group, values in zip(groups, state, strict=True):
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)
        return logs

    return run
