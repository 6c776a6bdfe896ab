"""One run's life cycle, the same for ``trainways train``, :class:`trainways.Loop` and
``trainways.train``.

A :class:`RunLife` owns everything around the training itself: ``status.json`` (``running``
first, then ``completed`` written last, or ``interrupted`` / ``failed`` with how to resume),
``train.log``, the signal and non-finite-loss guards, the callbacks that write the run
directory in the order they must run, recording a stop, the completed run's outputs, and the
MLflow run, which ends as the run did. Without a run directory (``out=None``) it keeps the
guards, the log and the MLflow run, and writes no file.

The entry points drive it the same way::

    life = RunLife(out, config, quiet=quiet, resume_from=latest)
    life.start(make_tracker)
    callbacks = life.callbacks(schedule)
    code = life.run(train_and_complete)  # calls life.complete(model) at its end

A :class:`trainways.Loop` hands the user the epochs, so it calls the pieces of :meth:`run`
itself: :meth:`stopped` when a callback stops it, :meth:`complete`, then :meth:`end`.
"""

from __future__ import annotations

import logging
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from trainways import callbacks as tw_callbacks
from trainways import checkpoint, rundir
from trainways.config import ConfigError, RunConfig
from trainways.data import draw_seed
from trainways.files import NoFollowFileHandler
from trainways.stops import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Interrupted,
    NonFiniteLoss,
    TrainingStopped,
    exit_status,
)
from trainways.summary import summarize_history
from trainways.tracking import with_resolved_uri

if TYPE_CHECKING:
    from trainways.data.sources import Inputs

LOG = logging.getLogger("trainways")


def configure_logging(log_file: Path | None, *, quiet: bool) -> None:
    """Send the ``trainways`` log to stdout (unless ``quiet``) and to ``log_file``."""
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    for handler in list(LOG.handlers):
        LOG.removeHandler(handler)
        handler.close()
    if not quiet:
        LOG.addHandler(logging.StreamHandler(sys.stdout))
    if log_file is not None:
        # Appends without following a symbolic link: train.log must not write outside the run.
        LOG.addHandler(NoFollowFileHandler(log_file, encoding="utf-8"))


def warn_stderr(message: str) -> None:
    """A warning on stderr, in the CLI's words."""
    print(f"trainways: warning: {message}", file=sys.stderr)


def warner(quiet: bool) -> Callable[[str], None]:
    """A warning for the log, and for stderr too when the log is not printed."""

    def warn(message: str) -> None:
        LOG.warning(message)
        if quiet:
            warn_stderr(message)

    return warn


