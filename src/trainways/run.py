"""One training run of the Reuters classifier: build it from a configuration, drive it, record it.

The CLI parses and reports; this module does the work: seeds, devices, the shared factories, the
callbacks (log lines, progress, checkpoints, signals, early stop), the run directory and its
status. :func:`measure_agreement` trains the three methods under one configuration and compares
them.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras

from trainways import callbacks as tw_callbacks
from trainways import checkpoint, rundir
from trainways.agreement import Agreement, compare
from trainways.config import METHODS, RunConfig, resolve_steps_per_execution
from trainways.data import Reuters, make_dataset, pad, steps_per_epoch
from trainways.devices import Devices
from trainways.model import build_loss, build_metrics, build_model, build_optimizer
from trainways.report import summarize_history, write_history_csv
from trainways.trainers import TrainData, TrainSpec, get_trainer

LOG = logging.getLogger("trainways")

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class Training:
    """Everything one method needs to train, built from a configuration."""

    model: keras.Model
    data: TrainData
    spec: TrainSpec


def seed_everything(config: RunConfig) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic``, also fix TF's op choice."""
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def build_training(config: RunConfig, reuters: Reuters, *, first_epoch: int = 0) -> Training:
    """Model, data pipeline and spec for ``config``, identical for every method.

    Call :func:`seed_everything` first: the model's initial weights come from the seed.

    Args:
        config: The run's configuration (``train.seed`` set).
        reuters: The loaded data.
        first_epoch: Epoch to start at (a resumed run's next epoch); the training stream starts
            with that epoch's shuffle.
    """
    model = build_model(
        config.model,
        vocab_size=reuters.vocab_size,
        num_classes=reuters.num_classes,
        max_len=config.data.max_len,
        precision=config.train.precision,
    )
    x_train = pad(reuters.x_train, config.data.max_len)
    steps = steps_per_epoch(len(x_train), config.train.batch_size)
    data = TrainData(
        make_dataset(
            x_train,
            reuters.y_train,
            batch_size=config.train.batch_size,
            shuffle=True,
            seed=config.train.seed,
            first_epoch=first_epoch,
        ),
        make_dataset(
            pad(reuters.x_test, config.data.max_len),
            reuters.y_test,
            batch_size=config.train.batch_size,
            shuffle=False,
        ),
        steps,
    )
    spec = TrainSpec(
        epochs=config.train.epochs,
        loss=build_loss(),
        optimizer=build_optimizer(config.train.learning_rate, xla=config.train.xla_optimizer),
        metrics=build_metrics,
        jit_compile=config.train.jit_compile,
        initial_epoch=first_epoch,
        steps_per_execution=resolve_steps_per_execution(config.train.steps_per_execution, steps),
    )
    return Training(model, data, spec)


