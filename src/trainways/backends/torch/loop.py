"""The ``loop`` method's step on PyTorch: autograd, run eagerly.

Keras's guide for PyTorch, which is also what ``Model.fit``'s ``train_step`` does there: a forward
pass with ``training=True``, ``model.zero_grad()``, the batch-mean loss plus any layer losses,
``loss.backward()``, and ``optimizer.apply`` on the variables' ``.grad`` under
``torch.no_grad()``. The step may be trainways' own, the model's own ``train_step`` /
``test_step``, or the user's step function ``step(model, x, y) -> logs`` (:mod:`trainways.steps`),
which does the same with autograd and whose logs are tracked as the contract says.

Nothing is compiled (``fit`` on PyTorch compiles nothing either, unless ``jit_compile``), so a
user's step cannot be checked by tracing it: :meth:`LoopStepper.check` runs it once, on the
throwaway model :func:`trainways.preflight.check_steps` builds before any file is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import torch

from trainways import steps as user_steps
from trainways.backends.common import PassStepper, batch_rows
from trainways.config import ConfigError
from trainways.trainers.base import TrainData, TrainSpec


class _Pass:
    """One kind of pass (training or validation): a step on ``(x, y)`` and the metrics it
    updates; ``results()`` reads them as logs."""

    def __init__(
        self,
        step: Callable[[Any], None],
        metrics: list[keras.metrics.Metric],
        results: Callable[[], dict[str, Any]],
    ) -> None:
        self.step = step
        self.metrics = metrics
        self.results = results


class LoopStepper(PassStepper):
    """Steps with a hand-written autograd update and Keras metric objects.

    Args:
        model: The compiled model; its optimizer is the one the step applies.
        spec: The loss and metrics, and the user's steps if any.
        element_spec: Unused on PyTorch (eager steps take any batch shape).
        placement: Where the steps run (one device).
    """

    def __init__(self, model: keras.Model, spec: TrainSpec, element_spec: Any, placement: Any):
        self._model = model
        self._spec = spec
        self._optimizer = model.optimizer
        self._logs: dict[str, Any] = {}
        own = user_steps.has_own_step(model)
        built_in = _Pass(self._train, list(model.metrics), model.get_metrics_result)
        built_in_test = _Pass(self._test, list(model.metrics), model.get_metrics_result)
        self._passes = {
            "train": self._user_pass(spec.train_step, "step")
            if spec.train_step is not None
            else self._own_pass(model.train_step, "train_step")
            if own
            else built_in,
            "test": self._user_pass(spec.test_step, "test_step")
            if spec.test_step is not None
            else self._own_pass(model.test_step, "test_step")
            if own
            else built_in_test,
        }

    # ----------------------------------------------------------------- the built-in step

    def _track(self, loss: torch.Tensor, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> None:
        model = self._model
        model._loss_tracker.update_state(loss, sample_weight=batch_rows(x))  # fit's "loss"
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _train(self, data: Any) -> None:
        model = self._model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = model(x, training=True)
        model.zero_grad()  # the gradients left on the variables by the previous step
        loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
        self._track(loss, x, y, y_pred, sample_weight)
        self._optimizer.scale_loss(loss).backward()
        variables = model.trainable_variables
        with torch.no_grad():
            self._optimizer.apply([v.value.grad for v in variables], variables)

    def _test(self, data: Any) -> None:
        model = self._model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with torch.no_grad():
            y_pred = model(x, training=False)
            loss = model.compute_loss(x, y, y_pred, sample_weight, training=False)
            self._track(loss, x, y, y_pred, sample_weight)

    # ----------------------------------------------------------------- a user's step function

    def _user_pass(self, fn: Callable[..., Any], role: str) -> _Pass:
        """A pass running the user's ``fn(model, x, y)``, its logs tracked as the contract says.

        The trackers are made from the first batch's logs (their keys), checked then.
        """
        model = self._model
        scalars: dict[str, keras.metrics.Mean] = {}
        metrics: list[keras.metrics.Metric] = []
        every: list[keras.metrics.Metric] = []

        def step(data: Any) -> None:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            out = fn(model, x, y)
            if not every:
                logs = user_steps.check_logs(out, role=role, source=fn)
                scalars.update(
                    {key: keras.metrics.Mean(name=key) for key in logs if key != "y_pred"}
                )
                if user_steps.PREDICTIONS in logs:
                    metrics.extend(self._spec.metrics())
                every.extend([*scalars.values(), *metrics])
            with torch.no_grad():
                for key, tracker in scalars.items():
                    tracker.update_state(out[key], sample_weight=batch_rows(x))
                for metric in metrics:
                    metric.update_state(y, out[user_steps.PREDICTIONS])

        return _Pass(step, every, lambda: {m.name: m.result() for m in every})

    # ----------------------------------------------------------------- the model's own step

    def _own_pass(self, method: Callable[[Any], Any], role: str) -> _Pass:
        """A pass running the model's own ``train_step`` / ``test_step``: Keras's logs."""
        model = self._model
        names = list(dict.fromkeys([*model.get_metrics_result(), *(m.name for m in model.metrics)]))
        checked: list[bool] = []

        def step(data: Any) -> None:
            logs = method(data)
            if not checked:
                user_steps.check_own_step_logs(logs, names, role=role)
                checked.append(True)

        return _Pass(step, list(model.metrics), model.get_metrics_result)

    # ----------------------------------------------------------------- the Stepper protocol

    def check(self, data: TrainData) -> None:
        """Run each pass once on the first training batch, so that a broken user step fails now.

        Only for a throwaway model: the step changes its weights. (The TensorFlow and JAX
        steppers check by tracing, which changes nothing.)
        """
        first = _tensors(next(data.train.as_numpy_iterator()))
        for role, kind in zip(("step", "test_step"), self._passes.values(), strict=True):
            try:
                kind.step(first)
            except ConfigError:
                raise
            except Exception as error:  # the user's code: its first line is the point
                raise ConfigError(
                    f"{role} failed on the first batch: {user_steps.describe_error(error)}",
                    keys=(role,),
                ) from None

    def _steps(self, kind: _Pass, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        ran = 0
        for data in iterator:
            kind.step(_tensors(data))
            ran += 1
            if ran == steps:
                break
        if ran:
            self._logs = kind.results()
        return ran

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._passes["train"], iterator, steps)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._passes["test"], iterator, steps)


def _tensors(data: Any) -> Any:
    """A NumPy batch (any structure) as tensors on Keras's device."""
    return keras.tree.map_structure(keras.ops.convert_to_tensor, data)
