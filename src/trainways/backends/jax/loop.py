"""The ``loop`` method's step on JAX: a pure function of the state, compiled with ``jax.jit``.

Keras's guide for JAX: ``model.stateless_call`` for the forward pass, ``jax.value_and_grad`` for
the gradients, ``optimizer.stateless_apply`` for the update, ``metric.stateless_update_state`` for
the metrics. The state (trainable, non-trainable, optimizer and metric variables) is read from the
Keras variables before each execution and written back after it, so that callbacks see the
weights, a learning-rate schedule's change is picked up, and checkpoints save what was trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import keras
import numpy as np

from trainways import steps as user_steps
from trainways.config import ConfigError
from trainways.trainers.base import TrainSpec


class LoopStepper:
    """Steps with a hand-written ``jax.value_and_grad`` update and Keras metric objects.

    Args:
        model: The compiled model; its optimizer is the one the step applies.
        spec: The loss, metrics and XLA setting.
        element_spec: Unused on JAX (``jax.jit`` traces per batch shape).
        placement: Where the steps run (one device on JAX, for now).
    """

    def __init__(self, model: keras.Model, spec: TrainSpec, element_spec: Any, placement: Any):
        if spec.train_step is not None or spec.test_step is not None:
            raise ConfigError(
                "step functions run on the TensorFlow backend only, for now: drop step / "
                "test_step, or use backend tensorflow",
                keys=("step", "test_step", "backend"),
            )
        if user_steps.has_own_step(model):
            raise ConfigError(
                "a model's own train_step runs in the loop method on the TensorFlow backend "
                "only, for now: use method fit or batch, or backend tensorflow",
                keys=("method", "backend"),
            )
        self._model = model
        self._placement = placement
        self._optimizer = model.optimizer
        self._loss_fn = spec.loss
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._metrics = [self._loss_tracker, *spec.metrics()]
        self._logs: dict[str, float] = {}
        self._train = jax.jit(self._train_step)
        self._test = jax.jit(self._test_step)

    # ----------------------------------------------------------------- pure steps

    def _loss(self, trainable, non_trainable, x, y, training):
        y_pred, non_trainable, losses = self._model.stateless_call(
            trainable, non_trainable, x, training=training, return_losses=True
        )
        loss = self._loss_fn(y, y_pred)
        if losses:
            loss = loss + sum(losses)
        return loss, (y_pred, non_trainable)

    def _update_metrics(self, metric_vars, loss, y, y_pred):
        updated = []
        size = y_pred.shape[0]
        for metric, variables in zip(self._metrics, metric_vars, strict=True):
            if metric is self._loss_tracker:
                updated.append(metric.stateless_update_state(variables, loss, sample_weight=size))
            else:
                updated.append(metric.stateless_update_state(variables, y, y_pred))
        logs = {
            metric.name: metric.stateless_result(variables)
            for metric, variables in zip(self._metrics, updated, strict=True)
        }
        return updated, logs

    def _train_step(self, state, x, y):
        trainable, non_trainable, optimizer_vars, metric_vars = state
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        (loss, (y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable, x, y, True)
        trainable, optimizer_vars = self._optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        metric_vars, logs = self._update_metrics(metric_vars, loss, y, y_pred)
        return (trainable, non_trainable, optimizer_vars, metric_vars), logs

    def _test_step(self, state, x, y):
        trainable, non_trainable, metric_vars = state
        loss, (y_pred, _) = self._loss(trainable, non_trainable, x, y, False)
        metric_vars, logs = self._update_metrics(metric_vars, loss, y, y_pred)
        return metric_vars, logs

    # ----------------------------------------------------------------- state in and out

    def _metric_state(self):
        return [[v.value for v in metric.variables] for metric in self._metrics]

    def _set_metric_state(self, state):
        for metric, values in zip(self._metrics, state, strict=True):
            for variable, value in zip(metric.variables, values, strict=True):
                variable.assign(value)

    @staticmethod
    def _values(variables):
        return [v.value for v in variables]

    @staticmethod
    def _assign(variables, values):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    def _run(self, iterator: Iterator[tuple[Any, Any]], steps: int, train: bool) -> int:
        model, optimizer = self._model, self._optimizer
        if train:
            state = (
                self._values(model.trainable_variables),
                self._values(model.non_trainable_variables),
                self._values(optimizer.variables),
                self._metric_state(),
            )
        else:
            state = self._metric_state()
            weights = (
                self._values(model.trainable_variables),
                self._values(model.non_trainable_variables),
            )
        ran, logs = 0, None
        for x, y in iterator:
            x, y = self._placement.put(np.asarray(x), np.asarray(y))
            if train:
                state, logs = self._train(state, x, y)
            else:
                state, logs = self._test((*weights, state), x, y)
            ran += 1
            if ran == steps:
                break
        if ran:
            if train:
                trainable, non_trainable, optimizer_vars, metric_vars = state
                self._assign(model.trainable_variables, trainable)
                self._assign(model.non_trainable_variables, non_trainable)
                self._assign(optimizer.variables, optimizer_vars)
            else:
                metric_vars = state
            self._set_metric_state(metric_vars)
            self._logs = {name: float(value) for name, value in logs.items()}
        return ran

    # ----------------------------------------------------------------- the Stepper protocol

    def reset(self) -> None:
        for metric in self._metrics:
            metric.reset_state()
        self._logs = {}

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._run(iterator, steps, train=True)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._run(iterator, steps, train=False)

    def results(self) -> dict[str, float]:
        return dict(self._logs)
