"""Child process for the stop-and-resume tests: ``trainways`` that waits at a chosen batch.

    TRAINWAYS_TEST_PAUSE_AT=EPOCH:BATCH TRAINWAYS_TEST_PAUSE_MARKER=FILE \
        python tests/pause_at_batch.py train ...

Runs ``trainways.cli.main(argv)`` with one more callback in the run's list (it wraps
``trainways.lifecycle.RunLife.callbacks``; nothing in the package knows about it). When the first
training batch numbered BATCH or later (0-based, as Keras counts) of epoch EPOCH (1-based) is
about to start, it writes FILE and waits, so that a test can send a signal while the run stands at
a known place in the middle of an epoch, with the epochs before it checkpointed.

The wait ends after ``PAUSE_SECONDS``, when the file ``$TRAINWAYS_TEST_PAUSE_RELEASE`` appears
(if that is set: the run then goes on as if never paused), or as soon as the run's
``StopOnSignal`` has received SIGINT or SIGTERM (a sleep in the main thread is woken by a handled
signal, but Python then sleeps on: hence short sleeps); that batch is then trained, and
``StopOnSignal`` stops the run at its end, as it would anywhere mid-epoch. SIGKILL needs no help.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import keras

from trainways.cli import main
from trainways.lifecycle import RunLife

PAUSE_SECONDS = 120.0


class PauseAtBatch(keras.callbacks.Callback):
    def __init__(self, epoch: int, batch: int, marker: Path, signals, release=None) -> None:
        super().__init__()
        self.epoch, self.batch, self.marker, self.signals = epoch, batch, marker, signals
        self.release = release
        self._current = -1
        self._paused = False

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self._paused or self._current != self.epoch or batch < self.batch:
            return
        self._paused = True
        self.marker.write_text(f"epoch {self._current} batch {batch}\n")
        deadline = time.monotonic() + PAUSE_SECONDS
        while self.signals.received is None and time.monotonic() < deadline:
            if self.release is not None and self.release.exists():
                return
            time.sleep(0.02)


def _with_pause(callbacks_of):
    epoch, batch = (int(part) for part in os.environ["TRAINWAYS_TEST_PAUSE_AT"].split(":"))
    marker = Path(os.environ["TRAINWAYS_TEST_PAUSE_MARKER"])
    release = os.environ.get("TRAINWAYS_TEST_PAUSE_RELEASE")

    def wrapped(life, *args, **kwargs):
        callbacks = callbacks_of(life, *args, **kwargs)
        pause = PauseAtBatch(epoch, batch, marker, life.signals, Path(release) if release else None)
        return [*callbacks, pause]

    return wrapped


if __name__ == "__main__":
    RunLife.callbacks = _with_pause(RunLife.callbacks)
    sys.exit(main(sys.argv[1:]))
