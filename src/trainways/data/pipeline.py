"""Model inputs: the order of each epoch, the ``tf.data`` pipeline that follows it, and the same
batches in NumPy alone.

The only module of :mod:`trainways.data` that imports TensorFlow directly (the Keras download
gets it through Keras), and only lazily inside :func:`make_dataset`: loading and padding data
must not need it. :class:`NumpyBatches` gives exactly :func:`make_dataset`'s batches without
TensorFlow, for the JAX and PyTorch backends' hand-driven steps.

Both take what ``keras.Model.fit`` takes as arrays: ``x`` and ``y`` any nested structure (dicts,
lists, tuples) of arrays with one first dimension, ``y=None`` for unsupervised data, and an
optional ``sample_weight``. A batch is always a tuple in ``fit``'s order: ``(x,)``, ``(x, y)``
or ``(x, y, sample_weight)``, lists in the structures made tuples (``tf.data`` would stack a
list into one tensor). Keras is imported lazily, for its ``keras.tree``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from trainways.data.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

_PARTS = ("x", "y", "sample_weight")


def draw_seed() -> int:
    """A shuffle seed taken from the state of NumPy's global generator, without drawing from it.

    A script seeded the Keras way (``keras.utils.set_random_seed``) gets the same seed every
    time it runs, and the random numbers it draws afterwards are the ones it would draw without
    trainways: a port of a Keras script leaves its random state alone.
    """
    _, keys, position, *_ = np.random.get_state()
    digest = hashlib.sha256(keys.tobytes() + int(position).to_bytes(4, "little")).digest()
    return int.from_bytes(digest[:4], "little") % 2**31


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


def batchable(x: Any, y: Any = None, sample_weight: Any = None) -> tuple[tuple[Any, ...], int]:
    """``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` as NumPy arrays, and their row count.

    Args:
        x: An array or a nested structure (dict, list, tuple) of arrays: NumPy arrays, or
            backend tensors (converted with ``np.asarray``).
        y: The same, or ``None`` (unsupervised).
        sample_weight: The same, or ``None``; needs ``y``.

    Returns:
        The tuple of structures (lists made tuples) and the rows every array has.

    Raises:
        DataError: ``sample_weight`` without ``y``, a scalar, or arrays whose row counts differ
            (the message names each array's path and count).
    """
    from keras import tree

    if sample_weight is not None and y is None:
        raise DataError("sample_weight weighs the loss against y: pass y too, or no sample_weight")
    parts = tuple(part for part in (x, y, sample_weight) if part is not None)
    parts = tree.lists_to_tuples(tree.map_structure(_to_numpy, parts))
    rows: dict[str, int] = {}
    for path, leaf in tree.flatten_with_path(parts):
        name = _PARTS[path[0]] + "".join(f"[{key!r}]" for key in path[1:])
        if leaf.ndim == 0:
            raise DataError(f"{name} is a scalar ({leaf!r}): pass an array with one row a sample")
        rows[name] = len(leaf)
    if not rows:
        raise DataError(f"x holds no arrays ({x!r}): pass at least one array")
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"{name} has {count}" for name, count in rows.items())
        raise DataError(f"row counts differ ({counts}): give every array one row a sample")
    return parts, next(iter(rows.values()))


def _to_numpy(array: Any) -> np.ndarray:
    # A PyTorch tensor may live on a GPU; np.asarray reads only host memory.
    return np.asarray(array.cpu() if type(array).__module__.startswith("torch") else array)


class _Plan:
    """Which samples each epoch visits, and in how many batches.

    Without ``steps`` an epoch is a pass over every sample, shuffled by :func:`epoch_order` or
    in order. With ``steps`` an epoch is at most ``steps`` batches of a pass, as ``Model.fit``
    counts them: it takes the next ``steps`` batches of the current pass, the last epoch of a
    pass takes what is left (Keras warns that the input ran out), and the next epoch opens the
    next pass. Pass ``p`` is in the order :func:`epoch_order` gives epoch ``p``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int | None,
        steps: int | None = None,
        drop_remainder: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        if steps is not None and steps < 1:
            raise DataError(f"steps_per_epoch must be >= 1 or None, got {steps}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_remainder = drop_remainder
        self.pass_steps = steps_per_epoch(n, batch_size, drop_remainder=drop_remainder)
        self.steps = self.pass_steps if steps is None else min(steps, self.pass_steps)
        self.epochs_per_pass = -(-self.pass_steps // self.steps) if self.steps else 1

    def cardinality(self) -> int:
        """Batches in every epoch; ``-2`` (``tf.data``'s unknown) when epochs differ."""
        if self.epochs_per_pass == 1 or self.pass_steps % self.steps == 0:
            return self.steps
        return -2

    def indices(self, epoch: int) -> np.ndarray:
        """The samples epoch ``epoch`` visits, in order (int64)."""
        pass_, part = divmod(epoch, self.epochs_per_pass)
        if self.shuffle:
            order = epoch_order(self.n, self.seed, pass_)
        else:
            order = np.arange(self.n, dtype=np.int64)
        if self.epochs_per_pass == 1:
            return order
        span = self.steps * self.batch_size
        return order[part * span : (part + 1) * span]

    def batches(self, samples: int) -> int:
        """Batches in a pass over ``samples`` samples."""
        return steps_per_epoch(samples, self.batch_size, drop_remainder=self.drop_remainder)


def _take(parts: tuple[Any, ...], rows: Any) -> tuple[Any, ...]:
    """The batch of ``rows`` (a slice or indices) of every array in ``parts``."""
    if all(isinstance(part, np.ndarray) for part in parts):  # flat: spare the tree walk
        return tuple(part[rows] for part in parts)
    from keras import tree

    return tree.map_structure(lambda part: part[rows], parts)


class NumpyBatches:
    """:func:`make_dataset`'s batches, made with NumPy alone: the same arguments, the same
    batches in the same order (each epoch's order from :func:`epoch_order`).

    Iterating gives tuples of NumPy batches (``(x, y)``; ``(x,)`` without ``y``;
    ``(x, y, sample_weight)`` with weights): with a ``clock``, one epoch per pass, the clock's;
    else one ordered pass without ``shuffle``, and with it an endless stream of epochs from
    ``first_epoch`` on (consumers take :func:`steps_per_epoch` per epoch).
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        sample_weight: Any = None,
        batch_size: int,
        shuffle: bool,
        seed: int | None = None,
        first_epoch: int = 0,
        clock: EpochClock | None = None,
        drop_remainder: bool = False,
        steps_per_epoch: int | None = None,
    ) -> None:
        self._parts, n = batchable(x, y, sample_weight)
        if shuffle and (seed is None or seed < 0):
            raise DataError(f"seed must be >= 0 for a shuffled stream, got {seed}")
        self._plan = _Plan(
            n,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            steps=steps_per_epoch if clock is not None else None,
            drop_remainder=drop_remainder,
        )
        self._first_epoch = first_epoch
        self._clock = clock

    def cardinality(self) -> int:
        """Batches per pass: ``-1`` (``tf.data``'s infinite) for the endless shuffled stream,
        ``-2`` (unknown) for a clock whose epochs differ in length."""
        if self._clock is not None:
            return self._plan.cardinality()
        return -1 if self._plan.shuffle else self._plan.pass_steps

    def _pass(self, order: np.ndarray | None) -> Iterator[tuple[Any, ...]]:
        size = self._plan.batch_size
        batches = self._plan.batches(self._plan.n if order is None else len(order))
        for start in range(0, batches * size, size):
            if order is None:
                yield _take(self._parts, slice(start, start + size))
            else:
                # One gather per batch, as the tf.data pipeline does.
                yield _take(self._parts, order[start : start + size])

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        plan = self._plan
        if self._clock is not None:
            yield from self._pass(plan.indices(self._clock.epoch))
        elif not plan.shuffle:
            yield from self._pass(None)
        else:
            for epoch in itertools.count(self._first_epoch):
                yield from self._pass(epoch_order(plan.n, plan.seed, epoch))


def make_dataset(
    x: Any,
    y: Any = None,
    *,
    sample_weight: Any = None,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    first_epoch: int = 0,
    clock: EpochClock | None = None,
    drop_remainder: bool = False,
    steps_per_epoch: int | None = None,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of ``(x, y)`` batches (``(x,)`` without ``y``,
    ``(x, y, sample_weight)`` with weights).

    Without ``shuffle`` or ``clock`` (validation data): one pass in order per iteration, cached.

    With a ``clock`` (training data): one epoch per pass, the clock's, in the order
    :func:`epoch_order` gives (set the clock's epoch before opening each pass; without
    ``shuffle``, in order). With ``shuffle`` and no clock: an endless stream of epochs, epoch
    ``first_epoch`` first; consumers take :func:`steps_per_epoch` batches per epoch. The
    tutorial's ``shuffle().batch().prefetch().cache()`` replayed its first epoch's order
    forever, and even a correct ``reshuffle_each_iteration`` shuffle ties each epoch's order to
    how many passes the consumer has opened, which differs between ``fit`` and a hand-written
    loop and breaks resuming.

    Args:
        x: Inputs: an array (padded int32 ids, shape ``(n, max_len)``) or a nested structure
            of arrays with ``n`` rows each.
        y: Targets (int32/int64 labels, shape ``(n,)``), any such structure, or ``None``.
        sample_weight: Per-sample weights (an array, or a structure matching ``y``), or ``None``.
        batch_size: Batch size.
        shuffle: Shuffle each epoch (training data), or keep the order.
        seed: Shuffle seed (non-negative); ``None`` draws one from NumPy's global generator, so
            a script seeded with ``keras.utils.set_random_seed`` repeats.
        first_epoch: Epoch the stream starts at (a resumed run starts where it stopped).
        clock: Makes the training data one epoch per pass, the clock's.
        drop_remainder: Drop the last partial batch of each pass.
        steps_per_epoch: With a ``clock``: at most this many batches an epoch, a pass split
            over epochs as ``Model.fit`` splits it (``None``: a whole pass).

    Returns:
        The dataset.
    """
    import tensorflow as tf  # lazy: loading data must not need TensorFlow
    from keras import tree

    parts, n = batchable(x, y, sample_weight)
    if shuffle and seed is None:
        seed = draw_seed()
    if shuffle and seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    plan = _Plan(
        n,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        steps=steps_per_epoch if clock is not None else None,
        drop_remainder=drop_remainder,
    )
    if clock is None and not shuffle:
        ordered = tf.data.Dataset.from_tensor_slices(parts)
        return (
            ordered.batch(batch_size, drop_remainder=drop_remainder)
            .cache()
            .prefetch(tf.data.AUTOTUNE)
        )
    tensors = tree.map_structure(tf.constant, parts)

    def batches(indices: tf.Tensor) -> tf.data.Dataset:
        indices = tf.ensure_shape(indices, [n if plan.epochs_per_pass == 1 else None])
        return tf.data.Dataset.from_tensor_slices(indices).batch(
            batch_size, drop_remainder=drop_remainder
        )

    if clock is not None:
        # The epoch is read when a pass starts: stateful, so tf.data never reuses an old order.
        def order(_: tf.Tensor) -> tf.data.Dataset:
            return batches(tf.numpy_function(lambda: plan.indices(clock.epoch), [], tf.int64))

        epochs = tf.data.Dataset.from_tensors(0).flat_map(order)
        cardinality = plan.cardinality()
    else:

        def order(epoch: tf.Tensor) -> tf.data.Dataset:
            indices = tf.numpy_function(lambda e: epoch_order(n, seed, int(e)), [epoch], tf.int64)
            return batches(indices)

        epochs = tf.data.Dataset.counter(first_epoch).flat_map(order)
        # Declared endless, so that a consumer that forgets steps_per_epoch is told at once
        # instead of training forever on its "first epoch".
        cardinality = tf.data.INFINITE_CARDINALITY
    # Batches of indices, then one gather per batch: cheaper than slicing sample by sample.
    stream = epochs.map(lambda idx: tree.map_structure(lambda t: tf.gather(t, idx), tensors))
    if cardinality != tf.data.UNKNOWN_CARDINALITY:
        stream = stream.apply(tf.data.experimental.assert_cardinality(cardinality))
    return stream.prefetch(tf.data.AUTOTUNE)
