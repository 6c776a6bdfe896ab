"""What :class:`trainways.Loop` needs from PyTorch: a user's step, run as it is.

PyTorch runs eagerly (as ``fit`` does there unless ``jit_compile``): the step is called on each
batch's tensors and its logs are returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def compile_step(
    fn: Callable[..., Mapping[str, Any]], model: Any, placement: Any, element_spec: Any
) -> Callable[..., Mapping[str, Any]]:
    """``fn(*batch) -> logs`` itself: one device, nothing to compile (see the module)."""
    return fn