def one_line(error: BaseException) -> str:
    """An error as one plain line for ``status.json``: Keras's messages carry ANSI colour codes
    and pages of context.

    A first line that only announces the rest (TensorFlow's ``Graph execution error:``) is
    followed by the line that says what went wrong: the last unindented one of the message,
    after the traceback of the graph's node.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if first.endswith(":"):
        said = [
            line.strip()
            for line in lines[1:]
            if line.strip()
            and not line[0].isspace()
            and not line.startswith(("Detected at node", "[["))
        ]
        if said:
            first = f"{first} {said[-1]}"
    return f"{type(error).__name__}: {first}"[:500]


def make_run_dir(
    config: RunConfig, out: Path | str | None, *, name: str, overwrite: bool
) -> tuple[Path, RunConfig, rundir.RunDirLock]:
    """A new run directory, locked, and the configuration recorded in it.

    Args:
        config: The run's configuration (after the pre-flight).
        out: The directory (default ``runs/<local time>-<name>``, with a suffix if a run started
            in the same second has it: :func:`trainways.rundir.new_run_dir`).
        name: What the default directory's name ends with (the method, or ``compare``).
        overwrite: Reuse a non-empty ``out`` (:func:`trainways.rundir.prepare`).

    Returns:
        The directory; ``config`` with its MLflow store resolved beside it and recorded, so
        that a resumed run and a comparison's children log to the same store; and the
        directory's lock (:func:`trainways.rundir.lock`), for the caller to hold while it writes.

    Raises:
        RunDirBusy: Another process writes ``out``; nothing was changed.
    """
    given = Path(out) if out else None
    config = with_resolved_uri(
        config, given.parent if given else rundir.default_run_dir(name).parent
    )
    out = given or rundir.new_run_dir(name)
    # Locked before prepare: --overwrite must not remove what another process is writing.
    held = rundir.lock(out, create=True, advice="wait for it, or pass another --out")
    try:
        rundir.prepare(out, overwrite=overwrite)
    except BaseException:
        held.release()
        raise
    return out, config, held


class RunLife:
    """One run's life: status, log, guards, the run directory's callbacks, stop, outputs, tracker.

    Args:
        out: The run directory (it exists; :func:`trainways.rundir.prepare` made it), or
            ``None`` to write no file.
        config: The run's configuration (its ``device.workers`` name a cluster's workers in the
            resume hint of a lost worker).
        quiet: Log to ``train.log`` only, and draw no progress bar.
        resume_from: The checkpoint a resumed run starts from.
        resume_hint: How to continue the run if it stops (default: ``trainways train --resume
            OUT``).
    """

    def __init__(
        self,
        out: Path | None,
        config: RunConfig,
        *,
        quiet: bool,
        resume_from: checkpoint.Checkpoint | None = None,
        resume_hint: str | None = None,
    ) -> None:
        self.out = out
        self.config = config
        self.quiet = quiet
        self.resume_from = resume_from
        self.resume_hint = resume_hint or (rundir.resume_command(out) if out else None)
        self.tracker: Any = None
        self.checkpointer: checkpoint.EpochCheckpoint | None = None
        self.timer: tw_callbacks.EpochLogger | None = None
        self.signals: tw_callbacks.StopOnSignal | None = None
        self._started = time.perf_counter()
        self._outcome: BaseException | None = None  # how a run without a directory ended

    @property
    def first_epoch(self) -> int:
        """The epoch training starts at: a resumed run's next one."""
        return self.resume_from.epoch if self.resume_from else 0

    # ----------------------------------------------------------------- before training

    def start(self, tracker: Callable[[], Any] | None = None, *, log: bool = True) -> None:
        """Record ``running``, send the log to ``train.log`` (and stdout unless ``quiet``; with
        ``log`` false the log is left as the caller set it), then open the MLflow run:
        ``tracker()`` makes its callback (:class:`trainways.callbacks.MlflowTracking`), whose
        warnings go to that log; :meth:`end` ends it."""
        if self.out is not None:
            rundir.set_status(self.out, rundir.RUNNING, epochs_completed=self.first_epoch)
        if log:
            configure_logging(self.out / rundir.LOG if self.out else None, quiet=self.quiet)
        self.tracker = tracker() if tracker is not None else None

    def callbacks(
        self,
        schedule: Sequence[keras.callbacks.Callback] = (),
        *,
        extra_optimizers: tuple[keras.optimizers.Optimizer, ...] = (),
        best_monitor: tuple[str, str] | None = ("val_accuracy", "max"),
        guards: bool = True,
    ) -> list[keras.callbacks.Callback]:
        """The run's callbacks, in the order they must run.

        Args:
            schedule: Callbacks that change the training (the learning-rate schedule, early
                stopping, a user's own): they run before the log line and, with a run
                directory, are checkpointed.
            extra_optimizers: A user step's optimizers besides the model's, checkpointed too.
            best_monitor: ``best.keras``'s ``(monitor, mode)``, or ``None`` for none.
            guards: Stop on SIGINT / SIGTERM and on a non-finite loss, and log each epoch (a
                run directory always has them; the library call leaves them to its user).

        The MLflow callback runs last, after the checkpoint: MLflow gets an epoch once it is
        checkpointed (a resumed run logs from ``history.csv`` what it lacks).
        """
        tracker = [self.tracker] if self.tracker is not None else []
        self._started = time.perf_counter()
        if self.out is None and not guards:
            return [*schedule, *tracker]
        self.signals, self.timer = tw_callbacks.StopOnSignal(), tw_callbacks.EpochLogger()
        callbacks: list[keras.callbacks.Callback] = [
            self.signals,
            tw_callbacks.StopOnNonFiniteLoss(),
            *schedule,
            self.timer,
        ]
        if not self.quiet and sys.stdout.isatty():
            callbacks.append(tw_callbacks.BatchProgress())
        if self.out is None:
            return [*callbacks, *tracker]
        return [
            *callbacks,
            *self._run_dir_callbacks(schedule, extra_optimizers, best_monitor),
            *tracker,
        ]

    def _run_dir_callbacks(
        self,
        schedule: Sequence[keras.callbacks.Callback],
        extra_optimizers: tuple[keras.optimizers.Optimizer, ...],
        best_monitor: tuple[str, str] | None,
    ) -> list[keras.callbacks.Callback]:
        out, resume_from = self.out, self.resume_from
        assert out is not None and self.timer is not None
        history_so_far = resume_from.history if resume_from else {}
        if resume_from:
            LOG.info("resuming after epoch %d from %s", resume_from.epoch, resume_from.path)
            self._roll_back(resume_from)
        callbacks: list[keras.callbacks.Callback] = []
        if self.config.train.tensorboard:
            # Keras's own callback; it also logs the learning rate each epoch.
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))
        # The tutorial's model overfits after a few epochs, so its last epoch is rarely its best.
        best = [
            keras.callbacks.ModelCheckpoint(
                str(out / rundir.BEST), monitor=monitor, mode=mode, save_best_only=True
            )
            for monitor, mode in ([best_monitor] if best_monitor else [])
        ]
        # best.keras is written before the checkpoint: the checkpoint keeps a copy of it.
        files = [out / rundir.BEST] if best_monitor else []
        # The timer is tracked too, so that a resumed run's metrics.json keeps every epoch's time.
        self.checkpointer = checkpoint.EpochCheckpoint(
            out,
            callbacks=[*schedule, *best, self.timer],
            initial_history=history_so_far,
            restore_from=resume_from,
            extra_optimizers=extra_optimizers,
            files=files,
        )
        return [
            *callbacks,
            tw_callbacks.HistoryCSV(str(out / rundir.HISTORY), append=resume_from is not None),
            *best,
            self.checkpointer,  # it saves the state the callbacks before it have just updated
        ]

    def _roll_back(self, resume_from: checkpoint.Checkpoint) -> None:
        """Undo what was written after the checkpoint, the run's commit point: an epoch killed
        between its ``history.csv`` row (or ``best.keras``) and its checkpoint is trained again,
        and the outputs of a completed run are written again at its end. The resumed run then
        appends exactly what an unbroken run writes."""
        out = self.out
        assert out is not None
        rundir.write_history_csv(resume_from.history, out)
        rolled = checkpoint.restore_files(resume_from, out)
        for name in (rundir.MODEL, rundir.METRICS):
            if (out / name).exists():
                (out / name).unlink()
                rolled.append(name)
        if rolled:
            LOG.info(
                "rolled back to %s: %s (written after it)", resume_from.path.name, ", ".join(rolled)
            )

    # ----------------------------------------------------------------- how it ends

    def run(
        self,
        train: Callable[[], None],
        *,
        is_lost_worker: Callable[[BaseException], bool] = lambda error: False,
    ) -> int:
        """Call ``train`` (the training and :meth:`complete`), record how it ended, and end the
        MLflow run as the run did; return the exit status.

        With a run directory, a stop (a signal, a non-finite loss, a lost worker) is recorded and
        is not an error, and a second Ctrl-C (or one before training started) is recorded as
        interrupted; any other error is recorded as failed and raised again. Without one, every
        error is raised again, the MLflow run ended by it.
        """
        try:
            train()
        except BaseException as error:
            if self.out is None:  # nothing to record: the caller sees the error
                self._outcome = error
                raise
            if isinstance(error, TrainingStopped) or (
                isinstance(error, Exception) and is_lost_worker(error)
            ):
                return self.stopped(error)
            if isinstance(error, KeyboardInterrupt):
                return self.interrupted()
            self.failed(error)
            raise
        finally:
            if self.signals is not None:
                self.signals.restore_handlers()
            self.end()
        return EXIT_OK

    def stopped(self, stop: BaseException) -> int:
        """Record a run that stopped before its last epoch; return its exit status."""
        self._outcome = stop
        if self.out is None:
            LOG.error("stopped: %s", stop)
            return exit_status(stop)
        out = self.out
        latest = checkpoint.load_checkpoint(out, warn=LOG.warning)
        done = latest.epoch if latest else 0
        resume = self.resume_hint
        if isinstance(stop, Interrupted):
            name = signal.Signals(stop.signum).name
            rundir.set_status(
                out, rundir.INTERRUPTED, signal=name, epochs_completed=done, resume=resume
            )
            LOG.info("%s: stopped after %d complete epoch(s); resume with: %s", name, done, resume)
            return exit_status(stop)
        if isinstance(stop, NonFiniteLoss):
            rundir.set_status(out, rundir.FAILED, error=str(stop), epochs_completed=done)
            kept = (
                f"the last good checkpoint (epoch {done}) is kept in {latest.path}"
                if latest
                else "no epoch completed, so no checkpoint was kept"
            )
            LOG.error("failed: %s (loss %s); %s", stop, stop.value, kept)
            return EXIT_FAILED
        # A worker of a multi-worker job was lost.
        message = str(stop).strip().splitlines()[0][:300]
        workers = self.config.device.workers
        cluster = f" --workers {','.join(workers)} --task-index I" if workers else ""
        rundir.set_status(
            out,
            rundir.FAILED,
            error=f"lost a worker: {type(stop).__name__}: {message}",
            epochs_completed=done,
            resume=f"{resume}{cluster} (on every worker, I = its index)",
        )
        LOG.error(
            "failed: a worker stopped or became unreachable (%s: %s); %d complete epoch(s) are "
            "checkpointed. Restart every worker with --resume %s (and the same --workers).",
            type(stop).__name__,
            message,
            done,
            out,
        )
        return EXIT_FAILED

    def interrupted(self) -> int:
        """Record a run interrupted outside a batch (a second Ctrl-C, or one before training)."""
        assert self.out is not None
        rundir.set_status(self.out, rundir.INTERRUPTED, resume=self.resume_hint)
        LOG.info("interrupted; resume with: %s", self.resume_hint)
        return EXIT_INTERRUPTED

    def failed(self, error: BaseException) -> None:
        """Record a run that an error ended: ``status.json`` and ``train.log`` get the error in
        one line, with the epochs its checkpoints keep and how to resume."""
        self._outcome = error
        if self.out is None:
            return
        latest = checkpoint.load_checkpoint(self.out, warn=LOG.warning)
        done = latest.epoch if latest else 0
        line = one_line(error)
        rundir.set_status(
            self.out, rundir.FAILED, error=line, epochs_completed=done, resume=self.resume_hint
        )
        LOG.error("failed: %s; %d complete epoch(s) checkpointed", line, done)

    def summary(self) -> dict[str, Any]:
        """``metrics.json``'s figures: the history so far (a resumed run's earlier epochs
        included), each epoch's seconds, the training's."""
        assert self.checkpointer is not None and self.timer is not None
        return summarize_history(
            self.checkpointer.history,
            self.timer.epoch_seconds,
            train_seconds=time.perf_counter() - self._started,
            first_step_loss=self.timer.first_step_loss,
        )

    def complete(
        self,
        model: keras.Model,
        *,
        summary: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        **status: Any,
    ) -> None:
        """Write a completed run's outputs — ``model.keras``, ``files`` (name → JSON value),
        ``metrics.json`` (``summary``, default :meth:`summary`) — then ``status.json`` says
        ``completed``, last, with ``status``'s details."""
        if self.out is None:
            return
        out = self.out
        summary = dict(summary if summary is not None else self.summary())
        model.save(out / rundir.MODEL)
        for name, value in (files or {}).items():
            rundir.write_json(out / name, value)
        rundir.write_json(out / rundir.METRICS, summary)
        rundir.set_status(out, rundir.COMPLETED, epochs_completed=summary["epochs"], **status)

    def end(self) -> None:
        """End the MLflow run as the run ended: as ``status.json`` says, or (without a run
        directory) as the error that ended it, ``FINISHED`` without one."""
        tracker, self.tracker = self.tracker, None
        if tracker is None:
            return
        if self.out is not None:
            tracker.run.end_as_run_dir()
            return
        from trainways.tracking import FINISHED, status_of_error

        outcome = self._outcome
        tracker.run.end(FINISHED if outcome is None else status_of_error(outcome))


