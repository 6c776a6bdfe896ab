"""Model inputs: the order of each epoch, and the ``tf.data`` pipeline that follows it.

The only module of :mod:`trainways.data` that imports TensorFlow directly (the Keras download
gets it through Keras), and only lazily inside :func:`make_dataset`: loading and padding data
must not need it.
"""

from __future__ import annotations

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


def steps_per_epoch(n: int, batch_size: int, *, drop_remainder: bool = False) -> int:
    """Number of batches in one pass over ``n`` samples."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    first_epoch: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of ``(x, y)`` batches.

    Without ``shuffle`` (validation data): one pass in order per iteration, cached.

    With ``shuffle`` (training data): an endless stream of epochs, epoch ``first_epoch`` first,
    each in the order :func:`epoch_order` gives; consumers take
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
        drop_remainder: Drop the last partial batch of each epoch.

    Returns:
        The dataset.
    """
    import tensorflow as tf  # lazy: loading data must not need TensorFlow

    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} rows but y has {len(y)}: pass matching arrays")
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

    def order(epoch: tf.Tensor) -> tf.data.Dataset:
        indices = tf.numpy_function(lambda e: epoch_order(n, seed, int(e)), [epoch], tf.int64)
        indices = tf.ensure_shape(indices, [n])
        return tf.data.Dataset.from_tensor_slices(indices).batch(
            batch_size, drop_remainder=drop_remainder
        )

    # Batches of indices, then one gather per batch: cheaper than slicing sample by sample.
    stream = tf.data.Dataset.counter(first_epoch).flat_map(order)
    stream = stream.map(lambda idx: (tf.gather(features, idx), tf.gather(labels, idx)))
    # Declared endless, so that a consumer that forgets steps_per_epoch is told at once
    # instead of training forever on its "first epoch".
    stream = stream.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    return stream.prefetch(tf.data.AUTOTUNE)
