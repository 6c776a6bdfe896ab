"""What one configuration trains: the model, its data pipeline and its :class:`TrainSpec`.

Every path to training goes through here, so that a setting means the same thing wherever it is
given: :func:`make_spec` is the one translation from a :class:`~trainways.config.TrainConfig` to
a :class:`~trainways.trainers.TrainSpec` (the CLI's runs, ``trainways.train`` and ``agree`` use
it), :func:`schedule_callbacks` the one set of callbacks that change the training itself, and
:func:`seed_everything` the one seeding.

A run's data is Reuters or the user's (``--data FILE.py:FUNCTION``, :mod:`trainways.user_data`):
:func:`load_run_data` loads either, and :func:`build_model_for` and :func:`build_training` are
where the two part ways; :func:`train_data_from` is the one translation from prepared
:class:`~trainways.data.Inputs` to the trainers' :class:`~trainways.trainers.TrainData` (used
by user data and ``trainways.fit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import keras

from trainways import callbacks as tw_callbacks
from trainways.config import ConfigError, DataConfig, RunConfig, TrainConfig
from trainways.steps import load_step
from trainways.trainers import TrainData, TrainSpec
from trainways.user_data import UserData, load_user_data

#: Training options that ``compile()`` owns: a model its builder compiled keeps its own.
COMPILE_OPTIONS = (
    "learning_rate",
    "weight_decay",
    "loss",
    "label_smoothing",
    "xla_optimizer",
    "dense_gradients",
    "jit_compile",
    "steps_per_execution",
)


@dataclass(frozen=True)
class Training:
    """Everything one method needs to train, built from a configuration."""

    model: keras.Model
    data: TrainData
    spec: TrainSpec


def _running(backend: ModuleType | None) -> ModuleType:
    """``backend``, or the module of the backend this process runs on."""
    if backend is not None:
        return backend
    from trainways.backends import current

    return current()


def seed_everything(config: RunConfig, backend: ModuleType | None = None) -> None:
    """Seed Python, NumPy and the backend (if a seed is set); with ``deterministic``, also fix
    the kernels of ``backend`` (default: the running backend's module)."""
    if config.train.seed is not None:
        keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        _running(backend).enable_determinism()


def make_spec(
    train: TrainConfig,
    *,
    loss: keras.losses.Loss,
    optimizer: keras.optimizers.Optimizer,
    metrics: Callable[[], list[keras.metrics.Metric]],
    first_epoch: int = 0,
    train_step: Callable[..., Any] | None = None,
    test_step: Callable[..., Any] | None = None,
) -> TrainSpec:
    """The :class:`TrainSpec` of ``train``, with the objects a caller built (from the
    configuration, or a library user's own)."""
    return TrainSpec(
        epochs=train.epochs,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        jit_compile=train.jit_compile,
        initial_epoch=first_epoch,
        steps_per_execution=train.steps_per_execution,
        train_step=train_step,
        test_step=test_step,
    )


def load_run_data(config: DataConfig) -> Any:
    """The data a configuration trains on: the Reuters data
    (:func:`trainways.data.load_reuters`), or what the user's data function returned
    (:class:`~trainways.user_data.UserData`, ``--data FILE.py:FUNCTION``).

    Raises:
        ConfigError, DataError: The data cannot be loaded (one line).
    """
    if config.is_user_data:
        return load_user_data(config.source)
    from trainways.data import load_reuters

    return load_reuters(config.source, num_words=config.num_words, skip_top=config.skip_top)


def build_model_for(config: RunConfig, data: Any) -> keras.Model:
    """The model ``config`` asks for, shaped for the Reuters ``data``, or the user's builder's
    model for the user's data (which it may ask only for ``embedding_dim`` and ``dropout``).
    Call :func:`seed_everything` first: its initial weights come from the seed."""
    from trainways.model import build_model

    if isinstance(data, UserData):
        return build_model(config.model, precision=config.train.precision)
    return build_model(
        config.model,
        vocab_size=data.vocab_size,
        num_classes=data.num_classes,
        max_len=config.data.max_len,
        precision=config.train.precision,
    )


def build_optimizer_for(
    train: TrainConfig, backend: ModuleType | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer ``train`` asks for: Nadam at its learning rate, with its weight decay,
    the ``backend``'s compiled update (``xla_optimizer``) or dense embedding gradients
    (``dense_gradients``); ``backend`` defaults to the running backend's module."""
    from trainways.model import build_optimizer

    return build_optimizer(
        train.learning_rate,
        xla=train.xla_optimizer,
        dense=train.dense_gradients,
        weight_decay=train.weight_decay,
        backend=_running(backend),
    )


def build_training(
    config: RunConfig,
    reuters: Any,
    *,
    first_epoch: int = 0,
    backend: ModuleType | None = None,
) -> Training:
    """Model, data pipeline and spec for ``config``, identical for every method.

    Call :func:`seed_everything` first: the model's initial weights come from the seed.

    Args:
        config: The run's configuration (``train.seed`` set).
        reuters: The loaded data (:func:`load_run_data`: Reuters, or the user's).
        first_epoch: Epoch to start at (a resumed run's next epoch).
        backend: The backend's module (default: the running backend's): its optimizers and
            the arguments a user's step takes.

    Raises:
        ConfigError: A model its builder compiled, and a training option its ``compile()``
            owns set too.
    """
    backend = _running(backend)
    if isinstance(reuters, UserData):
        return _user_training(config, reuters, first_epoch=first_epoch, backend=backend)
    from trainways.data import EpochClock, NumpyBatches, make_dataset, model_inputs, steps_per_epoch
    from trainways.model import adapt_to_training_data

    model = build_model_for(config, reuters)
    inputs = model_inputs(
        reuters, max_len=config.data.max_len, validation_split=config.data.validation_split
    )
    # Before the weights a resumed run restores, so those (IDF included) win.
    adapt_to_training_data(model, inputs.x_train)
    train = config.train
    # One pass per epoch, the epoch the trainer sets on the clock: an execution of several
    # steps then ends where the epoch does, whatever their number.
    clock = EpochClock(first_epoch)
    passes = {"batch_size": train.batch_size, "shuffle": True, "seed": train.seed, "clock": clock}
    steps = steps_per_epoch(len(inputs.x_train), train.batch_size)
    training, validation = (inputs.x_train, inputs.y_train), (inputs.x_val, inputs.y_val)
    unshuffled = {"batch_size": train.batch_size, "shuffle": False}
    data = TrainData(
        make_dataset(*training, **passes),
        make_dataset(*validation, **unshuffled),
        steps,
        numpy=TrainData(
            NumpyBatches(*training, **passes),
            NumpyBatches(*validation, **unshuffled),
            steps,
            clock=clock,
        ),
        clock=clock,
    )
    return Training(model, data, _spec_for(model, config, first_epoch, backend))


def _user_training(
    config: RunConfig, data: UserData, *, first_epoch: int, backend: ModuleType
) -> Training:
    """:func:`build_training` for the user's data and model: the data prepared as
    ``trainways.fit`` prepares it."""
    model = build_model_for(config, data)
    train = config.train
    inputs = data.inputs(batch_size=train.batch_size, seed=train.seed, first_epoch=first_epoch)
    return Training(model, train_data_from(inputs), _spec_for(model, config, first_epoch, backend))


def _spec_for(
    model: keras.Model, config: RunConfig, first_epoch: int, backend: ModuleType
) -> TrainSpec:
    """The spec of ``model``: its own ``compile()`` when its builder compiled it (the options
    ``compile()`` owns are then refused, never silently dropped), else the run's options, which
    compile it as a preset is compiled."""
    from trainways.model import build_loss, build_metrics

    train = config.train
    steps = {
        "first_epoch": first_epoch,
        # Loaded here, inside the strategy's scope: what the file creates (a second optimizer)
        # is created under the strategy the run trains with.
        "train_step": _load_step(train.step, "step", backend),
        "test_step": _load_step(train.test_step, "test_step", backend),
    }
    if not getattr(model, "compiled", False):
        return make_spec(
            train,
            loss=build_loss(train.loss, train.label_smoothing),
            optimizer=build_optimizer_for(train, backend),
            metrics=build_metrics,
            **steps,
        )
    refuse_compile_options(train, config.model.preset)
    own = TrainConfig(
        **{
            **asdict(train),
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": model.steps_per_execution,
        }
    )
    return make_spec(
        own,
        loss=model.loss,
        optimizer=model.optimizer,
        metrics=lambda: compiled_metrics(model),
        **steps,
    )


def refuse_compile_options(train: TrainConfig, preset: str) -> None:
    """Refuse, in one line, an option that ``compile()`` owns set beside a model its builder
    compiled (the builder's ``compile()`` wins; the option would be dropped silently)."""
    defaults = TrainConfig()
    for key in COMPILE_OPTIONS:
        if getattr(train, key) != getattr(defaults, key):
            raise ConfigError(
                f"{key} {getattr(train, key)!r} conflicts with the compile() of model "
                f"{preset!r}, which wins: give it to compile() there, or return the model "
                "uncompiled",
                keys=(key,),
            )


def compiled_metrics(model: keras.Model) -> list[keras.metrics.Metric]:
    """Fresh copies of the metrics a model was compiled with, for a user's step's ``y_pred``
    (the compiled ones stay the model's).

    Raises:
        ConfigError: The model's metrics are per output: a step's ``y_pred`` updates one list.
    """
    metrics = (model.get_compile_config() or {}).get("metrics") or []
    if not isinstance(metrics, list):
        raise ConfigError(
            "a step function's y_pred updates a flat list of metrics: compile the model with "
            "metrics=[...] (not per output) to use a step",
            keys=("step",),
        )
    fresh = []
    for metric in metrics:
        resolved = keras.metrics.get(metric)
        if not isinstance(resolved, keras.metrics.Metric):
            resolved = keras.metrics.MeanMetricWrapper(resolved, name=str(metric))
        fresh.append(resolved)
    return fresh


def train_data_from(inputs: Any, validation_steps: int | None = None) -> TrainData:
    """The trainers' :class:`TrainData` of what :func:`trainways.data.prepare_inputs` made."""
    numpy = None
    if inputs.numpy is not None:
        numpy = TrainData(
            inputs.numpy.train,
            inputs.numpy.validation,
            inputs.steps_per_epoch,
            clock=inputs.clock,
            validation_steps=validation_steps,
        )
    return TrainData(
        inputs.train,
        inputs.validation,
        inputs.steps_per_epoch,
        numpy=numpy,
        clock=inputs.clock,
        validation_steps=validation_steps,
        fit_train=inputs.fit_train,
        fit_validation=inputs.fit_validation,
    )


def _load_step(ref: str | None, role: str, backend: ModuleType) -> Callable[..., Any] | None:
    return load_step(ref, role=role, arguments=backend.STEP_ARGUMENTS) if ref else None


def schedule_callbacks(config: RunConfig) -> list[keras.callbacks.Callback]:
    """Callbacks that change the training itself (the same in every method, in ``agree`` and in
    ``trainways.train``)."""
    train = config.train
    callbacks: list[keras.callbacks.Callback] = []
    if train.lr_halve_at:
        callbacks.append(tw_callbacks.HalveLearningRate(train.lr_halve_at))
    if train.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=train.stop_on,
                # Explicit: Keras infers it from the model's compiled metrics, which a
                # hand-driven method's model need not have.
                mode="min" if train.stop_on == "val_loss" else "max",
                patience=train.patience,
            )
        )
    return callbacks
