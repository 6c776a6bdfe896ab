"""Method 2: a ``train_on_batch`` / ``test_on_batch`` loop.

One Keras call per batch, on the batches ``fit`` would see, with the model's own compiled loss
and metrics. Two things make its History ``fit``'s:

- Keras 3 resets the model's metrics at every ``train_on_batch`` call, so each call would
  report that one batch. Here the reset happens where ``fit`` resets — at the start of each
  epoch and each validation pass — so each call returns the running epoch results, and the
  epoch's logs are exactly each metric's ``result()`` after the epoch, as ``fit`` reports
  (a count such as ``TrueNegatives`` or a ratio such as ``Precision`` included; a mean of
  per-batch values would be wrong for both).
- ``train_on_batch`` hands the model's step ``(x, y, None)`` where ``fit`` hands ``(x, y)``: a
  model's own ``train_step`` / ``test_step`` gets the batch as the other methods give it, so
  ``x, y = data`` works in every method.

Under a ``tf.distribute`` strategy, Keras 3's ``train_on_batch`` does not split a batch: it runs
the whole batch on every replica (``strategy.run`` with the same tensors), so N replicas do N times
the work for one step's worth of progress. Here the batches come from the distributed dataset,
each already split into per-replica parts, and ``train_on_batch`` hands each replica its part.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import keras

from trainways import steps as user_steps
from trainways.trainers.base import drive

if TYPE_CHECKING:
    from trainways.trainers import Setup


class WeightedMeans:
    """Running sample-weighted means of a dict of per-batch means."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def reset(self) -> None:
        self._sums = {}
        self._count = 0

    def add(self, values: dict[str, float], n: int) -> None:
        for name, value in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value) * n
        self._count += n

    def result(self) -> dict[str, float]:
        if not self._count:
            return {}
        return {name: total / self._count for name, total in self._sums.items()}


class BatchStepper:
    """Steps with ``Model.train_on_batch`` / ``test_on_batch``, the metrics kept running.

    Args:
        model: The compiled model, inside :func:`running_metrics`.
    """

    def __init__(self, model: keras.Model) -> None:
        self._model = model
        self._logs: dict[str, float] = {}

    def reset(self) -> None:
        type(self._model).reset_metrics(self._model)  # the real one: the instance's is off
        self._logs = {}

    def _steps(self, call: Any, iterator: Iterator[Any], steps: int) -> int:
        # One Keras call per batch whatever steps_per_execution is: the method's point is a call
        # per batch; the execution size only sets how often the hooks run.
        ran = 0
        for data in itertools.islice(iterator, steps):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            self._logs = call(x, y, sample_weight, return_dict=True)
            ran += 1
        return ran

    def train_steps(self, iterator: Iterator[Any], steps: int) -> int:
        return self._steps(self._model.train_on_batch, iterator, steps)

    def test_steps(self, iterator: Iterator[Any], steps: int) -> int:
        return self._steps(self._model.test_on_batch, iterator, steps)

    def results(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._logs.items()}


def _as_fit_packs(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` (a model's own ``train_step`` / ``test_step``, bound) fed its batch — the last
    argument — as the other methods feed it, the tuple the data yields: ``(x, y)`` without
    sample weights, ``(x,)`` without targets (``train_on_batch`` hands ``(x, y, None)``)."""

    @functools.wraps(step)
    def packed(*args: Any) -> Any:
        *state, data = args  # JAX's steps take (state, data)
        parts = keras.utils.unpack_x_y_sample_weight(data)
        return step(*state, tuple(part for part in parts if part is not None))

    return packed


@contextlib.contextmanager
def running_metrics(model: keras.Model) -> Iterator[None]:
    """While inside, ``train_on_batch`` and ``test_on_batch`` keep the metrics running (the
    stepper resets them where ``fit`` does) and hand a model's own steps ``fit``'s batches."""
    model.reset_metrics = lambda: None
    if user_steps.has_own_step(model):
        model.train_step = _as_fit_packs(model.train_step)
        model.test_step = _as_fit_packs(model.test_step)
    try:
        yield
    finally:
        for name in ("reset_metrics", "train_step", "test_step"):
            model.__dict__.pop(name, None)


def run(
    setup: Setup, callbacks: Iterable[keras.callbacks.Callback] | None = None
) -> keras.callbacks.History:
    """Train batch by batch with ``train_on_batch``, validating with ``test_on_batch``.

    Returns:
        The History of per-epoch logs: each metric's ``result()`` after the epoch, as ``fit``.
    """
    model = setup.model
    with running_metrics(model):
        stepper = BatchStepper(model)
        return drive(model, stepper, setup.placement.distribute(setup.data), setup.spec, callbacks)
