"""The library entry point: train any Keras model with any of the three methods."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np

from trainways.config import METHODS, ConfigError
from trainways.trainers import TrainData, TrainSpec, get_trainer


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
) -> tuple[Any, int | None]:
    """A dataset and its steps per epoch (``None``: one pass is one epoch)."""
    import tensorflow as tf

    from trainways.data import make_dataset, steps_per_epoch

    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ConfigError(f"{role}: pass y=None with a tf.data.Dataset (it yields (x, y))")
        return x, None
    if y is None:
        raise ConfigError(f"{role}: NumPy input needs both x and y")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ConfigError(f"{role}: x has {len(x)} samples but y has {len(y)}; they must match")
    dataset = make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
    return dataset, (steps_per_epoch(len(x), batch_size) if shuffle else None)


def train(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    method: str = "fit",
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: Any = None,
    loss: str | Callable[..., Any] | keras.losses.Loss = "sparse_categorical_crossentropy",
    optimizer: str | keras.optimizers.Optimizer = "adam",
    metrics: Sequence[str | keras.metrics.Metric] = (),
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    jit_compile: bool = False,
) -> keras.callbacks.History:
    """Train ``model`` with ``Model.fit``, a ``train_on_batch`` loop or a GradientTape loop.

    Whatever the method, the same loss, optimizer and metrics are used, the callbacks are driven
    in ``fit``'s order and the History has the same keys (``loss``, each metric's name, and
    ``val_`` versions when there is validation data).

    Args:
        model: Any Keras model; it is compiled with ``loss``, ``optimizer`` and ``metrics``.
        x: A ``tf.data.Dataset`` of ``(x, y)`` batches, or a NumPy array of inputs.
        y: Targets when ``x`` is an array; ``None`` with a dataset.
        method: ``"fit"``, ``"batch"`` or ``"loop"``.
        epochs: Passes over the training data.
        batch_size: Batch size when ``x`` is an array (a dataset is used as batched).
        validation_data: A dataset or an ``(x_val, y_val)`` tuple, never shuffled; or ``None``.
        loss: A Keras loss object, name, or per-sample function.
        optimizer: A Keras optimizer object or name.
        metrics: Metric objects or names; each method gets its own fresh copies.
        callbacks: Keras callbacks (``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``...).
        shuffle: Reshuffle array inputs every epoch.
        seed: Seed for that shuffle.
        jit_compile: Compile the steps with XLA, for every method alike.

    Returns:
        The ``keras.callbacks.History`` of per-epoch logs.

    Raises:
        ConfigError: An argument is invalid (one line saying which and why).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    train_ds, steps = _as_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, role="x")
    val_ds = None
    if validation_data is not None:
        val_x, val_y = (
            validation_data if isinstance(validation_data, tuple) else (validation_data, None)
        )
        val_ds, _ = _as_dataset(
            val_x, val_y, batch_size=batch_size, shuffle=False, seed=None, role="validation_data"
        )
    metric_list = list(metrics)
    spec = TrainSpec(
        epochs=epochs,
        loss=_as_loss(loss),
        optimizer=keras.optimizers.get(optimizer),
        metrics=lambda: [_fresh_metric(m) for m in metric_list],
        jit_compile=jit_compile,
    )
    return get_trainer(method)(model, TrainData(train_ds, val_ds, steps), spec, callbacks)
