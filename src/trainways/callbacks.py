"""Project callbacks: epoch log lines, a per-batch progress bar, the learning-rate halving, the
signal and NaN stops, and MLflow tracking's Keras side (:class:`MlflowTracking`).

All of them are plain ``keras.callbacks.Callback`` objects, so every method drives them the same
way; none of the trainers knows they exist. The MLflow side, :mod:`trainways.tracking`, imports
neither Keras nor this module.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from trainways.stops import Interrupted, NonFiniteLoss
from trainways.tracking import FINISHED, PARENT_RUN_ENV, TrackedRun, epoch_metrics, library_uri

if TYPE_CHECKING:
    from trainways.config import RunConfig

LOG = logging.getLogger("trainways")

_KEY_ORDER = ("loss", "accuracy", "top5_accuracy")


def _ordered(logs: dict[str, Any]) -> list[tuple[str, Any]]:
    """Loss and the metrics first, then their ``val_`` twins, then anything else by name."""

    def rank(key: str) -> tuple[int, int, str]:
        base, is_val = (key[4:], 1) if key.startswith("val_") else (key, 0)
        known = _KEY_ORDER.index(base) if base in _KEY_ORDER else len(_KEY_ORDER)
        return (known == len(_KEY_ORDER), is_val, f"{known:02d}{key}")

    return sorted(logs.items(), key=lambda item: rank(item[0]))


def format_logs(logs: dict[str, Any]) -> str:
    """``loss: 1.2345 - accuracy: 0.6789 - ...`` in a stable order."""
    parts = []
    for key, value in _ordered(logs):
        parts.append(f"{key}: {value:.4g}" if key == "learning_rate" else f"{key}: {value:.4f}")
    return " - ".join(parts)


class EpochLogger(keras.callbacks.Callback):
    """After every epoch, a separator line ending in the local wall-clock time, then the metrics.

    The tutorial printed the time in a hard-coded UTC+8; this uses the machine's own time zone
    and gives its offset, as the run directory's name and ``status.json`` do. It also keeps the
    run's first step's loss (the first batch's, from the initial weights), which
    ``agree --backends`` compares across backends.

    Args:
        logger: Where the lines go (the CLI sends this logger to stdout and the run's log file).
        width: Length of the dashed part of the separator.
    """

    def __init__(self, logger: logging.Logger = LOG, width: int = 40) -> None:
        super().__init__()
        self._logger = logger
        self._width = width
        self._started = 0.0
        self._epoch = 0
        self.epoch_seconds: list[float] = []
        self.first_step_loss: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Index 0 ends one step (with several steps per execution the first end is later).
        if batch == 0 and self._epoch == 0 and "loss" in (logs or {}):
            self.first_step_loss = float(logs["loss"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        seconds = time.perf_counter() - self._started
        self.epoch_seconds.append(seconds)
        now = datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
        self._logger.info("%s %s", "-" * self._width, now)
        total = self.params.get("epochs", "?")
        self._logger.info(
            "epoch %d/%s - %.1fs - %s", epoch + 1, total, seconds, format_logs(logs or {})
        )


class BatchProgress(keras.callbacks.Callback):
    """A per-batch ``keras.utils.Progbar`` of the running training metrics (for terminals)."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: keras.utils.Progbar | None = None
        self._seen = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._bar = None
        self._seen = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is None:
            # Every value we pass is already a running epoch mean: mark them all stateful so
            # Progbar shows them as they are instead of averaging them again.
            self._bar = keras.utils.Progbar(
                self.params.get("steps"), stateful_metrics=list(logs or {}), unit_name="step"
            )
        self._seen = batch + 1
        self._bar.update(self._seen, values=_ordered(logs or {}))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Stopped early, or a dataset of unknown length: end the bar's line ourselves.
        if self._bar is not None and self._seen != self._bar.target:
            self._bar.update(self._seen, finalize=True)
        self._bar = None


class HalveLearningRate(keras.callbacks.LearningRateScheduler):
    """Halve the learning rate once, at the start of a given epoch (the tutorial's schedule).

    Built on ``keras.callbacks.LearningRateScheduler``, so the new rate is applied through the
    optimizer's public ``learning_rate`` and recorded in the logs as ``learning_rate``. The
    schedule depends only on the epoch index and the current rate, so a run resumed from a saved
    optimizer continues on the same schedule.

    Args:
        at_epoch: 1-based epoch at whose start the rate is halved (``--lr-halve-at 5`` halves it
            before the fifth epoch, i.e. ``epoch == 4`` in Keras's 0-based count).
    """

    def __init__(self, at_epoch: int) -> None:
        if at_epoch < 1:
            raise ValueError(f"at_epoch is 1-based and must be >= 1, got {at_epoch}")
        self.at_epoch = at_epoch
        super().__init__(self._schedule)

    def _schedule(self, epoch: int, lr: float) -> float:
        return lr * 0.5 if epoch + 1 == self.at_epoch else lr


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop the moment the loss is NaN or infinite (1-based epoch and batch in the message).

    Unlike ``keras.callbacks.TerminateOnNaN``, which sets ``stop_training`` and so lets the
    broken epoch finish, be validated and be checkpointed, this raises :class:`NonFiniteLoss`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(self._epoch + 1, batch + 1, float(loss))


class StopOnSignal(keras.callbacks.Callback):
    """Turn SIGINT / SIGTERM into a stop at the next batch boundary.

    The handlers are installed at ``on_train_begin`` and restored at ``on_train_end`` (or by
    :meth:`restore_handlers`). A first signal sets a flag that the next batch end turns into
    :class:`Interrupted`; a second one raises ``KeyboardInterrupt`` at once, for a user who does
    not want to wait.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread.
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore_handlers(self) -> None:
        """Put back the handlers that were there before training."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.restore_handlers()

    def _check(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.received is not None:
            self.restore_handlers()
            raise Interrupted(self.received)

    on_train_batch_end = _check
    on_test_batch_end = _check


class HistoryCSV(keras.callbacks.CSVLogger):
    """``keras.callbacks.CSVLogger`` numbering epochs from 1, as the log and ``metrics.json`` do."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


class MlflowTracking(keras.callbacks.Callback):
    """Log training to MLflow: the run's params at the start, every epoch's metrics at its end.

    Each epoch logs its logs (``loss``, the metrics, their ``val_`` twins), ``learning_rate``
    and ``epoch_seconds``, with the 1-based epoch as the step; so every method, backend and
    user loop logs the same keys. trainways adds it for ``--mlflow`` and ``tracking=``, and ends
    the MLflow run itself once the run directory is complete (with its files and status); used
    on its own, in anyone's ``Model.fit``, it ends the run ``FINISHED`` at the end of training::

        model.fit(x, y, epochs=5, callbacks=[MlflowTracking("sqlite:///mlflow.db")])

    Nothing MLflow does stops training: see :class:`trainways.tracking.TrackingStore`.

    Args:
        run: Where to log: a :class:`trainways.tracking.TrackedRun`, or a tracking URI for a
            new run with no params.
        end_with_training: End the MLflow run ``FINISHED`` at ``on_train_end``.
    """

    def __init__(self, run: TrackedRun | str, *, end_with_training: bool = True) -> None:
        super().__init__()
        self.run = TrackedRun(run) if isinstance(run, str) else run
        self.end_with_training = end_with_training
        self._started = 0.0

    @classmethod
    def for_run(
        cls, run_dir: Path, config: RunConfig, *, warn: Callable[[str], None] = LOG.warning
    ) -> MlflowTracking | None:
        """The tracking callback of a ``trainways train`` run into ``run_dir``, nested under
        ``compare``'s run when a comparison started it; ``None`` if the run does not track.

        The MLflow run is ended by the run's life cycle (:meth:`TrackedRun.end_as_run_dir`),
        not at the end of training.
        """
        if config.train.tracking is None:
            return None
        run = TrackedRun.of_run_dir(
            run_dir,
            config.train.tracking,
            parent_run_id=os.environ.get(PARENT_RUN_ENV),
            warn=warn,
        )
        return cls(run, end_with_training=False)

    @classmethod
    def for_library(
        cls,
        tracking: str | bool,
        *,
        params: Mapping[str, str],
        run_dir: Path | None = None,
        root: Path = Path("runs"),
    ) -> MlflowTracking:
        """The tracking callback of a library call (:func:`trainways.train`,
        :class:`trainways.Loop`): ``tracking`` is a URI, or ``True`` / ``"auto"`` for
        :func:`trainways.tracking.resolve_uri`'s default, beside ``run_dir`` if there is one,
        else in ``root``. The caller ends the MLflow run.

        Raises:
            ConfigError: MLflow is not installed, or ``tracking`` is neither a URI nor ``True``.
        """
        where = Path(run_dir).parent if run_dir is not None else root
        run = TrackedRun(
            library_uri(tracking, where),
            params=params,
            run_name=Path(run_dir).name if run_dir is not None else None,
            run_dir=run_dir,
        )
        return cls(run, end_with_training=False)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.run.open()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = epoch_metrics(logs or {})
        metrics["epoch_seconds"] = time.perf_counter() - self._started
        # A schedule puts the rate in the logs; otherwise the optimizer knows it.
        optimizer = getattr(self.model, "optimizer", None)
        if "learning_rate" not in metrics and optimizer is not None:
            metrics["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.run.log(epoch + 1, metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.end_with_training:
            self.run.end(FINISHED)
