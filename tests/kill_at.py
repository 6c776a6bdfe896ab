"""Child process for the kill-anywhere tests: a run that SIGKILLs itself at a named moment.

    TRAINWAYS_TEST_KILL_AT=MOMENT python tests/kill_at.py cli train ... [++ train ...]
    TRAINWAYS_TEST_KILL_AT=MOMENT python tests/kill_at.py example EXAMPLE [EXAMPLE ARGS...]

``cli`` runs ``trainways.cli.main(argv)`` (each command between ``++``, in turn, while they
succeed); ``example`` runs ``examples/EXAMPLE.py``'s ``main()``
(a :class:`trainways.Loop` script). Before that it wraps a few of trainways' own functions
(nothing in the package knows about it), and the process kills itself with SIGKILL — no handler,
no ``finally``, as ``kill -9`` — the first time the run reaches MOMENT:

``start``
    ``status.json`` says running (and ``config.json`` is written); no epoch has begun.
``batch:E``
    Epoch E (1-based), at the first training batch hook numbered 1 or more (mid-epoch).
``validation:E``
    Epoch E's validation, at its first batch.
``row:E``
    Epoch E's ``history.csv`` row is written; nothing else of its end.
``best:E``
    ``best.keras``'s callback has run for epoch E (runs that keep one).
``first-epoch``
    ``first_epoch.npz`` is written; epoch 1's checkpoint is not.
``checkpoint-files:E``
    Epoch E's checkpoint is on disk under its hidden temporary name, not renamed into place.
``checkpoint:E``
    Epoch E's checkpoint is renamed into place; the older ones are not pruned yet.
``prune:E``
    Pruning at epoch E has renamed an old checkpoint to a hidden name, not deleted it.
``model``
    ``model.keras`` (and the run's other outputs) written; ``metrics.json`` not yet.
``metrics``
    ``metrics.json`` written; ``status.json`` does not say completed yet.

:func:`timeline` lists them in the order a run meets them.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def timeline(epochs: int, *, best: bool) -> list[str]:
    """Every moment of a run of ``epochs`` epochs, in the order it meets them."""
    moments = ["start"]
    for epoch in range(1, epochs + 1):
        moments += [f"batch:{epoch}", f"validation:{epoch}", f"row:{epoch}"]
        moments += [f"best:{epoch}"] if best else []
        moments += ["first-epoch"] if epoch == 1 else []
        moments += [f"checkpoint-files:{epoch}", f"checkpoint:{epoch}"]
        moments += [f"prune:{epoch}"] if epoch >= 3 else []  # two are kept
    return [*moments, "model", "metrics"]


def _die(moment: str) -> None:
    if moment == MOMENT:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
    import keras

    from trainways import callbacks as tw_callbacks
    from trainways import rundir
    from trainways.checkpoint import callback as checkpoint_callback
    from trainways.checkpoint import write as checkpoint_write
    from trainways.lifecycle import RunLife

    class KillAt(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_begin(self, batch, logs=None):
            if batch >= 1:
                _die(f"batch:{self.epoch}")

        def on_test_batch_begin(self, batch, logs=None):
            _die(f"validation:{self.epoch}")

    def after(function, moment_of):
        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            _die(moment_of(*args, **kwargs))
            return result

        return wrapped

    start, callbacks_of = RunLife.start, RunLife.callbacks
    RunLife.start = after(start, lambda *args, **kwargs: "start")
    RunLife.callbacks = lambda life, *a, **k: [*callbacks_of(life, *a, **k), KillAt()]
    history_end = tw_callbacks.HistoryCSV.on_epoch_end
    tw_callbacks.HistoryCSV.on_epoch_end = after(history_end, lambda _, e, *a: f"row:{e + 1}")
    best_end = keras.callbacks.ModelCheckpoint.on_epoch_end
    keras.callbacks.ModelCheckpoint.on_epoch_end = after(best_end, lambda _, e, *a: f"best:{e + 1}")
    first = checkpoint_callback.save_first_epoch_weights
    checkpoint_callback.save_first_epoch_weights = after(first, lambda *a: "first-epoch")

    fsync_dir = checkpoint_write.fsync_dir

    def fsync_then_die(path):
        fsync_dir(path)
        name = Path(path).name
        if name.startswith(".tmp-epoch-"):  # the new checkpoint, before its rename
            _die(f"checkpoint-files:{int(name.split('-')[2])}")

    checkpoint_write.fsync_dir = fsync_then_die
    prune, remove_dir = checkpoint_write._prune, checkpoint_write._remove_dir
    pruning = {"epoch": 0}

    def prune_then_die(checkpoints, newest):
        _die(f"checkpoint:{newest}")
        pruning["epoch"] = newest
        prune(checkpoints, newest)

    def remove_and_die(path):
        # Renamed to its hidden name, as _remove_dir does first; killed before the delete.
        doomed = path.parent / f"{checkpoint_write.OLD_PREFIX}{path.name}-killed"
        doomed.mkdir()
        os.replace(path, doomed / path.name)
        _die(f"prune:{pruning['epoch']}")
        remove_dir(doomed / path.name)

    checkpoint_write._prune, checkpoint_write._remove_dir = prune_then_die, remove_and_die
    write_json, set_status = rundir.write_json, rundir.set_status

    def write_json_or_die(path, payload):
        if Path(path).name == rundir.METRICS:
            _die("model")
        write_json(path, payload)

    def set_status_or_die(path, state, **details):
        if state == rundir.COMPLETED:
            _die("metrics")
        set_status(path, state, **details)

    rundir.write_json, rundir.set_status = write_json_or_die, set_status_or_die


MOMENT = os.environ.get("TRAINWAYS_TEST_KILL_AT", "")

if __name__ == "__main__":
    sys.path.insert(0, str(EXAMPLES))
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import use_the_clis_thread_pools

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        use_the_clis_thread_pools()  # as the test process does, before anything starts TF
    _install()
    kind, *rest = sys.argv[1:]
    if kind == "cli":
        from trainways.cli import main

        # "A ++ B": trainways A, then trainways B in the same (warm) process, if A succeeded.
        commands, code = [[]], 0
        for arg in rest:
            commands[-1:] = [*commands[-1:], []] if arg == "++" else [[*commands[-1], arg]]
        for argv in commands:
            sys.argv = ["trainways", *argv]
            code = code or main(argv)
        sys.exit(code)
    example, *args = rest
    sys.argv = [str(EXAMPLES / f"{example}.py"), *args]
    __import__(example).main(args)
