"""One training run's life cycle: set up, train, record the outcome, write the outputs.

The CLI parses and prints; everything between a configuration and a finished run directory
happens here, in the order a reader meets it:

1. :func:`train` / :func:`resume` load the data and check the configuration against it before any
   file exists; a non-chief worker of a cluster trains into a scratch directory
   (:func:`_as_worker`).
   The devices are set up (:func:`make_devices`) and the model built once
   (:func:`check_model`) before the run directory exists, so a bad device or model is refused
   without leaving one.
2. :func:`_start` records ``running``, sends the log to ``train.log``, and turns a second
   Ctrl-C or an unexpected error into a truthful ``status.json``.
3. :func:`_train` builds the model and data (:func:`build_training`, the same for every method),
   assembles the callbacks (:func:`training_callbacks`), and hands them to the method's trainer.
4. A stop — a signal, a non-finite loss, a lost worker — is recorded by :func:`record_stop`;
   a completed run's outputs by :func:`_write_outputs`. ``status.json`` is written from this
   module (and, for a user's own loop, from :mod:`trainways.own_loop`, with the same helpers),
   and last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras

from trainways import callbacks as tw_callbacks
from trainways import checkpoint, rundir, tracking
from trainways.config import ConfigError, DataConfig, RunConfig, apply_options, is_code_ref
from trainways.report import summarize_history
from trainways.steps import extra_optimizers, load_step
from trainways.stops import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Interrupted,
    NonFiniteLoss,
    TrainingStopped,
    exit_status,
)
from trainways.trainers import TrainData, TrainSpec, get_trainer

LOG = logging.getLogger("trainways")


# --------------------------------------------------------------------------- building blocks


@dataclass(frozen=True)
class Training:
    """Everything one method needs to train, built from a configuration."""

    model: keras.Model
    data: TrainData
    spec: TrainSpec


def load_data(config: DataConfig) -> Any:
    """The Reuters data a configuration asks for (:func:`trainways.data.load_reuters`)."""
    from trainways.data import load_reuters

    return load_reuters(config.source, num_words=config.num_words, skip_top=config.skip_top)


def check(config: RunConfig, reuters: Any) -> None:
    """Settings that depend on the data, checked before any file is written.

    Raises:
        DataError: The data is not the Keras Reuters dataset and ``allow_other_data`` (or
            ``$TRAINWAYS_ALLOW_OTHER_DATA``) does not say that is intended; or the validation
            split holds no wire out.
    """
    from trainways.data import check_identity, held_out_wires

    check_identity(
        reuters.fingerprint,
        config.data.source or reuters.source,
        allow_other=config.data.allow_other_data,
    )
    held_out_wires(len(reuters.y_train), config.data.validation_split)


def check_model(config: RunConfig, reuters: Any, devices: Any = None) -> None:
    """Build the model once to see that it takes the data's shape, before any file is written.

    Raises:
        ConfigError: The preset is unknown, or cannot take sequences of ``max_len`` ids (the
            tutorial CNN's pooling leaves nothing of fewer than 12), or does not output one
            probability per topic.
    """
    from trainways.model import build_model

    scope = devices.strategy.scope() if devices is not None else contextlib.nullcontext()
    try:
        with scope:
            model = build_model(
                config.model,
                vocab_size=reuters.vocab_size,
                num_classes=reuters.num_classes,
                max_len=config.data.max_len,
                precision=config.train.precision,
            )
    except ConfigError:
        raise
    except Exception as error:  # Keras says it in a page of text; the first line is the point
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if is_code_ref(config.model.preset):
            raise ConfigError(
                f"model {config.model.preset!r} failed: {type(error).__name__}: {first}",
                keys=("preset",),
            ) from None
        raise ConfigError(
            f"model {config.model.preset!r} cannot take sequences of max_len "
            f"{config.data.max_len} ({first}): choose a larger max_len",
            keys=("max_len", "preset"),
        ) from None
    shape = _output_shape(model, config.data.max_len)
    if shape != (None, reuters.num_classes):
        raise ConfigError(
            f"model {config.model.preset!r} outputs shape {shape}, not one "
            f"probability per topic (None, {reuters.num_classes})",
            keys=("preset",),
        )
    from trainways.backends import current
    from trainways.model import build_optimizer

    # The backend may refuse an optimizer or compiler setting (xla_optimizer on JAX, xla on
    # PyTorch).
    backend = current()
    with devices.strategy.scope() if devices is not None else contextlib.nullcontext():
        build_optimizer(
            config.train.learning_rate,
            xla=config.train.xla_optimizer,
            dense=config.train.dense_gradients,
            weight_decay=config.train.weight_decay,
            backend=backend,
        )
    backend.check_training(config.train.jit_compile, config.train.steps_per_execution)
    if config.train.step or config.train.test_step:
        check_steps(config, reuters, devices)
    # Forget the throwaway models' layer names: the run's model is then named the same whatever
    # was checked (variable paths are compared between runs, and a --step checks one more).
    keras.backend.clear_session()


def _output_shape(model: keras.Model, max_len: int) -> tuple[int | None, ...]:
    """The model's output shape, batch dimension ``None``; a subclassed model (a user's) may
    know it only once called."""
    try:
        return tuple(model.output_shape)
    except (AttributeError, ValueError):
        shape = keras.ops.shape(model(keras.ops.zeros((1, max_len), dtype="int32")))
        return (None, *(int(n) for n in shape[1:]))


def check_steps(config: RunConfig, reuters: Any, devices: Any = None) -> None:
    """Load the user's step functions and trace them once on a throwaway model, so that a broken
    step (a missing file or function, a wrong signature, logs without a loss) is refused before
    any file is written.

    Raises:
        ConfigError: What is wrong with the step, in one line.
    """
    from trainways.backends import current
    from trainways.trainers import loop, prepare

    scope = devices.strategy.scope() if devices is not None else contextlib.nullcontext()
    with scope:
        training = build_training(config, reuters)
        setup = prepare(training.model, training.data, training.spec, current())
        loop.make_stepper(setup).check(training.data)
    keras.backend.clear_session()  # as check_model: the throwaway's names are forgotten


def make_devices(config: RunConfig) -> Any:
    """Set the devices and the strategy up (before TensorFlow runs anything)."""
    from trainways.backends import current

    return current().devices.make_strategy(config.device)


def check_run_data(config: RunConfig, reuters: Any, run_dir: Path) -> None:
    """Refuse data other than the data the run in ``run_dir`` was trained on.

    A run made before runs recorded their data's fingerprint is accepted if the data is the
    Keras dataset, or other data is allowed (as in :func:`check`).

    Raises:
        DataError: The data's fingerprint differs from the one in the run's ``config.json``.
    """
    from trainways.data import check_identity, check_same_data

    source = config.data.source or reuters.source
    if config.data.fingerprint is None:
        check_identity(reuters.fingerprint, source, allow_other=config.data.allow_other_data)
    check_same_data(reuters.fingerprint, config.data.fingerprint, source, str(run_dir))


def with_fingerprint(config: RunConfig, reuters: Any) -> RunConfig:
    """``config`` with the loaded data's fingerprint recorded (``config.json`` keeps it)."""
    found = reuters.fingerprint.to_dict() if reuters.fingerprint is not None else None
    return replace(config, data=replace(config.data, fingerprint=found))


