"""Where the steps run on JAX: one device, or a ``keras.distribution.DataParallel``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainways.backends.common import is_cluster_failure
from trainways.trainers.base import TrainData, build_before_training


class _NumpyBatches:
    """A ``tf.data`` dataset seen as NumPy batches (one pass per ``iter``)."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self._dataset.as_numpy_iterator()


@dataclass(frozen=True)
class Placement:
    """Where the steps run on JAX: one device, or a ``DataParallel`` distribution.

    The hand-driven methods get NumPy batches (:meth:`distribute`): the global batch on one
    process, this process's part of it across processes, as ``train_on_batch`` expects. The
    ``loop`` method's step places each with :meth:`put`: split along the batch axis over the
    distribution's devices, so a step compiled with ``jax.jit`` runs data-parallel on it (the
    variables are replicated), its gradients summed across devices by XLA.

    Attributes:
        distribution: The ``keras.distribution.DataParallel`` the model was built under, or
            ``None`` for one device.
    """

    distribution: Any = None

    @property
    def strategy(self) -> Any:
        """What the TensorFlow backend calls its ``tf.distribute`` strategy: the distribution."""
        return self.distribution

    @property
    def processes(self) -> int:
        """Processes the distribution spans (1 without one)."""
        return 1 if self.distribution is None else int(self.distribution.num_processes)

    @property
    def spans_workers(self) -> bool:
        """Whether the distribution spans several processes (``strategy multiworker``)."""
        return self.processes > 1

    def distribute(self, data: TrainData) -> TrainData:
        """``data`` as NumPy batches for the hand-driven methods: ``data.numpy`` (made without
        TensorFlow) in one process; across processes, this process's part of each batch (the
        distribution's ``distribute_dataset``, as ``fit``)."""
        if data.numpy is not None and self.processes == 1:
            return data.numpy

        def batches(dataset: Any) -> _NumpyBatches:
            if self.distribution is not None:
                dataset = self.distribution.distribute_dataset(dataset)
            return _NumpyBatches(dataset)

        validation = data.validation
        return dataclasses.replace(
            data,
            train=batches(data.train),
            validation=None if validation is None else batches(validation),
        )

    def put(self, data: Any) -> Any:
        """A NumPy batch from :meth:`distribute` (any structure) on the devices, for a compiled
        step.

        One device: as JAX arrays on it. Distributed: global ``jax.Array``s split along the
        batch axis by the distribution's data layout (placed whole on every device when the
        devices cannot split it, see :mod:`trainways.backends.jax.devices`); across processes
        each process gives its part, as Keras's own JAX trainer does.
        """
        import jax
        import keras

        def place(part: Any) -> Any:
            part = np.asarray(part)
            if self.distribution is None:
                return jax.device_put(part)
            # The layout of the global batch: across processes, ``part`` is this process's part.
            rows = len(part) * self.processes
            layout = self.distribution.get_data_layout((rows, *part.shape[1:])).backend_layout
            return jax.make_array_from_process_local_data(layout, part)

        return keras.tree.map_structure(place, data)

    def gather(self, value: Any) -> Any:
        """A distributed batch as one array on this process: every process's part, in order."""
        if getattr(value, "is_fully_addressable", True):
            return value
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(value, tiled=True)


def prepare(model: Any, data: TrainData) -> Placement:
    """Build what ``fit`` builds on first use (compiled loss and metrics, the optimizer), once,
    under the distribution the model was built in (``None``: one device)."""
    import keras

    build_before_training(model, data.train.element_spec)
    return Placement(keras.distribution.distribution())


__all__ = ["Placement", "is_cluster_failure", "prepare"]
