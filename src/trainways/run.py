"""One training run from a configuration: ``trainways train`` and ``trainways train --resume``.

The CLI parses and prints; everything between a configuration and a finished run directory
happens here, in the order a reader meets it:

1. :func:`train` / :func:`resume` run the pre-flight (:func:`trainways.preflight.preflight`:
   data, devices, the model built once) before any file exists; a non-chief worker of a cluster
   trains into a scratch directory (:func:`_as_worker`). The chief then takes the run
   directory's lock (:func:`trainways.rundir.lock`) and holds it until the run ends, before it
   writes or removes anything there.
2. :func:`_start` opens the run's life cycle (:class:`trainways.lifecycle.RunLife`: status,
   ``train.log``, the MLflow run, how a stop or an error is recorded).
3. :func:`_train` builds the model and data (:func:`trainways.training.build_training`, the
   same for every method), takes the life cycle's callbacks, hands them to the method's
   trainer, and writes the completed run's outputs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras

from trainways import checkpoint, rundir
from trainways.callbacks import MlflowTracking
from trainways.config import ConfigError, RunConfig, apply_options
from trainways.config.fields import is_code_ref
from trainways.lifecycle import (
    LOG,
    RunLife,
    configure_logging,
    make_run_dir,
    warn_stderr,
    warner,
)
from trainways.preflight import Prepared, check_model, preflight
from trainways.steps import extra_optimizers
from trainways.trainers import get_trainer
from trainways.training import (
    Training,
    build_model_for,
    build_training,
    schedule_callbacks,
    seed_everything,
)
from trainways.user_data import UserData


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
    prepared = preflight(config)
    config = prepared.config
    if not prepared.backend.devices.is_chief(config.device):
        return _as_worker(prepared, quiet=quiet)
    out, config, held = make_run_dir(config, out, name=config.train.method, overwrite=overwrite)
    with held:  # the whole run: no other process writes out meanwhile
        rundir.write_json(out / rundir.CONFIG, config.to_dict())
        return _start(out, replace(prepared, config=config), quiet=quiet)


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
    rundir.require_resumable(run_dir)  # before anything, the lock file included, is made in it
    recorded = RunConfig.from_dict(rundir.read_config(run_dir))
    config = apply_options(recorded, options)
    if config.data.is_user_data != recorded.data.is_user_data:
        raise ConfigError(
            f"--resume {run_dir}: the run trained on {recorded.data.source or 'the Reuters data'}"
            f", and data {config.data.source!r} is another kind: give the run's kind of data "
            "(its moved file), or leave --data out",
            keys=("source",),
        )
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
    prepared = preflight(config, resuming=run_dir)  # the step's file may have changed since
    if not prepared.backend.devices.is_chief(config.device):
        # Reads the chief's checkpoint (the run directory must be visible to every worker);
        # writes only to its own scratch directory.
        latest = checkpoint.load_checkpoint(run_dir, warn=warn_stderr)
        return _as_worker(prepared, quiet=quiet, resume_from=latest)
    # The whole run, from before its first write: a second --resume (or any other writer) is
    # refused while this one trains.
    with rundir.lock(run_dir, advice="wait for it to end (it may be resuming this run already)"):
        return _resume_locked(run_dir, prepared, quiet=quiet)


def _resume_locked(run_dir: Path, prepared: Prepared, *, quiet: bool) -> int:
    """:func:`resume` of the chief, under the run directory's lock."""
    # Read again under the lock: another process may have resumed or completed the run since.
    status = rundir.require_resumable(run_dir)
    configure_logging(run_dir / rundir.LOG, quiet=quiet)
    latest = checkpoint.load_checkpoint(run_dir, warn=LOG.warning)
    _require_commit_point(run_dir, status, latest)
    _require_same_model(run_dir, prepared, latest)
    if latest is None:
        LOG.info(
            "no checkpoint in %s yet (it was %s, stopped before its first epoch was "
            "checkpointed): starting over from epoch 1",
            run_dir,
            status["state"],
        )
    return _start(run_dir, prepared, quiet=quiet, resume_from=latest)


def _require_commit_point(
    run_dir: Path, status: Mapping[str, Any], latest: checkpoint.Checkpoint | None
) -> None:
    """Refuse a run whose checkpoints were lost (:func:`trainways.checkpoint.lost_checkpoints`);
    what a kill left after the last checkpoint is rolled back instead."""
    why = checkpoint.lost_checkpoints(run_dir, status, latest)
    if why is not None:
        raise rundir.RunDirError(
            f"--resume {run_dir}: {why} but no usable checkpoint is left in "
            f"{run_dir / rundir.CHECKPOINTS}; to start over, train anew: "
            f"trainways train --config {run_dir / rundir.CONFIG} --out NEW_DIR"
        )


def _require_same_model(
    run_dir: Path, prepared: Prepared, latest: checkpoint.Checkpoint | None
) -> None:
    """Refuse, before anything is written, a ``--model`` builder file that no longer builds the
    run's model (it fails, or its weights are not the checkpoint's shapes)."""
    config = prepared.config
    if not is_code_ref(config.model.preset):
        return
    fix = (
        f"put {config.model.preset.split(':')[0]} back as it was when the run started, or train "
        f"anew: trainways train --config {run_dir / rundir.CONFIG} --out NEW_DIR"
    )
    try:
        check_model(config, prepared.reuters, prepared.devices, prepared.backend)
    except ConfigError as error:
        raise rundir.RunDirError(f"--resume {run_dir}: {error}; {fix}") from None
    if latest is None:
        return
    scope = prepared.devices.strategy.scope() if prepared.devices is not None else nullcontext()
    with scope:
        shapes = [tuple(v.shape) for v in build_model_for(config, prepared.reuters).weights]
    keras.backend.clear_session()  # a throwaway model, as check_model's
    saved = [tuple(array.shape) for array in latest.weights]
    if shapes != saved:
        raise rundir.RunDirError(
            f"--resume {run_dir}: model {config.model.preset!r} now builds {len(shapes)} weights "
            f"of other shapes than the {len(saved)} its checkpoint {latest.path.name} holds; {fix}"
        )