def with_backend(config: RunConfig) -> RunConfig:
    """``config`` with the Keras backend this process runs on recorded (``config.json`` keeps
    it, so that ``--resume`` and ``compare``'s children use the same)."""
    return replace(config, device=replace(config.device, backend=keras.backend.backend()))


def with_seed(config: RunConfig) -> RunConfig:
    """``config`` with a random seed drawn if it has none (the run records it)."""
    if config.train.seed is not None:
        return config
    return replace(config, train=replace(config.train, seed=secrets.randbelow(2**31)))


def seed_everything(config: RunConfig) -> None:
    """Seed Python, NumPy and the backend (if a seed is set); with ``deterministic``, also fix
    its kernels."""
    if config.train.seed is not None:
        keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        from trainways.backends import current

        current().enable_determinism()


def build_training(config: RunConfig, reuters: Any, *, first_epoch: int = 0) -> Training:
    """Model, data pipeline and spec for ``config``, identical for every method.

    Call :func:`seed_everything` first: the model's initial weights come from the seed.

    Args:
        config: The run's configuration (``train.seed`` set).
        reuters: The loaded data.
        first_epoch: Epoch to start at (a resumed run's next epoch).
    """
    from trainways.backends import current
    from trainways.data import EpochClock, NumpyBatches, make_dataset, model_inputs, steps_per_epoch
    from trainways.model import (
        adapt_to_training_data,
        build_loss,
        build_metrics,
        build_model,
        build_optimizer,
    )

    backend = current()
    model = build_model(
        config.model,
        vocab_size=reuters.vocab_size,
        num_classes=reuters.num_classes,
        max_len=config.data.max_len,
        precision=config.train.precision,
    )
    inputs = model_inputs(
        reuters, max_len=config.data.max_len, validation_split=config.data.validation_split
    )
    # Before the weights a resumed run restores, so those (IDF included) win.
    adapt_to_training_data(model, inputs.x_train)
    batch = config.train.batch_size
    # One pass per epoch, the epoch the trainer sets on the clock: an execution of several
    # steps then ends where the epoch does, whatever their number.
    clock = EpochClock(first_epoch)
    passes = {"batch_size": batch, "shuffle": True, "seed": config.train.seed, "clock": clock}
    steps = steps_per_epoch(len(inputs.x_train), batch)
    train, val = (inputs.x_train, inputs.y_train), (inputs.x_val, inputs.y_val)
    data = TrainData(
        make_dataset(*train, **passes),
        make_dataset(*val, batch_size=batch, shuffle=False),
        steps,
        numpy=TrainData(
            NumpyBatches(*train, **passes),
            NumpyBatches(*val, batch_size=batch, shuffle=False),
            steps,
            clock=clock,
        ),
        clock=clock,
    )
    spec = TrainSpec(
        epochs=config.train.epochs,
        loss=build_loss(config.train.loss, config.train.label_smoothing),
        optimizer=build_optimizer(
            config.train.learning_rate,
            xla=config.train.xla_optimizer,
            dense=config.train.dense_gradients,
            weight_decay=config.train.weight_decay,
            backend=backend,
        ),
        metrics=build_metrics,
        jit_compile=config.train.jit_compile,
        initial_epoch=first_epoch,
        steps_per_execution=config.train.steps_per_execution,
        # Loaded here, inside the strategy's scope: what the file creates (a second optimizer)
        # is created under the strategy the run trains with.
        train_step=(
            load_step(config.train.step, role="step", arguments=backend.STEP_ARGUMENTS)
            if config.train.step
            else None
        ),
        test_step=(
            load_step(config.train.test_step, role="test_step", arguments=backend.STEP_ARGUMENTS)
            if config.train.test_step
            else None
        ),
    )
    return Training(model, data, spec)


