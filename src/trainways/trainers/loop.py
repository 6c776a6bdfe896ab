"""Method 3: a custom ``tf.GradientTape`` loop with ``tf.function`` train and validation steps.

The step computes what ``Model.fit``'s ``train_step`` computes: forward pass with
``training=True``, the batch-mean loss plus any layer losses, gradients of that sum, one optimizer
update, and the loss tracked with the batch size as weight. Only the steps run as graphs; the epoch
and the run are plain Python in the shared driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import tensorflow as tf

from trainways.trainers.base import TrainData, TrainSpec, compile_model, drive


class LoopStepper:
    """Steps with a hand-written GradientTape update and Keras metric objects."""

    def __init__(self, model: keras.Model, spec: TrainSpec, element_spec: Any) -> None:
        self._model = model
        self._loss_fn = spec.loss
        self._optimizer = model.optimizer
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._metrics = [self._loss_tracker, *spec.metrics()]
        self._logs: dict[str, tf.Tensor] = {}
        # A fixed signature with an unknown batch dimension: the last, smaller batch of an epoch
        # reuses the same graph instead of tracing a second one.
        signature = list(element_spec)
        self._train_step = tf.function(
            self._train, input_signature=signature, jit_compile=spec.jit_compile
        )
        self._test_step = tf.function(
            self._test, input_signature=signature, jit_compile=spec.jit_compile
        )

    def _total_loss(self, y: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        loss = self._loss_fn(y, y_pred)
        if self._model.losses:
            loss = loss + tf.add_n(self._model.losses)
        return loss

    def _update_metrics(
        self, loss: tf.Tensor, y: tf.Tensor, y_pred: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(y_pred)[0])
        for metric in self._metrics[1:]:
            metric.update_state(y, y_pred)
        # Results computed in the graph, as fit's train_step returns them: reading them later
        # costs one copy per value instead of several eager ops per metric.
        return {metric.name: metric.result() for metric in self._metrics}

    def _train(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            y_pred = self._model(x, training=True)
            loss = self._total_loss(y, y_pred)
        variables = self._model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self._optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(loss, y, y_pred)

    def _test(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        y_pred = self._model(x, training=False)
        return self._update_metrics(self._total_loss(y, y_pred), y, y_pred)

    def reset(self) -> None:
        for metric in self._metrics:
            metric.reset_state()
        self._logs = {}

    def train_batch(self, x: Any, y: Any) -> None:
        self._logs = self._train_step(x, y)

    def test_batch(self, x: Any, y: Any) -> None:
        self._logs = self._test_step(x, y)

    def results(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._logs.items()}


def _build_compiled_metrics(model: keras.Model, element_spec: Any) -> None:
    """Build the model's compiled metrics, as ``fit`` and ``train_on_batch`` do on first use.

    The loop updates its own metric objects, but callbacks in ``mode="auto"``
    (``EarlyStopping``, ``ModelCheckpoint``) look up whether a metric should rise or fall in
    ``model.metrics``, which lists compiled metrics only once they are built. One update on a
    dummy batch, then a reset, builds them without touching weights or the data pipeline.
    """
    x_spec, y_spec = element_spec
    x = tf.zeros([1, *x_spec.shape[1:]], dtype=x_spec.dtype)
    y = tf.zeros([1, *y_spec.shape[1:]], dtype=y_spec.dtype)
    model.compute_metrics(x, y, model(x, training=False))
    model.reset_metrics()


def train(
    model: keras.Model,
    data: TrainData,
    spec: TrainSpec,
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
) -> keras.callbacks.History:
    """Train with a GradientTape loop.

    Args:
        model: A Keras model; it is compiled from ``spec`` so that it saves and evaluates like the
            others, and the loop uses that same optimizer.
        data: Batched training and optional validation datasets.
        spec: Epochs, loss, optimizer, metrics and XLA setting.
        callbacks: Keras callbacks, driven in ``fit``'s order.

    Returns:
        The History of per-epoch logs.
    """
    compile_model(model, spec)
    _build_compiled_metrics(model, data.train.element_spec)
    stepper = LoopStepper(model, spec, data.train.element_spec)
    return drive(model, stepper, data, spec, callbacks)
