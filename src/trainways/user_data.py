"""Your own data on the command line: ``--data FILE.py:FUNCTION``.

``FUNCTION()``, a function without arguments in ``FILE.py``, returns ``(train, validation)``:

* ``train`` is what ``Model.fit`` takes: a tuple ``(x, y)`` or ``(x, y, sample_weight)`` of
  arrays (``x`` and ``y`` any nested structure of arrays: a dict for a model with named inputs,
  one array per output...), arrays ``x`` alone (a model that needs no ``y``), or data that
  yields such batches itself: a ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a PyTorch
  ``DataLoader`` or a Grain dataset;
* ``validation`` is the same kinds (what ``fit`` takes as ``validation_data``), or ``None``.

trainways calls the function once a process, then prepares what it returned for every training
(each method of ``agree`` included) exactly as ``trainways.fit`` prepares ``x`` and
``validation_data`` (:func:`trainways.data.prepare_inputs`): arrays are batched by
``--batch-size`` and shuffled in an order that is a pure function of the seed and the epoch,
the same for every method, so that a resumed run continues the unbroken one's batches. A Python
generator is refused: it can be read only once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainways.config import ConfigError
from trainways.data import DataError, Inputs, batchable, kind_of, prepare_inputs
from trainways.steps import describe_error, load_function


@dataclass(frozen=True)
class UserData:
    """What a data function returned, checked.

    Attributes:
        source: The function, ``FILE.py:FUNCTION``.
        x, y, sample_weight: The training data as ``Model.fit``'s ``x``, ``y`` and
            ``sample_weight`` (``y`` and ``sample_weight`` ``None`` unless ``x`` is arrays).
        validation: What ``fit`` takes as ``validation_data``, or ``None``.
        kind: What ``x`` is (:func:`trainways.data.kind_of`: ``"arrays"``, ``"tf.data"``,
            ``"pydataset"``, ``"torch"``, ``"grain"``).
        samples: Training samples (arrays only; ``None`` for data that makes its own batches).
        validation_samples: Validation samples, likewise.
    """

    source: str
    x: Any
    y: Any
    sample_weight: Any
    validation: Any
    kind: str
    samples: int | None
    validation_samples: int | None

    @property
    def arrays(self) -> bool:
        """Whether the training data is arrays, which trainways batches and shuffles."""
        return self.kind == "arrays"

    @property
    def validation_arrays(self) -> bool:
        """Whether the validation data is arrays."""
        return self.validation_samples is not None

    def describe(self) -> str:
        """One line: the function, what it returned, how many samples."""
        train = f"{self.samples:,} training samples" if self.samples is not None else self.kind
        if self.validation is None:
            validation = "no validation data"
        elif self.validation_samples is not None:
            validation = f"{self.validation_samples:,} validation samples"
        else:
            validation = "validation data"
        return f"{self.source} ({train}, {validation})"

    def inputs(self, *, batch_size: int, seed: int, first_epoch: int = 0) -> Inputs:
        """The data prepared for the three methods, as ``trainways.fit`` prepares it.

        Args:
            batch_size: Samples a batch, for arrays (data that makes its own batches keeps
                them).
            seed: The shuffle seed.
            first_epoch: The epoch the first pass is (a resumed run's next epoch).

        Raises:
            DataError: ``fit`` would refuse the data (one line saying why).
        """
        prepared = prepare_inputs(
            self.x,
            self.y,
            sample_weight=self.sample_weight,
            batch_size=batch_size if self.arrays else None,
            shuffle=True,
            seed=seed,
            validation_data=self.validation,
            validation_batch_size=batch_size if self.validation_arrays else None,
            tensorflow=True,
        )
        if prepared.clock is not None:
            prepared.clock.set_epoch(first_epoch)
        return prepared


def load_user_data(source: str) -> UserData:
    """Call the data function ``source`` (``FILE.py:FUNCTION``) and check what it returned.

    Raises:
        ConfigError: The file or function does not load, or the function fails (one line).
        DataError: It returned something other than ``(train, validation)`` of data ``fit``
            takes, or a generator.
    """
    function = load_function(source, role="source")
    try:
        returned = function()
    except Exception as error:  # the user's code: its error in one line, no traceback
        raise ConfigError(
            f"data {source!r} failed: {describe_error(error)}", keys=("source",)
        ) from None
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        got = (
            f"a {type(returned).__name__} of {len(returned)}"
            if isinstance(returned, (tuple, list))
            else type(returned).__name__
        )
        raise DataError(
            f"data {source!r} returned {got}, not (train, validation): return a pair, its "
            "validation None to train without (docs/data.md)"
        )
    train, validation = returned
    x, y, sample_weight = _split(train, source)
    kind = _kind(x, source, "train")
    samples = batchable(x, y, sample_weight)[1] if kind == "arrays" else None
    validation_samples = None
    if validation is not None:
        vx, vy, vw = _split(validation, source, validation=True)
        if _kind(vx, source, "validation") == "arrays":
            if vy is None:  # most likely (x, y) returned for (train, validation)
                raise DataError(
                    f"data {source!r} returned validation arrays without y: return "
                    "((x, y), (x_val, y_val)), or ((x, y), None) to train without validation"
                )
            validation_samples = batchable(vx, vy, vw)[1]
    return UserData(source, x, y, sample_weight, validation, kind, samples, validation_samples)


def _split(data: Any, source: str, *, validation: bool = False) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of a tuple of arrays, else ``(data, None, None)``.

    A tuple is ``(x, y)`` or ``(x, y, sample_weight)`` (as ``fit``'s ``validation_data``; a
    list too there); anything else is ``x``.
    """
    role = "validation" if validation else "train"
    if not isinstance(data, tuple) and not (validation and isinstance(data, list)):
        return data, None, None
    if not 1 <= len(data) <= 3:
        raise DataError(
            f"data {source!r}: {role} is a tuple of {len(data)}: return (x, y) or "
            "(x, y, sample_weight)"
        )
    x, y, sample_weight = (*data, None, None)[:3]
    if kind_of(x, f"{role}'s x") != "arrays":
        raise DataError(
            f"data {source!r}: {role} is a tuple whose x is a {type(x).__name__}: return the "
            "dataset itself, yielding (x, y) batches, or a tuple of arrays"
        )
    return x, y, sample_weight


def _kind(x: Any, source: str, role: str) -> str:
    try:
        kind = kind_of(x, role)
    except DataError as error:
        raise DataError(f"data {source!r}: {error}") from None
    if kind == "generator":
        raise DataError(
            f"data {source!r}: {role} is a Python generator, which can be read only once, and "
            "trainways reads the data once to check the model and once a training: return a "
            "keras.utils.PyDataset or a tf.data.Dataset instead"
        )
    return kind
