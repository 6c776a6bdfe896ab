"""Model inputs: the order of each epoch, the ``tf.data`` pipeline that follows it, and the same
batches in NumPy alone.

The only module of :mod:`trainways.data` that imports TensorFlow directly (the Keras download
gets it through Keras), and only lazily inside :func:`make_dataset`: loading and padding data
must not need it. :class:`NumpyBatches` gives exactly :func:`make_dataset`'s batches without
TensorFlow, for the JAX and PyTorch backends' hand-driven steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from trainways.data.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training samples.

    A pure function of ``(seed, epoch)``, computed in NumPy: every method, however many passes
    it opens over its dataset (``fit`` opens an extra one to build the model), and every run
    resumed at any epoch, sees the same batches in the same order.

    Args:
        n: Number of samples.
        seed: Non-negative run seed.
        epoch: 0-based epoch index.

    Returns:
        A permutation of ``range(n)`` (int64).
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochClock:
    """Which epoch a training dataset made with ``clock=`` yields when it is next iterated.

    Such a dataset is one epoch per pass, in the order :func:`epoch_order` gives for the clock's
    epoch; the trainer sets the epoch before opening each pass (as PyTorch's
    ``DistributedSampler.set_epoch``). Each pass then ends where its epoch ends, so a call that
    runs several steps stops there, as ``fit`` stops on any finite dataset.

    Args:
        epoch: The epoch of the first pass.
    """

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def order(self, n: int, seed: int) -> np.ndarray:
        """:func:`epoch_order` of the current epoch."""
        return epoch_order(n, seed, self.epoch)


def steps_per_epoch(n: int, batch_size: int, *, drop_remainder: bool = False) -> int:
    """Number of batches in one pass over ``n`` samples."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


class NumpyBatches:
    """:func:`make_dataset`'s batches, made with NumPy alone: the same arguments, the same
    batches in the same order (each epoch's order from :func:`epoch_order`).

    Iterating gives ``(x, y)`` NumPy batches: one ordered pass without ``shuffle``; with it, one
    epoch per pass when given a ``clock``, else an endless stream of epochs from ``first_epoch``
    on (consumers take :func:`steps_per_epoch` per epoch).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int | None = None,
        first_epoch: int = 0,
        clock: EpochClock | None = None,
        drop_remainder: bool = False,
    ) -> None:
        _check_batching(x, y, batch_size)
        if shuffle and (seed is None or seed < 0):
            raise DataError(f"seed must be >= 0 for a shuffled stream, got {seed}")
        self._x, self._y = np.asarray(x), np.asarray(y)
        self._batch_size = batch_size
        self._shuffle = shuffle
        self._seed = seed
        self._first_epoch = first_epoch
        self._clock = clock if shuffle else None
        self._steps = steps_per_epoch(len(self._x), batch_size, drop_remainder=drop_remainder)

    def cardinality(self) -> int:
        """Batches per pass; ``-1`` (``tf.data``'s infinite) for the endless shuffled stream."""
        return -1 if self._shuffle and self._clock is None else self._steps

    def _pass(self, order: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size = self._batch_size
        for start in range(0, self._steps * size, size):
            if order is None:
                yield self._x[start : start + size], self._y[start : start + size]
            else:
                # One gather per batch, as the tf.data pipeline does.
                indices = order[start : start + size]
                yield self._x[indices], self._y[indices]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if not self._shuffle:
            yield from self._pass(None)
            return
        if self._clock is not None:
            yield from self._pass(self._clock.order(len(self._x), self._seed))
            return
        for epoch in itertools.count(self._first_epoch):
            yield from self._pass(epoch_order(len(self._x), self._seed, epoch))


def _check_batching(x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} rows but y has {len(y)}: pass matching arrays")


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    first_epoch: int = 0,
    clock: EpochClock | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of ``(x, y)`` batches.

    Without ``shuffle`` (validation data): one pass in order per iteration, cached.

    With ``shuffle`` (training data) and a ``clock``: one epoch per pass, the clock's, in the order
    :func:`epoch_order` gives (set the clock's epoch before opening each pass). Without a clock:
    an endless stream of epochs, epoch ``first_epoch`` first; consumers take
    :func:`steps_per_epoch` batches per epoch. The tutorial's
    ``shuffle().batch().prefetch().cache()`` replayed its first epoch's order forever, and even a
    correct ``reshuffle_each_iteration`` shuffle ties each epoch's order to how many passes the
    consumer has opened, which differs between ``fit`` and a hand-written loop and breaks resuming.

    Args:
        x: Padded int32 inputs, shape ``(n, max_len)``.
        y: int32/int64 labels, shape ``(n,)``.
        batch_size: Batch size.
        shuffle: Training stream (shuffled per epoch) or a single ordered pass.
        seed: Shuffle seed (non-negative); ``None`` draws one.
        first_epoch: Epoch the stream starts at (a resumed run starts where it stopped).
        clock: Makes the training data one epoch per pass, the clock's.
        drop_remainder: Drop the last partial batch of each epoch.

    Returns:
        The dataset.
    """
    import tensorflow as tf  # lazy: loading data must not need TensorFlow

    _check_batching(x, y, batch_size)
    if not shuffle:
        ordered = tf.data.Dataset.from_tensor_slices((x, y))
        return (
            ordered.batch(batch_size, drop_remainder=drop_remainder)
            .cache()
            .prefetch(tf.data.AUTOTUNE)
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**31)
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    n = len(x)
    features, labels = tf.constant(x), tf.constant(y)

    def batches(indices: tf.Tensor) -> tf.data.Dataset:
        indices = tf.ensure_shape(indices, [n])
        return tf.data.Dataset.from_tensor_slices(indices).batch(
            batch_size, drop_remainder=drop_remainder
        )

    if clock is not None:
        # The epoch is read when a pass starts: stateful, so tf.data never reuses an old order.
        def order(_: tf.Tensor) -> tf.data.Dataset:
            return batches(tf.numpy_function(lambda: clock.order(n, seed), [], tf.int64))

        epochs = tf.data.Dataset.from_tensors(0).flat_map(order)
        cardinality = steps_per_epoch(n, batch_size, drop_remainder=drop_remainder)
    else:

        def order(epoch: tf.Tensor) -> tf.data.Dataset:
            indices = tf.numpy_function(lambda e: epoch_order(n, seed, int(e)), [epoch], tf.int64)
            return batches(indices)

        epochs = tf.data.Dataset.counter(first_epoch).flat_map(order)
        # Declared endless, so that a consumer that forgets steps_per_epoch is told at once
        # instead of training forever on its "first epoch".
        cardinality = tf.data.INFINITE_CARDINALITY
    # Batches of indices, then one gather per batch: cheaper than slicing sample by sample.
    stream = epochs.map(lambda idx: (tf.gather(features, idx), tf.gather(labels, idx)))
    stream = stream.apply(tf.data.experimental.assert_cardinality(cardinality))
    return stream.prefetch(tf.data.AUTOTUNE)