def script_name() -> str:
    """The script this process runs (recorded in a library run's ``config.json``)."""
    return sys.argv[0] if sys.argv and sys.argv[0] else "your script"


def script_command() -> str:
    """The command that ran this script, arguments and all, as a shell reads it: how a library
    run resumes."""
    if not sys.argv or not sys.argv[0]:
        return "your script (run it again)"
    return shlex.join(["python", *sys.argv])


@dataclass(frozen=True)
class LibraryRun:
    """A library call's run directory, opened by :func:`open_library_run`.

    Attributes:
        lock: Held until the run ends: the script run twice into the same ``out`` is refused.
        resume_from: The checkpoint a resumed run starts from (``None``: a new run, or one
            killed before its first checkpoint, started over).
        settings: What the run recorded in ``config.json`` when it started (``{}`` if new).
    """

    lock: rundir.RunDirLock
    resume_from: checkpoint.Checkpoint | None
    settings: dict[str, Any]

    def seed(self, given: int | None) -> int:
        """The seed the run trains and shuffles with: ``given``, else the one the run recorded
        when it started (its shuffling resumes only with that one), else one drawn from NumPy's
        global generator's state (:func:`trainways.data.draw_seed`), so that a script seeded the
        Keras way (``keras.utils.set_random_seed``) repeats itself. The caller records it in
        ``config.json``."""
        if given is not None:
            return given
        recorded = self.settings.get("seed")
        return recorded if recorded is not None else draw_seed()

    def say_how_inputs_resume(self, out: Path, inputs: Inputs, *, quiet: bool) -> None:
        """Say, once and in one line (the log, and stderr when ``quiet``), that a resumed run
        whose epochs are taken from one stream that cannot say where it was (a generator with
        ``steps_per_epoch``) resumes at the epoch boundary, on what the stream yields from now
        on. Other inputs resume exactly and say nothing."""
        stream = inputs.steps_per_epoch is not None and inputs.clock is None
        if self.resume_from is None or not stream or inputs.resume != "epoch":
            return
        epoch = self.resume_from.epoch
        warner(quiet)(
            f"resuming {out} after epoch {epoch}: a {inputs.kind} stream cannot say where it "
            f"was, so epoch {epoch + 1} trains on the batches it yields from now on"
        )


