"""Every input ``keras.Model.fit`` accepts, prepared so that trainways' three methods train on
the same batches: :func:`prepare_inputs` and the :class:`Inputs` it returns.

``x`` is classified as Keras 3.15's ``fit`` classifies it (``keras.src.trainers.data_adapters``):
arrays (any nested structure of NumPy arrays or backend tensors), a ``tf.data.Dataset``, a
``keras.utils.PyDataset``, a Python generator, a PyTorch ``DataLoader`` or a Grain dataset.
Arrays go through trainways' own pipeline (:mod:`trainways.data.pipeline`: a seeded order per
epoch, exact resume); every other kind through Keras's own adapter, so that its batches are the
ones ``fit`` would see. A shuffled PyDataset is the one input trainways reorders itself:
:class:`OrderedPyDataset` visits its batches in the seeded order of each epoch, and ``fit`` is
given that wrapper unshuffled, so that all three methods see the same order.

Imports Keras (never TensorFlow unless ``tensorflow=True``); :mod:`trainways.data` exports this
module's names lazily, so that loading data still needs neither.
"""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
from keras import tree
from keras.src.trainers import data_adapters
from keras.src.trainers.data_adapters import data_adapter_utils, py_dataset_adapter

from trainways.data.errors import DataError
from trainways.data.pipeline import (
    EpochClock,
    NumpyBatches,
    batchable,
    draw_seed,
    epoch_order,
    make_dataset,
)
from trainways.data.pipeline import steps_per_epoch as pass_steps

Kind = Literal["arrays", "tf.data", "pydataset", "generator", "torch", "grain"]

_NAMES = {
    "tf.data": "tf.data.Dataset",
    "pydataset": "keras.utils.PyDataset",
    "generator": "Python generator",
    "torch": "torch DataLoader",
    "grain": "Grain dataset",
}


@dataclass(frozen=True)
class NumpyInputs:
    """The batches for the JAX and PyTorch backends' hand-driven steps, without TensorFlow.

    Each ``iter()`` opens one pass of NumPy batch tuples (``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``): an epoch of arrays (the clock's, or the ordered pass), one pass
    of a Keras adapter's ``get_numpy_iterator()`` for the other kinds (a PyDataset's
    ``on_epoch_begin`` / ``on_epoch_end`` around it). Validation passes stop after
    ``validation_steps`` batches when that is set.
    """

    train: Iterable[tuple[Any, ...]]
    validation: Iterable[tuple[Any, ...]] | None = None


@dataclass(frozen=True)
class Inputs:
    """The user's training and validation data, prepared as ``Model.fit`` would take it.

    The fields map onto ``TrainData(train, validation, steps_per_epoch, numpy=TrainData(
    numpy.train, numpy.validation, steps_per_epoch, clock=clock), clock=clock)``.

    Attributes:
        train: The training batches as a ``tf.data.Dataset`` (``None`` unless prepared with
            ``tensorflow=True``): trainways' pipeline for arrays, Keras's adapter's dataset
            otherwise, always of batch tuples.
        validation: The validation batches, likewise (never shuffled), or ``None``.
        numpy: The same batches in NumPy (:class:`NumpyInputs`).
        fit_train: What ``Model.fit`` takes instead of ``train``, or ``None`` (arrays and
            ``tf.data``): the user's DataLoader or Grain dataset, the :class:`OrderedPyDataset`
            around a PyDataset, a generator replaying a user's generator from its first batch.
            Call ``fit`` with ``shuffle=False`` and no ``class_weight``: both are applied here.
        fit_validation: Likewise for the validation data.
        steps_per_epoch: Batches an epoch: the (longest) length of a clocked pass, else the
            user's ``steps_per_epoch`` (what each epoch takes from a pass that runs on, as
            ``fit`` takes it), else ``None`` (a pass says its own length, or does not know).
        validation_steps: At most this many validation batches an evaluation (``validation``
            and ``numpy.validation`` stop there already; give it to ``fit`` too), or ``None``.
        clock: The :class:`EpochClock` that ``train``, ``numpy.train`` and ``fit_train``
            follow, one epoch per pass (set it to the epoch before opening its pass), or
            ``None``. Shuffled arrays, arrays with ``steps_per_epoch``, and a shuffled finite
            PyDataset have one.
        kind: What ``x`` is: ``"arrays"``, ``"tf.data"``, ``"pydataset"``, ``"generator"``,
            ``"torch"`` or ``"grain"``.
        resume: ``"batch"`` when a run can resume exactly mid-epoch (arrays and PyDatasets are
            read by index), ``"epoch"`` when only at an epoch boundary (a stream's position
            cannot be restored).
        seed: The seed trainways shuffles with (drawn from NumPy's global generator when not
            given), or ``None`` when trainways shuffles nothing.
    """

    train: Any
    validation: Any
    numpy: NumpyInputs
    fit_train: Any = None
    fit_validation: Any = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    clock: EpochClock | None = None
    kind: Kind = "arrays"
    resume: Literal["batch", "epoch"] = "batch"
    seed: int | None = None


