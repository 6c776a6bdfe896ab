"""Which callbacks' state a checkpoint holds: the :class:`StateAdapter` registry.

Built in: ``EarlyStopping``, ``ModelCheckpoint`` (its best value) and
:class:`trainways.callbacks.EpochLogger`. Register others with :func:`register_state_adapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from trainways.callbacks import EpochLogger
from trainways.checkpoint.format import CallbackState


@dataclass(frozen=True)
class StateAdapter:
    """How to read and write the resumable state of one callback type.

    A state is a dict whose values are JSON-serialisable, or lists of numpy arrays (saved in
    ``arrays.npz``; a ``None`` stays ``None``).

    Attributes:
        get: Returns the callback's state.
        set: Puts a state returned by ``get`` back into a callback of the same configuration.
    """

    get: Callable[[keras.callbacks.Callback], CallbackState]
    set: Callable[[keras.callbacks.Callback, CallbackState], None]


_ADAPTERS: dict[type, StateAdapter] = {}


def register_state_adapter(callback_type: type, adapter: StateAdapter) -> None:
    """Make :class:`~trainways.checkpoint.EpochCheckpoint` save and restore ``callback_type``.

    Subclasses use the adapter of their nearest registered base class.
    """
    _ADAPTERS[callback_type] = adapter


def _adapter_for(callback: keras.callbacks.Callback) -> StateAdapter | None:
    for klass in type(callback).__mro__:
        if klass in _ADAPTERS:
            return _ADAPTERS[klass]
    return None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _get_early_stopping(callback: keras.callbacks.EarlyStopping) -> CallbackState:
    # getattr: best_epoch only exists once on_train_begin has run.
    return {
        "wait": int(callback.wait),
        "best": _optional_float(getattr(callback, "best", None)),
        "best_epoch": int(getattr(callback, "best_epoch", 0)),
        "stopped_epoch": int(callback.stopped_epoch),
        "best_weights": (
            None
            if callback.best_weights is None
            else [np.asarray(w) for w in callback.best_weights]
        ),
    }


def _set_early_stopping(callback: keras.callbacks.EarlyStopping, state: CallbackState) -> None:
    # monitor_op and the sign of min_delta are not state: EarlyStopping derives them from its
    # configuration at its first epoch end, in a resumed run as in the original one.
    callback.wait = state["wait"]
    callback.best = state["best"]
    callback.best_epoch = state["best_epoch"]
    callback.stopped_epoch = state["stopped_epoch"]
    best_weights = state.get("best_weights")
    callback.best_weights = None if best_weights is None else list(best_weights)


register_state_adapter(
    keras.callbacks.EarlyStopping, StateAdapter(_get_early_stopping, _set_early_stopping)
)
register_state_adapter(
    keras.callbacks.ModelCheckpoint,
    StateAdapter(
        lambda callback: {"best": _optional_float(callback.best)},
        lambda callback, state: setattr(callback, "best", state["best"]),
    ),
)


def _restore_epoch_logger(callback: EpochLogger, state: dict[str, Any]) -> None:
    callback.epoch_seconds = list(state["epoch_seconds"])
    callback.first_step_loss = state.get("first_step_loss")  # absent from older checkpoints


register_state_adapter(
    EpochLogger,
    StateAdapter(
        lambda callback: {
            "epoch_seconds": [float(s) for s in callback.epoch_seconds],
            "first_step_loss": callback.first_step_loss,
        },
        _restore_epoch_logger,
    ),
)
# trainways.callbacks.HalveLearningRate (any LearningRateScheduler) needs no adapter: its
# schedule is a pure function of the epoch index and the current rate, and the rate is one of the
# optimizer variables that every checkpoint holds.


def tracked_callbacks(
    callbacks: Iterable[keras.callbacks.Callback],
) -> dict[str, tuple[keras.callbacks.Callback, StateAdapter]]:
    """The callbacks that have an adapter, keyed ``<TypeName>#<n>`` in their order of appearance.

    Keys count per type, so adding or removing stateless callbacks between runs changes nothing.
    """
    tracked: dict[str, tuple[keras.callbacks.Callback, StateAdapter]] = {}
    counts: dict[str, int] = {}
    for callback in callbacks:
        adapter = _adapter_for(callback)
        if adapter is None:
            continue
        name = type(callback).__name__
        tracked[f"{name}#{counts.get(name, 0)}"] = (callback, adapter)
        counts[name] = counts.get(name, 0) + 1
    return tracked


def callback_states(callbacks: Iterable[keras.callbacks.Callback]) -> dict[str, CallbackState]:
    """The current state of every tracked callback, keyed as :func:`tracked_callbacks`."""
    return {
        key: adapter.get(callback)
        for key, (callback, adapter) in tracked_callbacks(callbacks).items()
    }


def is_array_list(value: Any) -> bool:
    """Whether a state field is a list of arrays (saved in ``arrays.npz``, not ``state.json``)."""
    return isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value)