def schedule_callbacks(config: RunConfig) -> list[keras.callbacks.Callback]:
    """Callbacks that change the training itself (the same in every method and in ``agree``)."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.train.lr_halve_at:
        callbacks.append(tw_callbacks.HalveLearningRate(config.train.lr_halve_at))
    if config.train.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=config.train.stop_on,
                # Explicit: Keras infers it from the model's compiled metrics, which a
                # hand-driven method's model need not have.
                mode="min" if config.train.stop_on == "val_loss" else "max",
                patience=config.train.patience,
            )
        )
    return callbacks


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
        LOG.addHandler(logging.FileHandler(log_file, encoding="utf-8"))


# --------------------------------------------------------------------------- entry points


def train(
    config: RunConfig, *, out: Path | None = None, overwrite: bool = False, quiet: bool = False
) -> int:
    """Train ``config`` into a new run directory; return the process exit status.

    Args:
        config: The run's configuration; a missing seed is drawn and recorded.
        out: The run directory (default ``runs/<time>-<method>``).
        overwrite: Reuse a non-empty ``out``.
        quiet: Log to ``train.log`` only.

    Raises:
        ConfigError, DataError, RunDirError: Bad input, found before any file is written.
    """
    config = with_backend(with_seed(config))
    reuters = load_data(config.data)  # a bad --data fails before any run directory exists
    check(config, reuters)
    config = with_fingerprint(config, reuters)
    devices = make_devices(config)
    check_model(config, reuters, devices)
    if not _is_chief(config):
        return _as_worker(config, reuters, devices, quiet=quiet)
    out = Path(out or rundir.default_run_dir(config.train.method))
    # Resolved beside the run directories, and recorded: a resumed run logs to the same store.
    config = tracking.with_resolved_uri(config, out.parent)
    out = rundir.prepare(out, overwrite=overwrite)
    rundir.write_json(out / rundir.CONFIG, config.to_dict())
    return _start(out, config, reuters, devices, quiet=quiet)


def resume(run_dir: Path, *, options: Mapping[str, Any] | None = None, quiet: bool = False) -> int:
    """Continue the run in ``run_dir`` from its last complete epoch; return the exit status.

    Args:
        run_dir: An interrupted or failed run's directory.
        options: ``"section.key"`` → value for what may change on resuming: the devices, the
            distribution and the data's location (``None`` values: not given).
        quiet: Log to ``train.log`` only.

    Raises:
        RunDirError: ``run_dir`` is not a run that can be resumed.
        ConfigError: A multi-worker run is resumed without this worker's place in the cluster.
    """
    options = options or {}
    status = rundir.require_resumable(run_dir)
    config = apply_options(RunConfig.from_dict(rundir.read_config(run_dir)), options)
    if (
        config.device.strategy == "multiworker"
        and options.get("device.task_index") is None
        and "TF_CONFIG" not in os.environ
    ):
        raise ConfigError(
            "resuming a multiworker run: give this worker's workers and task_index "
            "(or set $TF_CONFIG), on every worker",
            keys=("workers", "task_index"),
        )
    reuters = load_data(config.data)
    check_run_data(config, reuters, run_dir)
    devices = make_devices(config)
    if config.train.step or config.train.test_step:
        check_steps(config, reuters, devices)  # the step's file may have changed since
    if not _is_chief(config):
        # Reads the chief's checkpoint (the run directory must be visible to every worker);
        # writes only to its own scratch directory.
        latest = checkpoint.load_checkpoint(run_dir, warn=_warn_stderr)
        return _as_worker(config, reuters, devices, quiet=quiet, resume_from=latest)
    configure_logging(run_dir / rundir.LOG, quiet=quiet)
    latest = checkpoint.load_checkpoint(run_dir, warn=LOG.warning)
    # A run killed mid-epoch still says "running" with the epochs of its start: history.csv knows.
    history = run_dir / rundir.HISTORY
    logged = len(rundir.read_history(run_dir).get("loss", [])) if history.is_file() else 0
    completed = max(int(status.get("epochs_completed") or 0), logged)
    if latest is None and completed > 0:
        raise rundir.RunDirError(
            f"--resume {run_dir}: its status says {completed} epoch(s) completed but no usable "
            f"checkpoint is left in {run_dir / rundir.CHECKPOINTS}; to start over, train anew: "
            f"trainways train --config {run_dir / rundir.CONFIG} --out NEW_DIR"
        )
    if latest is None:
        LOG.info("no complete epoch in %s (it was %s): starting over", run_dir, status["state"])
    return _start(run_dir, config, reuters, devices, quiet=quiet, resume_from=latest)


def _one_line(error: BaseException) -> str:
    """An error as one plain line for ``status.json``: Keras's messages carry ANSI colour codes
    and pages of context."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}"[:500]