def open_library_run(out: Path, *, kind: str, caller: str, fixed: Mapping[str, Any]) -> LibraryRun:
    """Start or resume the run a library call (``trainways.fit``, ``trainways.Loop``) makes in
    ``out``: the one way both take a run directory.

    A new (or empty) ``out`` is prepared; one that holds a run of this ``kind`` that stopped is
    resumed from its last checkpoint, with what a roll-back needs checked here. Nothing is
    written before the lock is held.

    Args:
        out: The run directory.
        kind: The ``config.json`` section the caller records its settings under (``"fit"``,
            ``"loop"``).
        caller: How the user called it, for messages (``"Loop(out='runs/a')"``).
        fixed: Settings a resumed run must keep (``{"seed": 3, "epochs": 10}``): a value that
            differs from the recorded one is refused (``None`` given: take the recorded one).

    Raises:
        RunDirError: ``out`` holds a completed run, another kind of run, or lost checkpoints.
        ConfigError: A fixed setting differs from the recorded run's.
        RunDirBusy: Another process writes ``out``.
    """
    held = rundir.lock(out, create=True, advice="wait for it, or pass another out")
    try:
        resume_from, settings = _start_or_resume(out, kind, caller, fixed)
    except BaseException:
        held.release()
        raise
    return LibraryRun(held, resume_from, settings)


