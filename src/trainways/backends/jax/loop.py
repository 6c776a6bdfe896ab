"""The ``loop`` method's step on JAX: a pure function of the state, compiled with ``jax.jit``.

Keras's guide for JAX: ``model.stateless_call`` for the forward pass, ``jax.value_and_grad`` for
the gradients, ``optimizer.stateless_apply`` for the update, ``metric.stateless_update_state`` for
the metrics. The state (trainable, non-trainable, optimizer and metric variables) is read from the
Keras variables before each execution and written back after it, so that callbacks see the
weights, a learning-rate schedule's change is picked up, and checkpoints save what was trained.

The step is one of three (:mod:`trainways.steps`), each a pure function ``(state, x, y) ->
(state, logs)`` compiled once per batch shape:

- trainways' built-in step: the loss of ``model.compute_loss_and_updates`` (what ``fit``'s
  ``train_step`` differentiates, so that both compile to the same program), its gradients, one
  ``stateless_apply``;
- the model's own ``train_step(state, data)`` / ``test_step(state, data)``, Keras's stateless
  JAX contract, when the model's class overrides them;
- the user's step function ``step(model, state, x, y) -> (logs, state)``, ``state`` being the
  ``(trainable, non_trainable, optimizer_variables)`` arrays, and ``test_step(model, state, x,
  y) -> logs`` with the same ``state``. Its logs are checked when it is traced
  (``jax.eval_shape``, which runs nothing), before any step runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import keras

from trainways import steps as user_steps
from trainways.backends.common import PassStepper, batch_rows, trace_user_step
from trainways.config import ConfigError
from trainways.trainers.base import TrainSpec, example_batch

# A pass's pure step: (state, batch) -> (state, logs).
PureStep = Callable[[Any, Any], tuple[Any, dict[str, Any]]]


@dataclass(frozen=True)
class _Pass:
    """One kind of pass: its pure step, whether its state carries the optimizer's variables (a
    training pass's, and a user's test step's), and the metric objects whose variables end its
    state."""

    step: PureStep
    optimizer: bool
    metrics: list[keras.metrics.Metric]


class LoopStepper(PassStepper):
    """Steps with a hand-written ``jax.value_and_grad`` update and Keras metric objects.

    Args:
        model: The compiled model; its optimizer is the one the step applies.
        spec: The loss, metrics and XLA setting, and the user's steps if any.
        element_spec: The ``(x, y)`` spec of the training batches (a user's step is traced on
            it before any step runs).
        placement: Where the steps run.
    """

    def __init__(self, model: keras.Model, spec: TrainSpec, element_spec: Any, placement: Any):
        if user_steps.extra_optimizers(spec.train_step, spec.test_step):
            raise ConfigError(
                "a step's second optimizer (@keeps) is not supported on JAX yet: apply "
                "model.optimizer only, or use backend tensorflow or torch",
                keys=("step", "backend"),
            )
        self._model = model
        self._optimizer = model.optimizer
        self._spec = spec
        self._placement = placement
        self._example = example_batch(element_spec)
        if spec.train_step is not None:
            train = self._user_pass(spec.train_step, "step", train=True)
        elif user_steps.has_own_step(model):
            train = self._own_pass(model.train_step, "train_step", train=True)
        else:
            train = _Pass(self._train_step, True, list(model.metrics))
        self._passes: dict[str, _Pass] = {}
        self._compiled: dict[str, Any] = {}
        self._add("train", train)
        if spec.test_step is not None:  # the user's: checked now, before any step runs
            self._add("test", self._user_pass(spec.test_step, "test_step", train=False))
        self._logs: dict[str, float] = {}

    def _add(self, kind: str, pass_: _Pass) -> None:
        self._passes[kind] = pass_
        self._compiled[kind] = jax.jit(pass_.step, donate_argnums=0)

    def _make_test(self) -> _Pass:
        """The validation pass, made when the first validation runs: a run without validation
        data never traces a test step (a model whose Keras ``test_step`` cannot run, a GAN's,
        trains)."""
        model = self._model
        if user_steps.has_own_step(model):  # goes with its train_step, or with the user's step
            return self._own_pass(model.test_step, "test_step", train=False)
        return _Pass(self._test_step, False, list(model.metrics))

    # ----------------------------------------------------------------- the built-in step

    def _update_metrics(self, metric_vars, loss, x, y, y_pred, sample_weight):
        # The compiled metrics and the loss tracker, updated as fit's train_step updates them.
        model = self._model
        mapping = list(zip(model.metrics_variables, metric_vars, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            model._loss_tracker.update_state(loss, sample_weight=batch_rows(x))
            logs = model.compute_metrics(x, y, y_pred, sample_weight)
        updated = [scope.get_current_value(v) for v in model.metrics_variables]
        kept = zip(updated, metric_vars, strict=True)
        return [new if new is not None else old for new, old in kept], logs

    def _train_step(self, state, data):
        trainable, non_trainable, optimizer_vars, metric_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # Keras's own loss computation (compiled loss plus layer losses, scaled for a loss-scale
        # optimizer), as fit differentiates it.
        grad_fn = jax.value_and_grad(self._model.compute_loss_and_updates, has_aux=True)
        (_, (loss, y_pred, non_trainable, metric_vars)), grads = grad_fn(
            trainable,
            non_trainable,
            metric_vars,
            x,
            y,
            sample_weight,
            training=True,
            optimizer_variables=optimizer_vars,
        )
        trainable, optimizer_vars = self._optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        metric_vars, logs = self._update_metrics(metric_vars, loss, x, y, y_pred, sample_weight)
        return (trainable, non_trainable, optimizer_vars, metric_vars), logs

    def _test_step(self, state, data):
        trainable, non_trainable, metric_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _, (loss, y_pred, non_trainable, metric_vars) = self._model.compute_loss_and_updates(
            trainable, non_trainable, metric_vars, x, y, sample_weight, training=False
        )
        metric_vars, logs = self._update_metrics(metric_vars, loss, x, y, y_pred, sample_weight)
        return (trainable, non_trainable, metric_vars), logs

    # ----------------------------------------------------------------- a user's step function

    def _user_pass(self, fn: Callable[..., Any], role: str, *, train: bool) -> _Pass:
        """A pass running the user's step, its logs tracked as the contract says."""
        model = self._model
        weights = self._weights(optimizer=True)
        x, y, _ = keras.utils.unpack_x_y_sample_weight(self._example)
        traced = trace_user_step(
            fn, role, lambda: jax.eval_shape(lambda w, x, y: fn(model, w, x, y), weights, x, y)
        )
        if train:
            if not (isinstance(traced, tuple) and len(traced) == 2):
                raise ConfigError(
                    f"{role} {fn.__name__} returned {type(traced).__name__}: a JAX step returns "
                    "(logs, state), state being (trainable, non_trainable, optimizer_variables)",
                    keys=(role,),
                )
            traced = traced[0]
        logs = user_steps.check_logs(traced, role=role, source=fn)
        scalars = [keras.metrics.Mean(name=key) for key in logs if key != user_steps.PREDICTIONS]
        predicted = self._spec.metrics() if user_steps.PREDICTIONS in logs else []
        every = [*scalars, *predicted]

        def track(metric_vars, out, x, y):
            updated = []
            parts = _split(every, metric_vars)
            for metric, variables in zip(scalars, parts, strict=False):
                updated.append(
                    metric.stateless_update_state(
                        variables, out[metric.name], sample_weight=batch_rows(x)
                    )
                )
            for metric, variables in zip(predicted, parts[len(scalars) :], strict=True):
                updated.append(
                    metric.stateless_update_state(variables, y, out[user_steps.PREDICTIONS])
                )
            results = {
                metric.name: metric.stateless_result(variables)
                for metric, variables in zip(every, updated, strict=True)
            }
            return [v for variables in updated for v in variables], results

        def step(state, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            *weights, metric_vars = state
            if train:
                out, weights = fn(model, tuple(weights), x, y)
            else:
                out = fn(model, tuple(weights), x, y)
            metric_vars, results = track(metric_vars, out, x, y)
            return (*weights, metric_vars), results

        return _Pass(step, True, every)

    # ----------------------------------------------------------------- the model's own step

    def _own_pass(self, method: Callable[..., Any], role: str, *, train: bool) -> _Pass:
        """A pass running the model's own stateless ``train_step`` / ``test_step``."""
        model = self._model
        names = list(dict.fromkeys([*model.get_metrics_result(), *(m.name for m in model.metrics)]))
        state = (*self._weights(optimizer=train), [v.value for v in model.metrics_variables])
        logs, _ = jax.eval_shape(method, state, self._example)
        user_steps.check_own_step_logs(logs, names, role=role)

        def step(state, data):
            logs, state = method(state, data)
            return state, logs

        return _Pass(step, train, list(model.metrics))

    # ----------------------------------------------------------------- state in and out

    def _weights(self, *, optimizer: bool) -> tuple[list[Any], ...]:
        model = self._model
        weights = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        return (*weights, [v.value for v in self._optimizer.variables]) if optimizer else weights

    def _run(self, kind: str, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        if kind not in self._passes:
            self._add(kind, self._make_test())
        pass_, compiled = self._passes[kind], self._compiled[kind]
        metric_vars = [v.value for m in pass_.metrics for v in m.variables]
        state = (*self._weights(optimizer=pass_.optimizer), metric_vars)
        ran, logs = 0, None
        for data in iterator:
            state, logs = compiled(state, self._placement.put(data))
            ran += 1
            if ran == steps:
                break
        if ran:
            *weights, metric_vars = state
            variables = [self._model.trainable_variables, self._model.non_trainable_variables]
            if pass_.optimizer:
                variables.append(self._optimizer.variables)
            for group, values in zip(variables, weights, strict=True):
                for variable, value in zip(group, values, strict=True):
                    variable.assign(value)
            for variable, value in zip(
                [v for m in pass_.metrics for v in m.variables], metric_vars, strict=True
            ):
                variable.assign(value)
            self._logs = logs
        return ran

    # ----------------------------------------------------------------- the Stepper protocol

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._run("train", iterator, steps)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._run("test", iterator, steps)


def _split(metrics: list[keras.metrics.Metric], flat: list[Any]) -> list[list[Any]]:
    """``flat`` (every metric's variables, in order) cut into one list per metric."""
    parts, start = [], 0
    for metric in metrics:
        parts.append(flat[start : start + len(metric.variables)])
        start += len(metric.variables)
    return parts
