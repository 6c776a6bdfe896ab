"""Per-epoch checkpoints of a training run, and resuming from them bit for bit.

:class:`EpochCheckpoint` writes, after every epoch, everything a run needs to continue as if it had
never stopped: the model's weights, every optimizer variable (iterations, learning rate, Nadam's
momentums, velocities and its ``u_product``), the History so far and the state of the callbacks
that carry some (``EarlyStopping``). It is a plain ``keras.callbacks.Callback``, so all three
training methods drive it alike.

Layout, inside the run directory::

    checkpoints/
        epoch-0003/
            arrays.npz    weights.NNNN, optimizer.NNNN, optimizer<K>.NNNN (K-th extra
                          optimizer of a user step), callbacks.<key>.<field>.NNNN
            state.json    format, epoch, learning rate, history, callback states, sha256s
            best.keras    the run's best model as it was at this epoch (runs that keep one)
        epoch-0004/

A checkpoint is built in a hidden temporary directory beside them and renamed into place once its
files are on disk, so a directory named ``epoch-NNNN`` is always complete (or damaged afterwards,
which :func:`load_checkpoint` detects). Only the newest two are kept.

A checkpoint is the epoch's one commit point: what the epoch wrote before it (its
``history.csv`` row, ``best.keras``) is rolled back to the checkpoint when a run resumes (a copy
of ``best.keras`` rides in it for that: :func:`restore_files`), and what the run writes after
its last one (``model.keras``, ``metrics.json``) is written again.

Resuming (see :class:`EpochCheckpoint`)::

    checkpoint = latest_checkpoint(run_dir)
    spec = TrainSpec(..., initial_epoch=checkpoint.epoch)
    callbacks = [..., early_stopping]
    callbacks.append(EpochCheckpoint(run_dir, callbacks, restore_from=checkpoint))
    get_trainer(method, backend)(fresh_model, data, spec, callbacks)

The package, one job a module (imports run one way: format ← adapters ← write, restoring ←
callback; format ← read; first_epoch stands alone):

* :mod:`~trainways.checkpoint.format`: the file names, :class:`Checkpoint`, listing checkpoint
  directories, and which of a model's variables a checkpoint holds besides its weights.
* :mod:`~trainways.checkpoint.adapters`: :class:`StateAdapter` and :func:`register_state_adapter`,
  the callbacks whose state is saved (``EarlyStopping``, ``ModelCheckpoint``, ``EpochLogger``).
* :mod:`~trainways.checkpoint.write`: :func:`save_checkpoint`, atomic, and pruning.
* :mod:`~trainways.checkpoint.read`: :func:`load_checkpoint` / :func:`latest_checkpoint`, which
  verify and fall back past damaged checkpoints; :func:`lost_checkpoints`, what no kill explains.
* :mod:`~trainways.checkpoint.restoring`: :func:`restore`, :func:`restore_model`,
  :func:`restore_callbacks`, :func:`restore_files`.
* :mod:`~trainways.checkpoint.first_epoch`: ``first_epoch.npz`` (:func:`save_first_epoch_weights`,
  :func:`first_epoch_weights`, :func:`named_weights`).
* :mod:`~trainways.checkpoint.callback`: :class:`EpochCheckpoint`.
"""

from __future__ import annotations

from trainways.checkpoint.adapters import StateAdapter, register_state_adapter
from trainways.checkpoint.callback import EpochCheckpoint
from trainways.checkpoint.first_epoch import (
    first_epoch_weights,
    named_weights,
    save_first_epoch_weights,
)
from trainways.checkpoint.format import (
    ARRAYS,
    CHECKPOINTS,
    FORMAT_VERSION,
    KEEP,
    STATE,
    CallbackState,
    Checkpoint,
    History,
)
from trainways.checkpoint.read import latest_checkpoint, load_checkpoint, lost_checkpoints
from trainways.checkpoint.restoring import (
    restore,
    restore_callbacks,
    restore_files,
    restore_model,
)
from trainways.checkpoint.write import save_checkpoint

__all__ = [
    "ARRAYS",
    "CHECKPOINTS",
    "FORMAT_VERSION",
    "KEEP",
    "STATE",
    "CallbackState",
    "Checkpoint",
    "EpochCheckpoint",
    "History",
    "StateAdapter",
    "first_epoch_weights",
    "latest_checkpoint",
    "load_checkpoint",
    "lost_checkpoints",
    "named_weights",
    "register_state_adapter",
    "restore",
    "restore_callbacks",
    "restore_files",
    "restore_model",
    "save_checkpoint",
    "save_first_epoch_weights",
]