def prepare_inputs(
    x: Any,
    y: Any = None,
    *,
    sample_weight: Any = None,
    class_weight: dict[int, float] | None = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    steps_per_epoch: int | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    validation_batch_size: int | None = None,
    validation_steps: int | None = None,
    tensorflow: bool,
) -> Inputs:
    """Classify and prepare training and validation data as ``Model.fit`` does.

    The arguments mean what ``fit``'s do, with three differences: a ``batch_size`` (or
    ``validation_batch_size``) given with data that makes its own batches is refused rather
    than ignored; the shuffle follows ``seed`` and the epoch (:func:`epoch_order`), not
    ``fit``'s own random order; and with ``steps_per_epoch`` the arrays' epochs are the pieces
    ``fit`` cuts each pass into, as a pure function of the epoch.

    Args:
        x: Arrays (any nested structure), a ``tf.data.Dataset``, a ``keras.utils.PyDataset``,
            a generator, a torch ``DataLoader`` or a Grain dataset.
        y: Targets, with arrays only (any structure, one per output).
        sample_weight: Per-sample weights, with arrays only: an array, or one per output.
        class_weight: ``{class: weight}``, turned into sample weights (one output only).
        batch_size: Samples a batch, arrays only (default 32, or what ``steps_per_epoch``
            needs to cover the data).
        shuffle: Shuffle arrays, and the batch order of a finite PyDataset, every epoch
            (ignored, as ``fit`` ignores it, for the other kinds).
        seed: Shuffle seed in ``[0, 2**31)``; ``None`` draws one from NumPy's global
            generator, so that a script seeded with ``keras.utils.set_random_seed`` repeats.
        steps_per_epoch: Batches an epoch (``None``: one pass).
        validation_split: The fraction of the arrays, their last rows, kept for validation
            (taken before shuffling); ignored when ``validation_data`` is given, as in ``fit``.
        validation_data: ``(x, y)``, ``(x, y, sample_weight)``, or data of any kind above.
        validation_batch_size: Validation batch size, arrays only (default ``batch_size``).
        validation_steps: Validation batches an evaluation (``None``: one pass).
        tensorflow: Also build the ``tf.data`` datasets (the TensorFlow backend, and ``fit``);
            without it TensorFlow is never imported.

    Returns:
        The prepared :class:`Inputs`.

    Raises:
        DataError: Data or an option ``fit`` refuses, or that trainways cannot honour (one
            line naming the value and what to do).
    """
    kind = kind_of(x, "x")
    if shuffle not in (True, False):
        raise DataError(f"shuffle must be True or False, got {shuffle!r}")
    if validation_split and validation_data is None:
        if kind != "arrays":
            raise DataError(
                f"validation_split={validation_split} splits arrays, x is a {_NAMES[kind]}: "
                "pass validation_data instead"
            )
        (x, y, sample_weight), validation_data = _split((x, y, sample_weight), validation_split)
    if kind == "arrays":
        prepared = _arrays(
            x,
            y,
            sample_weight,
            class_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            steps=steps_per_epoch,
            tensorflow=tensorflow,
        )
    else:
        _refuse_array_options("x", kind, y=y, sample_weight=sample_weight, batch_size=batch_size)
        prepared = _other(
            x,
            kind,
            class_weight,
            shuffle=shuffle,
            seed=seed,
            steps=steps_per_epoch,
            tensorflow=tensorflow,
        )
    train, numpy_train, fit_train, steps, clock, seed = prepared
    validation = numpy_validation = fit_validation = None
    if validation_data is not None:
        validation, numpy_validation, fit_validation = _validation(
            validation_data,
            batch_size=validation_batch_size or batch_size,
            explicit_batch_size=validation_batch_size,
            steps=validation_steps,
            tensorflow=tensorflow,
        )
    return Inputs(
        train=train,
        validation=validation,
        numpy=NumpyInputs(numpy_train, numpy_validation),
        fit_train=fit_train,
        fit_validation=fit_validation,
        steps_per_epoch=steps,
        validation_steps=validation_steps,
        clock=clock,
        kind=kind,
        resume="batch" if kind in ("arrays", "pydataset") else "epoch",
        seed=seed,
    )


