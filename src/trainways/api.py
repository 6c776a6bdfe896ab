"""The library entry point: ``trainways.fit(model, ...)`` is ``model.fit(...)``, three ways.

The call mirrors :meth:`keras.Model.fit` — the same arguments, meaning the same things — plus
trainways' own (``method=``, ``seed=``, ``tracking=``...), so that porting a Keras script is
``model.fit(`` → ``trainways.fit(model, ``. The model's ``compile()`` is its user's: its loss
(per-output losses and ``loss_weights`` included), metrics, optimizer, ``jit_compile`` and
``steps_per_execution`` are what every method trains with. Only a model nobody compiled is
compiled here, with the documented defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import keras

from trainways import rundir
from trainways.backends import current
from trainways.config import TRACKING_AUTO, ConfigError, RunConfig, TrainConfig, replace
from trainways.data import prepare_inputs
from trainways.lifecycle import (
    LibraryRun,
    RunLife,
    configure_logging,
    open_library_run,
    script_command,
    script_name,
)
from trainways.steps import StepFn, check_step
from trainways.stops import EXIT_OK
from trainways.trainers import TrainSpec, get_trainer
from trainways.training import (
    build_optimizer_for,
    compiled_metrics,
    make_spec,
    schedule_callbacks,
    seed_everything,
    train_data_from,
)

# Options of ``trainways train`` that ``compile()`` owns: a compiled model has them already.
COMPILE_OPTIONS = (
    "learning_rate",
    "weight_decay",
    "xla_optimizer",
    "dense_gradients",
    "jit_compile",
    "steps_per_execution",
)


def fit(
    model: keras.Model,
    x: Any = None,
    y: Any = None,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: str | int = "auto",
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    class_weight: dict[int, float] | None = None,
    sample_weight: Any = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_batch_size: int | None = None,
    validation_freq: int | Sequence[int] = 1,
    *,
    method: str = "fit",
    seed: int | None = None,
    out: str | Path | None = None,
    tracking: str | bool | None = None,
    backend: str | None = None,
    step: StepFn | None = None,
    test_step: StepFn | None = None,
    **options: Any,
) -> keras.callbacks.History:
    """Train ``model`` as ``model.fit`` would, with ``Model.fit``, a ``train_on_batch`` loop or
    a hand-written loop.

    Every argument before ``method`` is ``Model.fit``'s and means what it means there, for every
    method: the same batches (arrays, dicts and lists of them, ``(x, y, sample_weight)``
    datasets, ``tf.data``, ``keras.utils.PyDataset``, generators, a torch ``DataLoader``), the
    same History keys and values (each metric's ``result()`` after the epoch), callbacks in
    ``fit``'s order, ``model.stop_training`` honoured.

    The model's ``compile()`` is kept as its user wrote it. A model that was never compiled is
    compiled with ``optimizer=keras.optimizers.Adam()`` (its rate from ``learning_rate=``),
    ``loss="sparse_categorical_crossentropy"`` and no metrics.

    Args:
        model: A Keras model, compiled by you or not (see above).
        x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
            shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
            validation_steps, validation_batch_size, validation_freq: As in ``Model.fit``.
            ``shuffle`` reshuffles array inputs every epoch in an order that is a pure function
            of ``seed`` and the epoch, the same for every method.
        method: ``"fit"`` (``Model.fit``), ``"batch"`` (a ``train_on_batch`` loop) or
            ``"loop"`` (a hand-written gradient step on the backend, compiled).
        seed: Seeds Python, NumPy, the backend and the shuffling. ``None`` draws the shuffle
            seed from NumPy's global generator, so a script seeded the Keras way
            (``keras.utils.set_random_seed``) repeats itself.
        out: A run directory, as ``trainways train --out`` writes one: ``status.json``,
            ``train.log``, ``history.csv``, a checkpoint (weights and optimizer state) after
            every epoch, ``model.keras`` and ``metrics.json`` at the end. Calling again with
            the same ``out`` (running the script again) resumes a stopped run after its last
            checkpointed epoch; a stop (Ctrl-C, SIGTERM, a non-finite loss) is recorded there
            and ends the script with ``trainways train``'s exit status. ``None``: no files.
        tracking: Log the training to MLflow at this tracking URI (``True``:
            ``$MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db``); see
            :mod:`trainways.tracking`.
        backend: The Keras backend this process must run on (``tensorflow``, ``jax``,
            ``torch``); Keras picks its backend when imported, from ``KERAS_BACKEND``.
        step: Your training step for ``method="loop"``: ``step(model, x, y)`` returning a dict
            of logs with ``"loss"`` (:mod:`trainways.steps`).
        test_step: Your validation step, same contract (default: the model's).
        **options: ``trainways train``'s other training options by their
            :class:`~trainways.config.TrainConfig` names (``deterministic=True``,
            ``lr_halve_at=5``, ``patience=3``...). Those ``compile()`` owns
            (``learning_rate``, ``jit_compile``, ``steps_per_execution``...) apply to a model
            nobody compiled; for a compiled one, give them to ``compile()``.

    Returns:
        The ``keras.callbacks.History`` of per-epoch logs.

    Raises:
        ConfigError: An argument is invalid or conflicts with the model's ``compile()`` (one
            line saying which and what to do).
    """
    if backend is not None:
        from trainways.backends import select

        select(backend)  # a process runs Keras on one backend: refused if it is another
    compiled = bool(getattr(model, "compiled", False))
    _refuse_compile_conflicts(options, compiled)
    config = replace(
        TrainConfig(),
        method=method,
        epochs=epochs,
        batch_size=batch_size or 32,
        seed=seed,
        tracking=TRACKING_AUTO if tracking is True else tracking or None,
        **options,
    )
    _refuse_run_options(config)
    backend_module = current()  # the one look-up, passed down
    for role, fn in (("step", step), ("test_step", test_step)):
        if fn is not None:
            check_step(fn, role=role, arguments=backend_module.STEP_ARGUMENTS)
    opened = None
    if out is not None:
        out = Path(out)
        opened = open_library_run(
            out,
            kind="fit",
            caller=f"trainways.fit(out={str(out)!r})",
            fixed={"seed": seed, "epochs": epochs, "method": method},
        )
    try:
        return _fit(
            model,
            config,
            compiled=compiled,
            backend=backend_module,
            out=out,
            opened=opened,
            data_arguments={
                "x": x,
                "y": y,
                "sample_weight": sample_weight,
                "class_weight": class_weight,
                "batch_size": batch_size,
                "shuffle": shuffle,
                "steps_per_epoch": steps_per_epoch,
                "validation_split": validation_split,
                "validation_data": validation_data,
                "validation_batch_size": validation_batch_size,
                "validation_steps": validation_steps,
            },
            spec_changes={
                "initial_epoch": initial_epoch,
                "validation_freq": validation_freq
                if isinstance(validation_freq, int)
                else tuple(validation_freq),
                "verbose": 1 if verbose == "auto" else int(verbose),
            },
            callbacks=list(callbacks or []),
            options=options,
            steps=(step, test_step),
        )
    finally:
        if opened is not None:
            configure_logging(None, quiet=True)  # closes train.log
            opened.lock.release()


def _fit(
    model: keras.Model,
    config: TrainConfig,
    *,
    compiled: bool,
    backend: ModuleType,
    out: Path | None,
    opened: LibraryRun | None,
    data_arguments: dict[str, Any],
    spec_changes: dict[str, Any],
    callbacks: list[keras.callbacks.Callback],
    options: dict[str, Any],
    steps: tuple[StepFn | None, StepFn | None],
) -> keras.callbacks.History:
    """:func:`fit` once its arguments are checked (and ``out``, if any, is locked)."""
    resume_from = opened.resume_from if opened is not None else None
    if opened is not None:
        config = replace(config, seed=opened.seed(config.seed))
    as_run = RunConfig(train=config)  # the run's own helpers, so both mean the same thing
    seed_everything(as_run)
    inputs = prepare_inputs(**data_arguments, seed=config.seed, tensorflow=True)
    data = train_data_from(inputs, data_arguments["validation_steps"])
    spec = dataclasses.replace(
        _spec(model, config, compiled, backend, options, *steps), **spec_changes
    )
    life = RunLife(
        out,
        as_run,
        quiet=True,  # the progress is Keras's (verbose); the epoch lines go to train.log
        resume_from=resume_from,
        resume_hint=f"{script_command()} (trainways.fit resumes {out})" if out else None,
    )
    if out is not None:
        settings = {
            "method": config.method,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "seed": config.seed,
            "inputs": inputs.kind,
            "backend": keras.backend.backend(),
            "script": script_name(),
        }
        rundir.write_json(out / rundir.CONFIG, {"fit": settings})
    if resume_from is not None:  # the checkpoint says where the run is
        spec = dataclasses.replace(spec, initial_epoch=life.first_epoch)
    life.start(lambda: _tracker(config, out), log=out is not None)
    if opened is not None:
        opened.say_how_inputs_resume(out, inputs, quiet=True)  # train.log and stderr
    schedule = [*schedule_callbacks(as_run), *callbacks]
    # Without a run directory the library call leaves signals, NaN stops and epoch lines to its
    # user's callbacks; a run directory has them all.
    all_callbacks = life.callbacks(schedule, best_monitor=None, guards=out is not None)
    history: keras.callbacks.History | None = None

    def train_model() -> None:
        nonlocal history
        history = get_trainer(config.method, backend)(model, data, spec, all_callbacks)
        life.complete(model)

    code = life.run(train_model)
    if code != EXIT_OK:
        raise SystemExit(code)  # recorded in out, with how to resume: as trainways train ends
    assert history is not None
    return history


def _refuse_compile_conflicts(options: dict[str, Any], compiled: bool) -> None:
    given = [name for name in COMPILE_OPTIONS if name in options]
    if compiled and given:
        name = given[0]
        raise ConfigError(
            f"{name}={options[name]!r} conflicts with the model's compile(), which wins: give "
            f"it to model.compile() (or pass an uncompiled model) instead",
            keys=(name,),
        )


def _spec(
    model: keras.Model,
    config: TrainConfig,
    compiled: bool,
    backend: ModuleType,
    options: dict[str, Any],
    step: StepFn | None,
    test_step: StepFn | None,
) -> TrainSpec:
    """What to train: the model's own compile, or the defaults for a model nobody compiled."""
    if compiled:
        return make_spec(
            TrainConfig(
                **{
                    **asdict(config),
                    "jit_compile": bool(model.jit_compile),
                    "steps_per_execution": model.steps_per_execution,
                }
            ),
            loss=model.loss,
            optimizer=model.optimizer,
            metrics=lambda: compiled_metrics(model),
            train_step=step,
            test_step=test_step,
        )
    if config.xla_optimizer or config.dense_gradients:
        optimizer = build_optimizer_for(config, backend)
    else:
        optimizer = keras.optimizers.Adam(
            learning_rate=config.learning_rate if "learning_rate" in options else 0.001,
            weight_decay=config.weight_decay,
        )
    return make_spec(
        config,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        optimizer=optimizer,
        metrics=list,
        train_step=step,
        test_step=test_step,
    )


def _tracker(config: TrainConfig, out: Path | None) -> keras.callbacks.Callback | None:
    """The MLflow callback ``config.tracking`` asks for, its params the options."""
    if config.tracking is None:
        return None
    from trainways.callbacks import MlflowTracking
    from trainways.tracking import run_params

    options = {key: value for key, value in asdict(config).items() if key != "tracking"}
    params = run_params(
        {"train": options}, backend=keras.backend.backend(), method=config.method, seed=config.seed
    )
    return MlflowTracking.for_library(config.tracking, params=params, run_dir=out)


def _refuse_run_options(config: TrainConfig) -> None:
    if config.precision != "float32":
        raise ConfigError(
            "precision applies to models trainways builds: build yours under "
            f"keras.config.set_dtype_policy({config.precision!r}) instead",
            keys=("precision",),
        )
    if config.tensorboard:
        raise ConfigError(
            "tensorboard writes into a trainways run directory: pass "
            "keras.callbacks.TensorBoard(log_dir=...) in callbacks instead",
            keys=("tensorboard",),
        )
    if config.loss != "crossentropy" or config.label_smoothing:
        raise ConfigError(
            "loss and label_smoothing belong to compile(): compile the model with "
            "loss=keras.losses.SparseCategoricalCrossentropy(...) or any loss you choose",
            keys=("loss",),
        )
