""":class:`EpochCheckpoint`: the Keras callback that checkpoints every epoch and resumes first."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from trainways.checkpoint.adapters import callback_states
from trainways.checkpoint.first_epoch import save_first_epoch_weights
from trainways.checkpoint.format import Checkpoint, History
from trainways.checkpoint.restoring import restore
from trainways.checkpoint.write import save_checkpoint


def _state_fingerprint(callbacks: Iterable[keras.callbacks.Callback]) -> str:
    """A comparable rendering of the tracked callbacks' states (arrays by identity)."""
    return json.dumps(callback_states(callbacks), sort_keys=True, default=id)


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoint every finished epoch into ``<run_dir>/checkpoints/``; optionally resume first.

    It must come after every callback in ``callbacks`` in the list given to the trainer (append
    it last): at an epoch's end it saves their state, which they update in their own
    ``on_epoch_end``; when resuming it restores their state after they reset it in
    ``on_train_begin``. A resumed run that breaks this order fails at its first epoch.

    Args:
        run_dir: The run directory.
        callbacks: The run's other callbacks; the state of those with a registered adapter
            (``EarlyStopping``) is saved and restored, the rest are ignored.
        restore_from: A checkpoint to resume from. At ``on_train_begin`` it restores the weights,
            the optimizer (building it if needed) and the callback states; the trainer must start
            at ``initial_epoch=restore_from.epoch``.
        initial_history: Logs of the epochs before this run; defaults to ``restore_from.history``.
        extra_optimizers: Optimizers a user's step applies besides the model's
            (:func:`trainways.steps.keeps`); saved and restored with it.
        files: Run files the callbacks before it write (``best.keras``): each checkpoint holds
            a copy (:func:`~trainways.checkpoint.save_checkpoint`).
    """

    def __init__(
        self,
        run_dir: Path | str,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        *,
        restore_from: Checkpoint | None = None,
        initial_history: Mapping[str, Sequence[float]] | None = None,
        extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
        files: Sequence[Path | str] = (),
    ) -> None:
        super().__init__()
        self._extra_optimizers = tuple(extra_optimizers)
        self._files = tuple(Path(path) for path in files)
        self.run_dir = Path(run_dir)
        self._callbacks = list(callbacks)
        self._restore_from = restore_from
        if initial_history is None and restore_from is not None:
            initial_history = restore_from.history
        self._history: History = {
            key: [float(v) for v in values] for key, values in (initial_history or {}).items()
        }
        # Set between restoring and the first epoch, which checks that the restore stuck.
        self._restored_fingerprint: str | None = None
        self.last_saved: Path | None = None

    @property
    def history(self) -> History:
        """Every epoch's logs so far, the initial history included."""
        return copy.deepcopy(self._history)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._restore_from is None:
            return
        restore(self._restore_from, self.model, self._callbacks, self._extra_optimizers)
        self._restored_fingerprint = _state_fingerprint(self._callbacks)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        checkpoint = self._restore_from
        if checkpoint is None or self._restored_fingerprint is None:
            return
        if epoch != checkpoint.epoch:
            raise ValueError(
                f"resuming from {checkpoint.path.name} needs initial_epoch={checkpoint.epoch}, "
                f"but training started at epoch {epoch}"
            )
        if _state_fingerprint(self._callbacks) != self._restored_fingerprint:
            raise RuntimeError(
                "a callback reset its restored state after EpochCheckpoint.on_train_begin: "
                "put EpochCheckpoint after the callbacks it tracks"
            )
        # Restore once: a second training call with this callback continues, it does not rewind.
        self._restore_from = None
        self._restored_fingerprint = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        if epoch == 0:
            save_first_epoch_weights(self.run_dir, self.model)
        self.last_saved = save_checkpoint(
            self.run_dir,
            self.model,
            epoch=epoch + 1,
            history=self._history,
            callbacks=self._callbacks,
            extra_optimizers=self._extra_optimizers,
            files=self._files,
        )
