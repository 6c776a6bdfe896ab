"""The library entry point: train any Keras model with any of the three methods."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from types import ModuleType
from typing import Any

import keras
import numpy as np

from trainways.backends import current
from trainways.config import TRACKING_AUTO, ConfigError, RunConfig, TrainConfig, replace
from trainways.lifecycle import RunLife
from trainways.steps import StepFn, check_step
from trainways.trainers import TrainData, get_trainer
from trainways.training import (
    build_optimizer_for,
    make_spec,
    schedule_callbacks,
    seed_everything,
)


def _fresh_metric(metric: str | keras.metrics.Metric) -> keras.metrics.Metric:
    # Each consumer gets its own objects: a metric compiled into a model must not also be
    # updated by the GradientTape loop.
    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    resolved = keras.metrics.get(metric)
    if not isinstance(resolved, keras.metrics.Metric):
        return keras.metrics.MeanMetricWrapper(resolved, name=str(metric))
    return resolved


class _FunctionLoss(keras.losses.Loss):
    """A per-sample loss function, averaged over the batch the way ``compile()`` averages it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self._fn = fn

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self._fn(y_true, y_pred)


def _as_loss(loss: str | Callable[..., Any] | keras.losses.Loss) -> keras.losses.Loss:
    resolved = keras.losses.get(loss) if isinstance(loss, str) else loss
    return resolved if isinstance(resolved, keras.losses.Loss) else _FunctionLoss(resolved)


def _as_dataset(
    x: Any, y: Any, *, batch_size: int, shuffle: bool, seed: int | None, role: str
) -> tuple[Any, Any]:
    """A dataset and, for NumPy training data, its epoch clock (one pass per epoch)."""
    import tensorflow as tf

    from trainways.data import EpochClock, make_dataset

    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ConfigError(f"{role}: pass y=None with a tf.data.Dataset (it yields (x, y))")
        return x, None
    if y is None:
        raise ConfigError(f"{role}: NumPy input needs both x and y")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ConfigError(f"{role}: x has {len(x)} samples but y has {len(y)}; they must match")
    clock = EpochClock() if shuffle else None
    dataset = make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, clock=clock)
    return dataset, clock


def train(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    validation_data: Any = None,
    loss: str | Callable[..., Any] | keras.losses.Loss = "sparse_categorical_crossentropy",
    optimizer: str | keras.optimizers.Optimizer = "adam",
    metrics: Sequence[str | keras.metrics.Metric] = (),
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
    shuffle: bool = True,
    step: StepFn | None = None,
    test_step: StepFn | None = None,
    config: TrainConfig | None = None,
    backend: str | None = None,
    tracking: str | bool | None = None,
    **options: Any,
) -> keras.callbacks.History:
    """Train ``model`` with ``Model.fit``, a ``train_on_batch`` loop or a GradientTape loop.

    Whatever the method, the same loss, optimizer and metrics are used, the callbacks are driven
    in ``fit``'s order and the History has the same keys (``loss``, each metric's name, and
    ``val_`` versions when there is validation data).

    The training options are those of ``trainways train``, by their
    :class:`~trainways.config.TrainConfig` names: pass a ``config``, or the options as keywords
    (``method="loop", epochs=3, steps_per_execution=4, xla_optimizer=True, seed=1, ...``), or
    both (keywords override). Only the defaults differ: the library's optimizer is ``"adam"``
    unless given, and ``epochs`` is 1.

    Args:
        model: Any Keras model; it is compiled with ``loss``, ``optimizer`` and ``metrics``.
        x: A ``tf.data.Dataset`` of ``(x, y)`` batches, or a NumPy array of inputs.
        y: Targets when ``x`` is an array; ``None`` with a dataset.
        validation_data: A dataset or an ``(x_val, y_val)`` tuple, never shuffled; or ``None``.
        loss: A Keras loss object, name, or per-sample function.
        optimizer: A Keras optimizer object or name. ``learning_rate`` (if given) sets a named
            optimizer's rate; ``xla_optimizer=True`` needs ``"nadam"``.
        metrics: Metric objects or names; each method gets its own fresh copies.
        callbacks: Keras callbacks (``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``...);
            ``lr_halve_at`` and ``patience`` add trainways' own, as on the command line.
        shuffle: Reshuffle array inputs every epoch (the order is a pure function of ``seed``
            and the epoch).
        step: Your training step for ``method="loop"``: ``step(model, x, y)`` returning a dict
            of logs with ``"loss"`` (and ``"y_pred"`` to update the metrics); see
            :mod:`trainways.steps`. trainways compiles it and drives everything around it.
        test_step: Your validation step, same contract (default: the built-in one).
        config: Training options as a :class:`~trainways.config.TrainConfig`.
        backend: The Keras backend to train on (``tensorflow``, ``jax``, ``torch``). Keras
            chooses its backend once, when it is imported: set ``KERAS_BACKEND`` before
            importing Keras (and trainways); this checks that the process runs on it.
        tracking: Log the training to MLflow at this tracking URI (``True``:
            ``$MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db``): the options as params,
            each epoch's logs, ``learning_rate`` and ``epoch_seconds`` as metrics; the MLflow
            run ends ``FINISHED``, or ``KILLED`` / ``FAILED`` if training stops with an error.
            An unreachable store is one warning; training goes on (:mod:`trainways.tracking`).
        **options: Training options by name, over ``config``. ``seed`` also seeds Keras's
            random generators; ``deterministic`` turns on deterministic kernels. ``precision``
            and ``tensorboard`` belong to models and run directories that trainways builds:
            set a dtype policy or pass ``keras.callbacks.TensorBoard`` instead.

    Returns:
        The ``keras.callbacks.History`` of per-epoch logs.

    Raises:
        ConfigError: An argument is invalid (one line saying which and why).
    """
    if backend is not None:
        from trainways.backends import select

        select(backend)  # a process runs Keras on one backend: refused if it is another
    if tracking not in (None, False):
        options["tracking"] = TRACKING_AUTO if tracking is True else tracking
    config = replace(config or TrainConfig(epochs=1), **options)
    _refuse_run_options(config)
    # The one look-up of the backend's module, passed down to the steps' check and the trainer.
    backend_module = current()
    for role, fn in (("step", step), ("test_step", test_step)):
        if fn is not None:
            check_step(fn, role=role, arguments=backend_module.STEP_ARGUMENTS)
    as_run = RunConfig(train=config)  # the run's own helpers, so both mean the same thing
    seed_everything(as_run)
    batch_size = config.batch_size
    train_ds, clock = _as_dataset(
        x, y, batch_size=batch_size, shuffle=shuffle, seed=config.seed, role="x"
    )
    val_ds = None
    if validation_data is not None:
        val_x, val_y = (
            validation_data if isinstance(validation_data, tuple) else (validation_data, None)
        )
        val_ds, _ = _as_dataset(
            val_x, val_y, batch_size=batch_size, shuffle=False, seed=None, role="validation_data"
        )
    metric_list = list(metrics)
    spec = make_spec(
        config,
        loss=_as_loss(loss),
        optimizer=_as_optimizer(optimizer, config, "learning_rate" in options, backend_module),
        metrics=lambda: [_fresh_metric(m) for m in metric_list],
        train_step=step,
        test_step=test_step,
    )
    life = RunLife(None, as_run, quiet=True)
    life.start(lambda: _tracker(config), log=False)  # a library leaves logging to its user
    # The library call leaves signals, NaN stops and epoch lines to its user's callbacks.
    all_callbacks = life.callbacks([*schedule_callbacks(as_run), *(callbacks or [])], guards=False)
    history: keras.callbacks.History | None = None

    def train_model() -> None:
        nonlocal history
        history = get_trainer(config.method, backend_module)(
            model, TrainData(train_ds, val_ds, clock=clock), spec, all_callbacks
        )

    life.run(train_model)
    assert history is not None
    return history


