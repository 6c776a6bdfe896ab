"""Method 2: a ``train_on_batch`` / ``test_on_batch`` loop.

Keras 3 resets the model's metrics at every ``train_on_batch`` call, so each call returns that one
batch's loss and metrics. The tutorial reported the last batch's values as the epoch's; here the
epoch's figures are the batch values weighted by batch size, which is exactly what ``fit`` reports
(every metric involved is a per-sample mean).
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def __init__(self, model: keras.Model) -> None:
        self._model = model
        self._means = WeightedMeans()

    def reset(self) -> None:
        self._means.reset()

    def train_batch(self, x: Any, y: Any) -> None:
        self._means.add(self._model.train_on_batch(x, y, return_dict=True), int(x.shape[0]))

    def test_batch(self, x: Any, y: Any) -> None:
        self._means.add(self._model.test_on_batch(x, y, return_dict=True), int(x.shape[0]))

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
    return drive(model, BatchStepper(model), data, spec, callbacks)
