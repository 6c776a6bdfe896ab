"""Which method can run a user's step (:func:`check_steps_method`): checked by
:class:`TrainConfig` on construction (a run's configuration) and by the trainers (a library
call's step function), the one rule for both.
"""

from __future__ import annotations

from typing import Any

from trainways.config.fields import ConfigError


def check_steps_method(method: str, *, step: Any, test_step: Any) -> None:
    """Refuse a user's step function (or its ``FILE.py:FUNCTION``) for a method that cannot run it.

    Raises:
        ConfigError: A step is given and ``method`` is not ``loop``.
    """
    given = {"step": step, "test_step": test_step}
    keys = tuple(key for key, fn in given.items() if fn is not None)
    if method == "loop" or not keys:
        return
    raise ConfigError(
        f"a step function runs in the loop method, not {method}: use method 'loop', or, to "
        f"customise {method}, override your model's train_step / test_step (Keras's own "
        "convention, which every method runs)",
        keys=("method", *keys),
    )