def _warn_stderr(message: str) -> None:
    print(f"trainways: warning: {message}", file=sys.stderr)


def _is_chief(config: RunConfig) -> bool:
    from trainways.backends import current

    return current().devices.is_chief(config.device)


def _as_worker(
    config: RunConfig,
    reuters: Any,
    devices: Any,
    *,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None = None,
) -> int:
    """Train as a non-chief worker: in step with the chief, writing only to a scratch directory.

    Every worker must run the same callbacks (they read metrics, which are collective under
    ``MultiWorkerMirroredStrategy``), so a worker writes what the chief writes, but to a
    temporary directory that is removed when it exits.
    """
    scratch = Path(tempfile.mkdtemp(prefix="trainways-worker-"))
    config = replace(config, train=replace(config.train, tracking=None))  # the chief tracks
    try:
        rundir.write_json(scratch / rundir.CONFIG, config.to_dict())
        configure_logging(scratch / rundir.LOG, quiet=quiet)
        LOG.info("not the chief: the run directory is the chief's; scratch files in %s", scratch)
        return _start(scratch, config, reuters, devices, quiet=quiet, resume_from=resume_from)
    finally:
        configure_logging(None, quiet=quiet)  # closes the log file before it is removed
        shutil.rmtree(scratch, ignore_errors=True)