def kind_of(x: Any, role: str = "x") -> Kind:
    """What kind of data ``x`` is, in the order ``fit``'s ``get_data_adapter`` checks.

    Raises:
        DataError: ``x`` is none of the kinds ``fit`` accepts.
    """
    if data_adapters.array_data_adapter.can_convert_arrays((x,)):
        return "arrays"
    if data_adapters.is_tf_dataset(x):
        return "tf.data"
    if isinstance(x, py_dataset_adapter.PyDataset):
        return "pydataset"
    if data_adapters.is_torch_dataloader(x):
        return "torch"
    if data_adapters.is_grain_dataset(x):
        return "grain"
    if isinstance(x, types.GeneratorType):
        return "generator"
    raise DataError(
        f"{role} of type {type(x).__name__} is not data Model.fit accepts: pass arrays, a "
        "tf.data.Dataset, a keras.utils.PyDataset, a generator, a torch DataLoader or a "
        "Grain dataset"
    )


def _split(arrays: tuple[Any, Any, Any], fraction: float) -> tuple[tuple[Any, ...], tuple]:
    """The first and last rows of ``(x, y, sample_weight)``, split as ``fit`` splits them
    (``keras.src.trainers.data_adapters.array_slicing.train_validation_split``)."""
    if not 0 < fraction < 1:
        raise DataError(f"validation_split must be in (0, 1), got {fraction}")
    x, y, sample_weight = arrays
    parts, n = batchable(x, y, sample_weight)
    split_at = math.floor(n * (1.0 - fraction))
    if split_at in (0, n):
        raise DataError(
            f"validation_split={fraction} of {n} rows leaves an empty split: pass more data "
            "or another fraction"
        )

    def rows(start: int, end: int) -> tuple[Any, Any, Any]:
        sliced = tree.map_structure(lambda part: part[start:end], parts)
        return (*sliced, None, None)[:3]  # type: ignore[return-value]

    return rows(0, split_at), rows(split_at, n)


def _fit_arrays(x: Any, y: Any, sample_weight: Any) -> tuple[tuple[Any, ...], int]:
    """:func:`batchable`, its floats cast to ``keras.config.floatx()`` as ``fit`` casts them."""
    parts, n = batchable(x, y, sample_weight)
    floatx = np.dtype(keras.config.floatx())

    def cast(array: np.ndarray) -> np.ndarray:
        return array.astype(floatx) if array.dtype.kind == "f" and array.dtype != floatx else array

    return tree.map_structure(cast, parts), n


def _seed(seed: int | None) -> int:
    if seed is None:
        return draw_seed()  # from NumPy's global state, which set_random_seed seeds
    if not 0 <= seed < 2**31:
        raise DataError(f"seed must be in [0, 2**31), got {seed!r}")
    return int(seed)


