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
from collections.abc import Iterable, Iterator
from typing import Any

import keras

from trainways.trainers.base import TrainData, TrainSpec, compile_model, drive


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
    """Steps with ``Model.train_on_batch`` / ``test_on_batch``."""

    def __init__(self, model: keras.Model, strategy: Any = None) -> None:
        self._model = model
        self._means = WeightedMeans()
        self._strategy = strategy

    def _size(self, y: Any) -> int:
        if self._strategy is None:
            return int(y.shape[0])
        from trainways.trainers.distribute import global_size

        return int(global_size(self._strategy, y))

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


def train(
    model: keras.Model,
    data: TrainData,
    spec: TrainSpec,
    callbacks: Iterable[keras.callbacks.Callback] | None = None,
) -> keras.callbacks.History:
    """Train batch by batch with ``train_on_batch``, validating with ``test_on_batch``.

    Args:
        model: A Keras model; it is (re)compiled from ``spec``.
        data: Batched training and optional validation datasets.
        spec: Epochs, loss, optimizer, metrics and XLA setting.
        callbacks: Keras callbacks, driven in ``fit``'s order.

    Returns:
        The History of per-epoch logs (true epoch means, not last-batch values).
    """
    compile_model(model, spec)
    strategy = None
    if model.distribute_strategy.num_replicas_in_sync > 1:
        from trainways.trainers.distribute import (
            build_for_training,
            distribute,
            strategy_of,
            work_around_keras_multiworker,
        )

        strategy = strategy_of(model)
        build_for_training(model, data.train.element_spec, strategy)
        work_around_keras_multiworker(model, data.train.element_spec)
        data = distribute(data, strategy)
    return drive(model, BatchStepper(model, strategy), data, spec, callbacks)