def _start(
    out: Path,
    config: RunConfig,
    reuters: Any,
    devices: Any,
    *,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None = None,
) -> int:
    """Train, keeping ``status.json`` truthful whatever happens, and the MLflow run (with
    ``--mlflow``) ending as ``status.json`` does."""
    first_epoch = resume_from.epoch if resume_from else 0
    rundir.set_status(out, rundir.RUNNING, epochs_completed=first_epoch)
    configure_logging(out / rundir.LOG, quiet=quiet)
    tracker = tracking.for_run(out, config, warn=_warner(quiet))
    try:
        return _train(
            out, config, reuters, devices, quiet=quiet, resume_from=resume_from, tracker=tracker
        )
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        rundir.set_status(out, rundir.INTERRUPTED, resume=rundir.resume_command(out))
        LOG.info("interrupted; resume with: %s", rundir.resume_command(out))
        return EXIT_INTERRUPTED
    except BaseException as error:
        rundir.set_status(out, rundir.FAILED, error=_one_line(error))
        raise
    finally:
        if tracker is not None:
            tracker.run.end_as_run_dir()


def _warner(quiet: bool) -> Any:
    """A warning for the log, and for stderr too when the log is not printed."""

    def warn(message: str) -> None:
        LOG.warning(message)
        if quiet:
            _warn_stderr(message)

    return warn


# --------------------------------------------------------------------------- one run


def _train(
    out: Path,
    config: RunConfig,
    reuters: Any,
    devices: Any,
    *,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None,
    tracker: keras.callbacks.Callback | None = None,
) -> int:
    """Train into ``out`` and record the outcome; return the exit status.

    Model, optimizer and metrics are built in ``devices.strategy``'s scope, and training runs in
    it, so every method uses that strategy.
    """
    first_epoch = resume_from.epoch if resume_from else 0
    seed_everything(config)
    with devices.strategy.scope():
        training = build_training(config, reuters, first_epoch=first_epoch)
    _log_header(out, config, reuters, training, devices)
    callbacks, checkpointer, timer, signals = training_callbacks(
        out,
        config,
        quiet,
        resume_from,
        extra_optimizers(training.spec.train_step, training.spec.test_step),
        tracker=tracker,
    )
    from trainways.backends import current

    backend = current()
    started = time.perf_counter()
    try:
        with devices.strategy.scope():
            get_trainer(config.train.method, backend)(
                training.model, training.data, training.spec, callbacks
            )
    except TrainingStopped as stop:
        return record_stop(out, config, stop)
    except Exception as error:
        if config.device.strategy != "multiworker" or not backend.is_cluster_failure(error):
            raise
        return record_stop(out, config, error)
    finally:
        signals.restore_handlers()
    _write_outputs(
        out,
        config,
        reuters,
        training.model,
        summarize_history(
            checkpointer.history,
            timer.epoch_seconds,
            train_seconds=time.perf_counter() - started,
            first_step_loss=timer.first_step_loss,
        ),
        device=devices.description,
    )
    return EXIT_OK


def _log_header(
    out: Path, config: RunConfig, reuters: Any, training: Training, devices: Any
) -> None:
    training.model.summary(print_fn=lambda text, **_: LOG.info(text.rstrip()))
    LOG.info("device: %s", devices.description)
    if devices.replicas > 1:
        batch = config.train.batch_size
        low, extra = divmod(batch, devices.replicas)
        per_replica = str(low) if not extra else f"{low}-{low + 1}"
        LOG.info(
            "replicas: %d; batch %d is the global batch, %s per replica",
            devices.replicas,
            batch,
            per_replica,
        )
    LOG.info("data:   %s", reuters.source)
    from trainways.data import held_out_wires

    split = config.data.validation_split
    val_wires = held_out_wires(len(reuters.y_train), split) or len(reuters.y_test)
    LOG.info(
        "validation: %s",
        f"the last {val_wires:,} training wires (--validation-split {split:g}); the test split "
        "stays unseen (trainways evaluate scores it)"
        if split
        else f"the {val_wires:,} test wires (as the tutorial; --validation-split F holds "
        "training wires out instead)",
    )
    train = config.train
    LOG.info(
        "method: %s, %d epochs, batch %d, lr %g, seed %d%s, run directory %s",
        train.method,
        train.epochs,
        train.batch_size,
        train.learning_rate,
        train.seed,
        ", deterministic" if train.deterministic else "",
        out,
    )