def _arrays(
    x: Any,
    y: Any,
    sample_weight: Any,
    class_weight: dict[int, float] | None,
    *,
    batch_size: int | None,
    shuffle: bool,
    seed: int | None,
    steps: int | None,
    tensorflow: bool,
) -> tuple[Any, ...]:
    """Training arrays through trainways' pipeline, weighted as ``ArrayDataAdapter`` weighs."""
    sample_weight = _sample_weights(y, sample_weight, class_weight)
    parts, n = _fit_arrays(x, y, sample_weight)
    if not batch_size:
        batch_size = math.ceil(n / steps) if steps else 32  # fit's default
    # A clock makes each epoch one pass, the epoch's: shuffled, or a piece of the pass.
    clock = EpochClock() if shuffle or steps else None
    seed = _seed(seed) if shuffle else None
    x, y, sample_weight = (*parts, None, None)[:3]
    options = {
        "sample_weight": sample_weight,
        "batch_size": batch_size,
        "shuffle": shuffle,
        "seed": seed,
        "clock": clock,
        "steps_per_epoch": steps,
    }
    train = make_dataset(x, y, **options) if tensorflow else None
    numpy_train = NumpyBatches(x, y, **options)
    epoch_steps = None
    if clock is not None:
        whole = pass_steps(n, batch_size)
        epoch_steps = min(steps, whole) if steps else whole
    return train, numpy_train, None, epoch_steps, clock, seed


def _sample_weights(y: Any, sample_weight: Any, class_weight: dict[int, float] | None) -> Any:
    """The sample weights ``ArrayDataAdapter`` would use: one array copied to every output,
    or ``class_weight`` looked up per label."""
    if class_weight is not None:
        if sample_weight is not None:
            raise DataError(
                "sample_weight and class_weight both weigh samples: pass one of them, as fit "
                "refuses both"
            )
        if y is None or tree.is_nested(y):
            raise DataError(
                "class_weight weighs the classes of one y array: pass sample_weight (one array "
                "per output) instead"
            )
        return data_adapter_utils.class_weight_to_sample_weights(y, class_weight)
    if sample_weight is None or not tree.is_nested(y):
        return sample_weight
    if isinstance(sample_weight, (list, tuple, dict)):
        try:
            tree.assert_same_structure(y, sample_weight)
        except ValueError:
            raise DataError(
                "sample_weight does not match y's structure: pass one array per output, "
                "arranged as y"
            ) from None
        return sample_weight
    shape = np.shape(sample_weight)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise DataError(
            f"one sample_weight array of shape {shape} for several outputs: give it shape "
            "(n,), or pass one array per output"
        )
    return tree.map_structure(lambda _: sample_weight, y)


def _refuse_array_options(
    role: str, kind: Kind, *, y: Any, sample_weight: Any, batch_size: int | None
) -> None:
    name = _NAMES[kind]
    if y is not None:
        raise DataError(
            f"y is for arrays, {role} is a {name}: pass y=None and let it yield (x, y) batches"
        )
    if sample_weight is not None:
        raise DataError(
            f"sample_weight is for arrays, {role} is a {name}: pass sample_weight=None and let "
            "it yield (x, y, sample_weight) batches"
        )
    if batch_size is not None:
        raise DataError(
            f"batch_size={batch_size} is for arrays, {role} is a {name}, which makes its own "
            "batches: pass batch_size=None"
        )


def _adapter(x: Any, role: str, **options: Any) -> Any:
    """Keras's own data adapter for ``x``; its refusals as one-line :class:`DataError`."""
    try:
        return data_adapters.get_data_adapter(x, shuffle=False, **options)
    except (ValueError, NotImplementedError) as error:
        raise DataError(f"{role}: {' '.join(str(error).split())}") from error