def _as_worker(
    prepared: Prepared, *, quiet: bool, resume_from: checkpoint.Checkpoint | None = None
) -> int:
    """Train as a non-chief worker: in step with the chief, writing only to a scratch directory.

    Every worker must run the same callbacks (they read metrics, which are collective under
    ``MultiWorkerMirroredStrategy``), so a worker writes what the chief writes, but to a
    temporary directory that is removed when it exits.
    """
    scratch = Path(tempfile.mkdtemp(prefix="trainways-worker-"))
    config = prepared.config
    config = replace(config, train=replace(config.train, tracking=None))  # the chief tracks
    try:
        rundir.write_json(scratch / rundir.CONFIG, config.to_dict())
        configure_logging(scratch / rundir.LOG, quiet=quiet)
        LOG.info("not the chief: the run directory is the chief's; scratch files in %s", scratch)
        return _start(
            scratch, replace(prepared, config=config), quiet=quiet, resume_from=resume_from
        )
    finally:
        configure_logging(None, quiet=quiet)  # closes the log file before it is removed
        shutil.rmtree(scratch, ignore_errors=True)


def _start(
    out: Path,
    prepared: Prepared,
    *,
    quiet: bool,
    resume_from: checkpoint.Checkpoint | None = None,
) -> int:
    """Train into ``out`` within the run's life cycle; return the exit status."""
    config, backend = prepared.config, prepared.backend
    life = RunLife(out, config, quiet=quiet, resume_from=resume_from)
    life.start(lambda: MlflowTracking.for_run(out, config, warn=warner(quiet)))
    multiworker = config.device.strategy == "multiworker"
    return life.run(
        lambda: _train(life, prepared),
        is_lost_worker=lambda error: multiworker and backend.is_cluster_failure(error),
    )


def _train(life: RunLife, prepared: Prepared) -> None:
    """Build, train and write the outputs of a completed run.

    Model, optimizer and metrics are built in the strategy's scope, and training runs in it, so
    every method uses that strategy.
    """
    config, reuters, devices, out = prepared.config, prepared.reuters, prepared.devices, life.out
    backend = prepared.backend
    seed_everything(config, backend)
    with devices.strategy.scope():
        training = build_training(config, reuters, first_epoch=life.first_epoch, backend=backend)
    _log_header(out, config, reuters, training, devices)
    own_data = isinstance(reuters, UserData)
    callbacks = life.callbacks(
        schedule_callbacks(config),
        extra_optimizers=extra_optimizers(training.spec.train_step, training.spec.test_step),
        best_monitor=_best_monitor(reuters),
    )
    with devices.strategy.scope():
        get_trainer(config.train.method, backend)(
            training.model, training.data, training.spec, callbacks
        )
    summary = life.summary()
    files = {}
    if own_data:
        if reuters.samples is not None:
            summary["train_samples"] = reuters.samples
    else:
        from trainways.data import held_out_wires

        # The wires the epochs trained on: a validation split holds the last ones out.
        train_wires = len(reuters.y_train)
        summary["train_samples"] = train_wires - held_out_wires(
            train_wires, config.data.validation_split
        )
        files[rundir.ENCODER] = {**reuters.encoder_state(), "max_len": config.data.max_len}
    life.complete(
        training.model,
        summary=summary,
        files=files,
        device=devices.description,
        data=reuters.source,
    )
    best = summary.get("best")  # a user's model may log no accuracy: no best epoch then
    if best is None:
        LOG.info("run saved in %s", out)
        return
    LOG.info(
        "best %s %.4f at epoch %d; run saved in %s",
        best["monitor"],
        best[best["monitor"]],
        best["epoch"],
        out,
    )


def _best_monitor(data: Any) -> tuple[str, str]:
    """What ``best.keras`` follows: the validation accuracy on Reuters; on the user's data,
    whose metrics trainways does not know before training, the validation loss (the training
    loss without validation data)."""
    if not isinstance(data, UserData):
        return ("val_accuracy", "max")
    return ("val_loss" if data.validation is not None else "loss", "min")


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
    if isinstance(reuters, UserData):
        LOG.info("data:   %s", reuters.describe())
    else:
        _log_reuters(config, reuters)
    train = config.train
    compiled = getattr(training.model, "compiled", False)  # by a user's builder: its own rate
    LOG.info(
        "method: %s, %d epochs, batch %d%s, seed %d%s, run directory %s",
        train.method,
        train.epochs,
        train.batch_size,
        "" if compiled else f", lr {train.learning_rate:g}",
        train.seed,
        ", deterministic" if train.deterministic else "",
        out,
    )
    if compiled:
        LOG.info("compile: the model's own (its loss, optimizer, learning rate and metrics)")


def _log_reuters(config: RunConfig, reuters: Any) -> None:
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
