"""Why a run stopped before its last epoch, and the exit status that says so.

The exceptions are raised by callbacks (:mod:`trainways.callbacks`) and recorded by the run's
life cycle; the exit statuses are the ones every entry point returns (the CLI, ``compare``'s
children, a :class:`trainways.Loop` script). This module imports no Keras, so that the MLflow
side (:mod:`trainways.tracking`) and ``compare`` can name a stop without starting a backend.
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad input, refused before anything was written
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingStopped(Exception):
    """Raised by a callback to end training at once, without finishing the epoch.

    ``model.stop_training`` would let the epoch run to its end (and be logged and checkpointed
    as if complete); these stops must not.
    """


class Interrupted(TrainingStopped):
    """SIGINT or SIGTERM arrived; training stopped at a batch boundary."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class NonFiniteLoss(TrainingStopped):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, batch: int, value: float) -> None:
        self.epoch, self.batch, self.value = epoch, batch, value
        super().__init__(f"non-finite loss at epoch {epoch} batch {batch}")


def exit_status(stop: BaseException) -> int:
    """The exit status of a run that ``stop`` ended: 130 / 143 for SIGINT / SIGTERM (128 + the
    signal's number for another), else 1."""
    if isinstance(stop, Interrupted):
        return EXIT_BY_SIGNAL.get(stop.signum, 128 + stop.signum)
    return EXIT_FAILED


def is_signal_status(code: int) -> bool:
    """Whether ``code`` is the exit status of a run stopped by a signal."""
    return code in EXIT_BY_SIGNAL.values()