def _other(
    x: Any,
    kind: Kind,
    class_weight: dict[int, float] | None,
    *,
    shuffle: bool,
    seed: int | None,
    steps: int | None,
    tensorflow: bool,
) -> tuple[Any, ...]:
    """Training data of any kind but arrays, through Keras's adapter."""
    clock = None
    fit_x = x
    if kind == "pydataset":
        try:
            batches = x.num_batches
        except NotImplementedError as error:
            raise DataError(f"x: {' '.join(str(error).split())}") from error
        if shuffle and batches is not None:
            if steps is not None and steps < batches:
                raise DataError(
                    f"steps_per_epoch={steps} splits each shuffled pass of the PyDataset's "
                    f"{batches} batches over epochs: pass shuffle=False (shuffle in the "
                    "PyDataset), or steps_per_epoch=None"
                )
            clock, seed, steps = EpochClock(), _seed(seed), batches
        else:
            seed = None
        # Class weights too go into the wrapper, so that fit needs nothing more than it.
        fit_x = x = OrderedPyDataset(x, seed=seed, clock=clock, class_weight=class_weight)
        class_weight = None
    else:
        seed = None  # fit does not shuffle these; nor does trainways
    adapter = _adapter(x, "x", class_weight=class_weight, steps_per_epoch=steps)
    passes = _Passes(adapter)
    if kind == "generator":
        fit_x = _replay(adapter)
    elif kind == "tf.data":
        fit_x = None
    train = _tf_dataset(adapter, passes) if tensorflow else None
    return train, passes, fit_x, steps, clock, seed


def _validation(
    data: Any,
    *,
    batch_size: int | None,
    explicit_batch_size: int | None,
    steps: int | None,
    tensorflow: bool,
) -> tuple[Any, Any, Any]:
    """The validation dataset, its NumPy passes and what ``fit`` takes, from ``data``."""
    try:
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    except ValueError:
        raise DataError(
            f"validation_data is a tuple of {len(data)}: pass (x, y), (x, y, sample_weight) "
            "or a dataset"
        ) from None
    kind = kind_of(x, "validation_data")
    if kind == "arrays":
        parts, n = _fit_arrays(x, y, sample_weight)
        if not batch_size:
            batch_size = math.ceil(n / steps) if steps else 32
        options = {"batch_size": batch_size, "shuffle": False}
        x, y, sample_weight = (*parts, None, None)[:3]
        numpy = NumpyBatches(x, y, sample_weight=sample_weight, **options)
        dataset = None
        if tensorflow:
            dataset = make_dataset(x, y, sample_weight=sample_weight, **options)
            dataset = dataset.take(steps) if steps else dataset
        return dataset, _Take(numpy, steps) if steps else numpy, None
    _refuse_array_options(
        "validation_data", kind, y=y, sample_weight=sample_weight, batch_size=explicit_batch_size
    )
    adapter = _adapter(x, "validation_data", steps_per_epoch=steps)
    passes = _Passes(adapter, steps)
    fit_x = None if kind == "tf.data" else _replay(adapter) if kind == "generator" else x
    return (_tf_dataset(adapter, passes) if tensorflow else None), passes, fit_x


