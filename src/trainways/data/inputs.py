"""What the model reads: :func:`pad` (``keras.utils.pad_sequences`` without TensorFlow), and the
padded train and validation arrays of a run (:func:`model_inputs`, :func:`held_out_wires`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainways.data.errors import DataError
from trainways.data.reuters import Reuters


def pad(sequences: Sequence[Sequence[int]], max_len: int | None = 300) -> np.ndarray:
    """Pre-pad and pre-truncate to ``max_len`` with 0, as ``keras.utils.pad_sequences``.

    Same result as ``pad_sequences(sequences, maxlen=max_len)`` with its defaults
    (int32, ``padding="pre"``, ``truncating="pre"``, ``value=0``), without importing
    TensorFlow.

    Args:
        sequences: Sequences of ids (lists, arrays, or an object array of lists).
        max_len: Output width; None means the longest sequence.

    Returns:
        An int32 array of shape ``(len(sequences), max_len)``.
    """
    lengths = [len(s) for s in sequences]
    if max_len is None:
        max_len = max(lengths, default=0)
    if max_len < 1:
        raise DataError(f"max_len must be >= 1 or None, got {max_len}")
    out = np.zeros((len(lengths), max_len), dtype=np.int32)
    for row, (seq, length) in enumerate(zip(sequences, lengths, strict=True)):
        if length:
            tail = seq[-max_len:]
            out[row, max_len - min(length, max_len) :] = tail
    return out


@dataclass(frozen=True)
class ModelInputs:
    """The padded ids and labels a run trains and validates on.

    Attributes:
        x_train, y_train: What the model trains on.
        x_val, y_val: What each epoch's validation scores: the test split, or with a validation
            split the last wires of the training split.
        held_out: Whether the validation wires were carved from the training split (the test
            split then stays unseen).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    held_out: bool


def held_out_wires(train_wires: int, validation_split: float | None) -> int:
    """How many of ``train_wires`` training wires a validation split holds out (the last ones).

    Raises:
        DataError: The split holds no wire out (a fraction below 1 always leaves some to train).
    """
    held_out = int(train_wires * validation_split) if validation_split else 0
    if validation_split and held_out == 0:
        raise DataError(
            f"validation_split {validation_split!r} of {train_wires} training wires leaves "
            f"0 to validate: choose a fraction of at least {1 / train_wires:.2g}"
        )
    return held_out


def model_inputs(
    reuters: Reuters, *, max_len: int, validation_split: float | None = None
) -> ModelInputs:
    """Pad the wires to ``max_len`` and choose the validation wires.

    With ``validation_split`` the last ``floor(len * validation_split)`` training wires validate
    (Keras's ``fit(validation_split=...)`` takes the same ones; Keras's loader has already
    shuffled the wires with its seed 113, so they are a random sample) and the rest train.
    Without it the test split validates, as in the tutorial.

    Raises:
        DataError: The split holds no wire out (:func:`held_out_wires`).
    """
    x = pad(reuters.x_train, max_len)
    y = np.asarray(reuters.y_train)
    if validation_split is None:
        return ModelInputs(x, y, pad(reuters.x_test, max_len), np.asarray(reuters.y_test), False)
    cut = len(x) - held_out_wires(len(x), validation_split)
    return ModelInputs(x[:cut], y[:cut], x[cut:], y[cut:], True)