def _tracker(config: TrainConfig) -> keras.callbacks.Callback | None:
    """The MLflow callback ``config.tracking`` asks for, its params the options."""
    if config.tracking is None:
        return None
    from trainways.callbacks import MlflowTracking
    from trainways.tracking import run_params

    options = {key: value for key, value in asdict(config).items() if key != "tracking"}
    params = run_params(
        {"train": options}, backend=keras.backend.backend(), method=config.method, seed=config.seed
    )
    return MlflowTracking.for_library(config.tracking, params=params)


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
    if config.loss != "crossentropy":
        squared = config.loss == "squared_hinge"
        raise ConfigError(
            f"loss {config.loss!r} is trainways' name for a loss object: pass "
            f"loss=trainways.model.MarginLoss(squared={squared}) instead",
            keys=("loss",),
        )
    if config.label_smoothing:
        raise ConfigError(
            f"label_smoothing {config.label_smoothing!r} belongs to the loss: pass "
            f"loss=trainways.model.SmoothedSparseCrossentropy({config.label_smoothing!r}) "
            "(integer labels) or keras.losses.CategoricalCrossentropy(label_smoothing=...) "
            "(one-hot labels) instead",
            keys=("label_smoothing",),
        )


def _as_optimizer(
    optimizer: str | keras.optimizers.Optimizer,
    config: TrainConfig,
    rate_given: bool,
    backend: ModuleType,
) -> keras.optimizers.Optimizer:
    named = isinstance(optimizer, str)
    if rate_given and not named:
        raise ConfigError(
            "learning_rate sets a named optimizer's rate: give it to your optimizer object instead",
            keys=("learning_rate",),
        )
    if config.xla_optimizer or config.dense_gradients:
        key = "xla_optimizer" if config.xla_optimizer else "dense_gradients"
        if not (named and optimizer.lower() == "nadam"):
            raise ConfigError(
                f"{key} chooses a Nadam: pass optimizer='nadam', got {optimizer!r}",
                keys=(key,),
            )
        return build_optimizer_for(config, backend)
    if config.weight_decay is not None and not named:
        raise ConfigError(
            "weight_decay sets a named optimizer's decay: give weight_decay= to your optimizer "
            "object instead",
            keys=("weight_decay",),
        )
    resolved = keras.optimizers.get(optimizer)
    if rate_given:
        resolved.learning_rate = config.learning_rate
    if config.weight_decay is not None:
        resolved.weight_decay = config.weight_decay
    return resolved