def schedule_callbacks(config: RunConfig) -> list[keras.callbacks.Callback]:
    """Callbacks that change the training itself (the same in every method and in ``agree``)."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.train.lr_halve_at:
        callbacks.append(tw_callbacks.HalveLearningRate(config.train.lr_halve_at))
    if config.train.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.patience)
        )
    return callbacks


def run_training(
    out: Path,
    config: RunConfig,
    reuters: Reuters,
    devices: Devices,
    *,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None = None,
) -> int:
    """Train into the prepared run directory ``out``; return the process exit status.

    The status file tells the truth throughout: ``running`` while training, then ``completed``
    (written last), ``interrupted`` (SIGINT/SIGTERM: exit 130/143, with the resume command) or
    ``failed`` (non-finite loss or a lost worker: exit 1; any other error is recorded and
    re-raised). Model, optimizer and metrics are built in ``devices.strategy``'s scope, and
    training runs in it, so every method uses that strategy.
    """
    first_epoch = resume_from.epoch if resume_from else 0
    seed_everything(config)
    with devices.strategy.scope():
        training = build_training(config, reuters, first_epoch=first_epoch)
    training.model.summary(print_fn=lambda text, **_: LOG.info(text.rstrip()))
    device = devices.description
    LOG.info("device: %s", device)
    if devices.replicas > 1:
        batch = config.train.batch_size
        LOG.info(
            "replicas: %d; batch %d is the global batch, %s per replica",
            devices.replicas,
            batch,
            _per_replica(batch, devices.replicas),
        )
    LOG.info("data:   %s", reuters.source)
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

    schedule = schedule_callbacks(config)
    timer = tw_callbacks.EpochLogger()
    signals = tw_callbacks.StopOnSignal()
    history_so_far = resume_from.history if resume_from else {}
    if resume_from:
        LOG.info("resuming after epoch %d from %s", resume_from.epoch, resume_from.path)
        # history.csv may hold an epoch finished after the checkpoint was taken: start it over
        # from the checkpoint so the resumed run appends exactly what an unbroken run writes.
        write_history_csv(history_so_far, out / rundir.HISTORY)
    callbacks: list[keras.callbacks.Callback] = [
        signals,
        tw_callbacks.StopOnNonFiniteLoss(),
        *schedule,
        timer,
    ]
    if not quiet and sys.stdout.isatty():
        callbacks.append(tw_callbacks.BatchProgress())
    if train.tensorboard:
        # Keras's own callback; it also logs the learning rate each epoch.
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))
    # The tutorial's model overfits after a few epochs, so its last epoch is rarely its best.
    best = keras.callbacks.ModelCheckpoint(
        str(out / rundir.BEST), monitor="val_accuracy", mode="max", save_best_only=True
    )
    checkpointer = checkpoint.EpochCheckpoint(
        out, callbacks=[*schedule, best], initial_history=history_so_far, restore_from=resume_from
    )
    callbacks += [
        keras.callbacks.CSVLogger(str(out / rundir.HISTORY), append=resume_from is not None),
        best,
        checkpointer,  # last: it saves the state the callbacks before it have just updated
    ]

    rundir.set_status(out, rundir.RUNNING, epochs_completed=first_epoch)
    started = time.perf_counter()
    try:
        with devices.strategy.scope():
            get_trainer(train.method)(training.model, training.data, training.spec, callbacks)
    except tw_callbacks.Interrupted as stop:
        done = _epochs_completed(out)
        rundir.set_status(
            out,
            rundir.INTERRUPTED,
            signal=signal.Signals(stop.signum).name,
            epochs_completed=done,
            resume=rundir.resume_command(out),
        )
        LOG.info(
            "%s: stopped after %d complete epoch(s); resume with: %s",
            signal.Signals(stop.signum).name,
            done,
            rundir.resume_command(out),
        )
        return EXIT_BY_SIGNAL.get(stop.signum, 128 + stop.signum)
    except tw_callbacks.NonFiniteLoss as stop:
        done = _epochs_completed(out)
        rundir.set_status(out, rundir.FAILED, error=str(stop), epochs_completed=done)
        LOG.error(
            "failed: %s (loss %s); the last good checkpoint (epoch %d) is kept in %s",
            stop,
            stop.value,
            done,
            out / checkpoint.CHECKPOINTS,
        )
        return EXIT_FAILED
    except Exception as error:
        if config.device.strategy != "multiworker" or not _is_cluster_failure(error):
            raise
        done = _epochs_completed(out)
        message = str(error).strip().splitlines()[0][:300]
        workers = config.device.workers
        cluster = f" --workers {','.join(workers)} --task-index I" if workers else ""
        rundir.set_status(
            out,
            rundir.FAILED,
            error=f"lost a worker: {type(error).__name__}: {message}",
            epochs_completed=done,
            resume=f"{rundir.resume_command(out)}{cluster} (on every worker, I = its index)",
        )
        LOG.error(
            "failed: a worker stopped or became unreachable (%s: %s); %d complete epoch(s) are "
            "checkpointed. Restart every worker with --resume %s (and the same --workers).",
            type(error).__name__,
            message,
            done,
            out,
        )
        return EXIT_FAILED
    finally:
        signals.restore_handlers()

    summary = summarize_history(
        checkpointer.history, timer.epoch_seconds, train_seconds=time.perf_counter() - started
    )
    summary["train_samples"] = len(reuters.y_train)
    training.model.save(out / rundir.MODEL)
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
    return EXIT_OK


def _per_replica(batch: int, replicas: int) -> str:
    low, extra = divmod(batch, replicas)
    return str(low) if not extra else f"{low}-{low + 1}"


def _is_cluster_failure(error: Exception) -> bool:
    """Whether ``error`` is TensorFlow reporting a peer lost in a collective."""
    import tensorflow as tf

    return isinstance(
        error,
        (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
            tf.errors.InternalError,
        ),
    )


def _epochs_completed(out: Path) -> int:
    latest = checkpoint.load_checkpoint(out, warn=LOG.warning)
    return latest.epoch if latest else 0


class _CaptureWeights(keras.callbacks.Callback):
    """Keeps a copy of the model's variables at the end of epoch 1."""

    def __init__(self) -> None:
        super().__init__()
        self.after_first: list[tuple[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.after_first:
            self.after_first = _named_weights(self.model)


def _named_weights(model: keras.Model) -> list[tuple[str, Any]]:
    return [(variable.path, variable.numpy()) for variable in model.weights]


def measure_agreement(
    config: RunConfig, reuters: Reuters, *, methods: tuple[str, ...] = METHODS
) -> tuple[Agreement, dict[str, dict[str, list[float]]]]:
    """Train each method from the same seed, with op determinism, and compare them.

    Returns:
        The agreement and each method's History.
    """
    config = replace(config, train=replace(config.train, deterministic=True))
    first, final, histories = {}, {}, {}
    for method in methods:
        # Fresh layer-name counters, so each model's variables have the same paths.
        keras.backend.clear_session()
        seed_everything(config)
        training = build_training(config, reuters)
        capture = _CaptureWeights()
        timer = tw_callbacks.EpochLogger(logging.getLogger(f"trainways.agree.{method}"))
        history = get_trainer(method)(
            training.model,
            training.data,
            training.spec,
            [*schedule_callbacks(config), capture, timer],
        )
        LOG.info(
            "%s: %d epoch(s) in %.1f s", method, len(timer.epoch_seconds), sum(timer.epoch_seconds)
        )
        first[method] = capture.after_first
        final[method] = _named_weights(training.model)
        histories[method] = history.history
    return compare(first, final, histories), histories
