"""Where the steps run on PyTorch: one device, fed tensors made from NumPy batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras

from trainways.backends.common import is_cluster_failure  # one process: no peer to lose
from trainways.trainers.base import TrainData, build_before_training


class _TensorBatches:
    """NumPy batches (or a ``tf.data`` dataset's, as NumPy) as tensors on Keras's device."""

    def __init__(self, batches: Any) -> None:
        self._batches = batches
        self.cardinality = getattr(batches, "cardinality", None)  # how many, for the driver

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches
        if hasattr(batches, "as_numpy_iterator"):  # a dataset given to the library
            batches = batches.as_numpy_iterator()
        for data in batches:
            yield keras.tree.map_structure(keras.ops.convert_to_tensor, data)


@dataclass(frozen=True)
class Placement:
    """One PyTorch device (``strategy`` is always ``None``)."""

    strategy: Any = None
    spans_workers: bool = False

    def distribute(self, data: TrainData) -> TrainData:
        """``data`` as batches of tensors for the hand-driven methods, made from ``data.numpy``
        (no TensorFlow on the hot path) when there is one."""
        data = data.numpy or data
        validation = data.validation
        return dataclasses.replace(
            data,
            train=_TensorBatches(data.train),
            validation=None if validation is None else _TensorBatches(validation),
        )

    def gather(self, value: Any) -> Any:
        return value


def prepare(model: keras.Model, data: TrainData) -> Placement:
    """Build what ``fit`` builds on first use (compiled loss and metrics, the optimizer), once."""
    build_before_training(model, data.train.element_spec)
    return Placement()


__all__ = ["Placement", "is_cluster_failure", "prepare"]