def _start_or_resume(
    out: Path, kind: str, caller: str, fixed: Mapping[str, Any]
) -> tuple[checkpoint.Checkpoint | None, dict[str, Any]]:
    status = rundir.read_status(out) if out.is_dir() else None
    if status is None:
        if not _killed_at_start(out, kind):
            rundir.prepare(out, overwrite=False)
        return None, {}
    if status.get("state") == rundir.COMPLETED:
        raise rundir.RunDirError(f"{caller}: that run is already completed; pass a new out")
    saved = rundir.read_config(out)
    if kind not in saved:
        raise rundir.RunDirError(
            f"{caller}: that is not a run of {kind} ({', '.join(saved) or 'no settings'} in its "
            f"{rundir.CONFIG}): pass a new out"
        )
    settings = dict(saved[kind])
    for name, value in fixed.items():
        recorded = settings.get(name)
        if value is not None and recorded is not None and value != recorded:
            raise ConfigError(
                f"{caller} resumes a run of {name}={recorded!r}, not {value!r}: pass "
                f"{name}={recorded!r}, or a new out"
            )
    resume_from = checkpoint.load_checkpoint(out, warn=warn_stderr)
    lost = checkpoint.lost_checkpoints(out, status, resume_from)
    if lost is not None:
        raise rundir.RunDirError(
            f"{caller}: {lost} but no usable checkpoint is left in "
            f"{out / rundir.CHECKPOINTS}: pass a new out to start over"
        )
    return resume_from, settings


def _killed_at_start(out: Path, kind: str) -> bool:
    """Whether ``out`` holds only what a library run of ``kind`` writes before its status
    (:func:`trainways.rundir.killed_before_status`): a run killed at its start, started over."""
    if not rundir.killed_before_status(out):
        return False
    try:
        return kind in rundir.read_config(out)
    except rundir.RunDirError:
        return False