def training_callbacks(
    out: Path,
    config: RunConfig,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None,
    extra_optimizers: tuple[keras.optimizers.Optimizer, ...] = (),
    *,
    user_callbacks: tuple[keras.callbacks.Callback, ...] = (),
    best_monitor: tuple[str, str] | None = ("val_accuracy", "max"),
    tracker: keras.callbacks.Callback | None = None,
) -> tuple[
    list[keras.callbacks.Callback],
    checkpoint.EpochCheckpoint,
    tw_callbacks.EpochLogger,
    tw_callbacks.StopOnSignal,
]:
    """The run's callbacks, in the order they must run, and the ones :func:`_train` reads.

    ``user_callbacks`` (a :class:`trainways.Loop`'s) run after the schedule and are checkpointed
    like it; ``best_monitor`` is ``best.keras``'s ``(monitor, mode)``, or ``None`` for none;
    ``tracker`` (:class:`trainways.callbacks.MlflowTracking`) runs after the checkpoint, so MLflow
    gets an epoch once it is checkpointed (a resumed run logs from ``history.csv`` what it lacks).
    """
    schedule = [*schedule_callbacks(config), *user_callbacks]
    timer = tw_callbacks.EpochLogger()
    signals = tw_callbacks.StopOnSignal()
    history_so_far = resume_from.history if resume_from else {}
    if resume_from:
        LOG.info("resuming after epoch %d from %s", resume_from.epoch, resume_from.path)
        # history.csv may hold an epoch finished after the checkpoint was taken: start it over
        # from the checkpoint so the resumed run appends exactly what an unbroken run writes.
        rundir.write_history_csv(history_so_far, out)
    callbacks: list[keras.callbacks.Callback] = [
        signals,
        tw_callbacks.StopOnNonFiniteLoss(),
        *schedule,
        timer,
    ]
    if not quiet and sys.stdout.isatty():
        callbacks.append(tw_callbacks.BatchProgress())
    if config.train.tensorboard:
        # Keras's own callback; it also logs the learning rate each epoch.
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))
    # The tutorial's model overfits after a few epochs, so its last epoch is rarely its best.
    best = [
        keras.callbacks.ModelCheckpoint(
            str(out / rundir.BEST), monitor=monitor, mode=mode, save_best_only=True
        )
        for monitor, mode in ([best_monitor] if best_monitor else [])
    ]
    # The timer is tracked too, so that a resumed run's metrics.json keeps every epoch's time.
    checkpointer = checkpoint.EpochCheckpoint(
        out,
        callbacks=[*schedule, *best, timer],
        initial_history=history_so_far,
        restore_from=resume_from,
        extra_optimizers=extra_optimizers,
    )
    callbacks += [
        tw_callbacks.HistoryCSV(str(out / rundir.HISTORY), append=resume_from is not None),
        *best,
        checkpointer,  # it saves the state the callbacks before it have just updated
        *([tracker] if tracker is not None else []),
    ]
    return callbacks, checkpointer, timer, signals


def record_stop(
    out: Path, config: RunConfig, stop: BaseException, resume: str | None = None
) -> int:
    """Record a run that stopped before its last epoch; return its exit status.

    ``resume`` says how to continue it (default: ``trainways train --resume OUT``).
    """
    latest = checkpoint.load_checkpoint(out, warn=LOG.warning)
    done = latest.epoch if latest else 0
    resume = resume or rundir.resume_command(out)
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
    workers = config.device.workers
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


def _write_outputs(
    out: Path,
    config: RunConfig,
    reuters: Any,
    model: keras.Model,
    summary: dict[str, Any],
    *,
    device: str,
) -> None:
    """A completed run's model, encoder and metrics; ``status.json`` says so last."""
    from trainways.data import held_out_wires

    # The wires the epochs trained on: a validation split holds the last ones out.
    train_wires = len(reuters.y_train)
    summary["train_samples"] = train_wires - held_out_wires(
        train_wires, config.data.validation_split
    )
    model.save(out / rundir.MODEL)
    rundir.write_json(
        out / rundir.ENCODER, {**reuters.encoder_state(), "max_len": config.data.max_len}
    )
    rundir.write_json(out / rundir.METRICS, summary)
    rundir.set_status(
        out,
        rundir.COMPLETED,
        device=device,
        data=reuters.source,
        epochs_completed=summary["epochs"],
    )
    best = summary["best"]
    LOG.info(
        "best %s %.4f at epoch %d; run saved in %s",
        best["monitor"],
        best[best["monitor"]],
        best["epoch"],
        out,
    )
