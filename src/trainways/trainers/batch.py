"""Method 2: a ``train_on_batch`` / ``test_on_batch`` loop.

Keras 3 resets the model's metrics at every ``train_on_batch`` call, so each call returns that one
batch's loss and metrics. The tutorial reported the last batch's values as the epoch's; here the
epoch's figures are the batch values weighted by batch size, which is exactly what ``fit`` reports
(every metric involved is a per-sample mean).

Under a ``tf.distribute`` strategy, Keras 3's ``train_on_batch`` does not split a batch: it runs
the whole batch on every replica (``strategy.run`` with the same tensors), so N replicas do N times
the work for one step's worth of progress. Here the batches come from the distributed dataset,
each already split into per-replica parts, and ``train_on_batch`` hands each replica its part.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import keras

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
    """Steps with ``Model.train_on_batch`` / ``test_on_batch``.

    Args:
        model: The compiled model.
        batch_size: Counts the examples of a (possibly distributed) batch of labels.
    """

    def __init__(self, model: keras.Model, batch_size: Callable[[Any], int]) -> None:
        self._model = model
        self._means = WeightedMeans()
        self._size = batch_size

    def reset(self) -> None:
        self._means.reset()

    def _steps(self, call: Any, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        # One Keras call per batch whatever steps_per_execution is: the method's point is a call
        # per batch; the execution size only sets how often the hooks run.
        ran = 0
        for x, y in itertools.islice(iterator, steps):
            self._means.add(call(x, y, return_dict=True), self._size(y))
            ran += 1
        return ran

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._model.train_on_batch, iterator, steps)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._model.test_on_batch, iterator, steps)

    def results(self) -> dict[str, float]:
        return self._means.result()


def run(
    setup: Setup, callbacks: Iterable[keras.callbacks.Callback] | None = None
) -> keras.callbacks.History:
    """Train batch by batch with ``train_on_batch``, validating with ``test_on_batch``.

    Returns:
        The History of per-epoch logs (true epoch means, not last-batch values).
    """
    placement = setup.placement
    stepper = BatchStepper(setup.model, placement.batch_size)
    return drive(setup.model, stepper, placement.distribute(setup.data), setup.spec, callbacks)