class OrderedPyDataset(keras.utils.PyDataset):
    """A user's ``PyDataset`` as trainways gives it to ``fit`` (unshuffled) and its adapters.

    With a ``clock``, index ``i`` of an epoch is the user's batch ``epoch_order(num_batches,
    seed, epoch)[i]``, the epoch the clock says: the order ``fit``'s shuffle would randomise,
    the same for every method and for a run resumed at any batch. With ``class_weight``, a
    ``(x, y)`` batch gets its sample weights, as Keras's adapter adds them. ``on_epoch_begin``
    and ``on_epoch_end`` are forwarded; workers and queue size are the user's.

    Args:
        dataset: The user's PyDataset.
        seed: The shuffle seed (with ``clock``).
        clock: The epoch whose order to visit, or ``None`` to keep the user's order.
        class_weight: ``{class: weight}``, or ``None``.
    """

    def __init__(
        self,
        dataset: keras.utils.PyDataset,
        *,
        seed: int | None = None,
        clock: EpochClock | None = None,
        class_weight: dict[int, float] | None = None,
    ) -> None:
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset, self.seed, self.clock, self.class_weight = dataset, seed, clock, class_weight
        self._order: tuple[int | None, np.ndarray | None] = (None, None)

    @property
    def num_batches(self) -> int | None:
        """The user's number of batches (``None``: endless)."""
        return self.dataset.num_batches

    def order(self) -> np.ndarray:
        """The user's batch indices in the order of the clock's epoch."""
        epoch, order = self._order
        if order is None or epoch != self.clock.epoch:
            epoch = self.clock.epoch
            order = epoch_order(self.num_batches, self.seed, epoch)
            self._order = (epoch, order)  # one assignment: safe for the enqueuer's threads
        return order

    def __getitem__(self, index: int) -> Any:
        if self.clock is not None:
            index = int(self.order()[index])
        batch = self.dataset[index]
        if self.class_weight is None or not isinstance(batch, (tuple, list)):
            return batch
        if len(batch) == 3:
            raise DataError(
                "the PyDataset yields sample weights and class_weight was given: pass one"
            )
        if len(batch) != 2:
            return batch
        weights = data_adapter_utils.class_weight_to_sample_weights(batch[1], self.class_weight)
        return (*batch, weights)

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


def _as_tuple(batch: Any) -> tuple[Any, ...]:
    """A batch as ``fit`` unpacks it (``unpack_x_y_sample_weight``), always a tuple."""
    if isinstance(batch, tuple):
        return batch
    return tuple(batch) if isinstance(batch, list) else (batch,)


class _Passes:
    """One pass of a Keras adapter's NumPy batches per ``iter()``, as tuples, between the
    adapter's epoch hooks (a PyDataset's ``on_epoch_begin`` / ``on_epoch_end``), at most
    ``steps`` batches."""

    def __init__(self, adapter: Any, steps: int | None = None) -> None:
        self.adapter, self.steps, self._open = adapter, steps, False

    def cardinality(self) -> int:
        """Batches in a pass, ``-2`` (``tf.data``'s unknown) when the adapter does not know."""
        batches = self.adapter.num_batches
        if batches is None:
            return self.steps or -2
        return min(batches, self.steps or batches)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self._open:  # the last pass was left unfinished: end its epoch first, as fit does
            self.adapter.on_epoch_end()
        self.adapter.on_epoch_begin()
        self._open = True
        for batch in itertools.islice(self.adapter.get_numpy_iterator(), self.steps):
            yield _as_tuple(batch)
        self.adapter.on_epoch_end()
        self._open = False


class _Take:
    """At most ``steps`` batches of each pass over ``batches``."""

    def __init__(self, batches: Iterable[Any], steps: int) -> None:
        self._batches, self.steps = batches, steps

    def cardinality(self) -> int:
        return min(self._batches.cardinality(), self.steps)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(self._batches, self.steps)


def _replay(adapter: Any) -> Iterator[Any]:
    """A generator over the user's whole generator, for ``fit``: Keras's adapter has already
    taken its first batches (to learn their shapes), and gives them back first."""
    yield from adapter.generator()


def _tf_dataset(adapter: Any, passes: _Passes) -> Any:
    """The adapter's ``tf.data.Dataset`` of batch tuples.

    A PyDataset's is made from ``passes`` (with the element spec Keras infers), so that its
    epoch hooks run around every pass as ``fit`` runs them.
    """
    import tensorflow as tf

    dataset = adapter.get_tf_dataset()
    if isinstance(adapter, py_dataset_adapter.PyDatasetAdapter):
        signature = _as_tuple(dataset.element_spec)
        dataset = tf.data.Dataset.from_generator(lambda: iter(passes), output_signature=signature)
        return dataset.prefetch(tf.data.AUTOTUNE)
    if not isinstance(dataset.element_spec, tuple):
        dataset = dataset.map(lambda *parts: parts)
    return dataset.take(passes.steps) if passes.steps else dataset
