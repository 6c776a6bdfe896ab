"""The :class:`Reuters` data as loaded: splits, vocabulary, the text encoder, and :func:`describe`.

:class:`Reuters` holds what ``keras.datasets.reuters.load_data`` returns plus the word index,
topic names and loading options, so that it can encode new text exactly as the wires were
encoded (:meth:`Reuters.encode`) and save that encoder with a trained model
(:meth:`Reuters.encoder_state`). :mod:`trainways.data.loading` builds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainways.data.errors import DataError
from trainways.data.identity import KERAS_REUTERS, Fingerprint
from trainways.data.sgml import tokenize

# Keras's reserved ids: padding, the start of a sequence, out-of-vocabulary; word ranks start
# after them.
PAD_ID = 0
START_ID = 1
OOV_ID = 2
INDEX_FROM = 3


@dataclass(frozen=True, eq=False)
class Reuters:
    """The Reuters topic data, split and encoded like ``keras.datasets.reuters.load_data``.

    Attributes:
        x_train: 1-D object array of ``list[int]`` (start char, ids offset by ``index_from``).
        y_train: int64 topic labels.
        x_test: As ``x_train``.
        y_test: As ``y_train``.
        word_index: Word → frequency rank from 1 (no ``index_from`` offset), as Keras's
            ``get_word_index()``.
        topics: Topic name of each label id.
        source: Where the data came from, for humans.
        num_words, skip_top, maxlen, test_split, seed, start_char, oov_char, index_from:
            The options it was loaded with.
        max_word_id: Largest raw word id in the data (for :attr:`vocab_size`).
        fingerprint: What the full corpus is, before the options (see
            :mod:`trainways.data.identity`); ``None`` for an encoder without data.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    word_index: dict[str, int]
    topics: tuple[str, ...]
    source: str
    num_words: int | None = None
    skip_top: int = 0
    maxlen: int | None = None
    test_split: float = 0.2
    seed: int = 113
    start_char: int | None = START_ID
    oov_char: int | None = OOV_ID
    index_from: int = INDEX_FROM
    max_word_id: int = field(default=0, repr=False)
    fingerprint: Fingerprint | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        """Number of topics (the classifier's output size)."""
        return len(self.topics)

    @property
    def vocab_size(self) -> int:
        """Embedding input size covering every id that can occur in either split.

        ``num_words`` if given, else ``len(word_index) + index_from + 1``. Unlike the
        tutorial's ``x_train.max() + 1`` this also covers ids seen only in the test split
        or produced by :meth:`encode`.
        """
        specials = [c + 1 for c in (self.start_char, self.oov_char) if c is not None]
        if self.num_words is not None:
            return max([self.num_words, *specials])
        top = max(len(self.word_index), self.max_word_id) + self.index_from + 1
        return max([top, *specials])

    def _keep(self, token_id: int) -> bool:
        return token_id >= self.skip_top and (self.num_words is None or token_id < self.num_words)

    def encode(self, text: str) -> list[int]:
        """Encode raw English text exactly as the loaded wires were encoded.

        Same tokenizer, ``start_char``, ``index_from`` offset; unknown words and ids
        outside ``[skip_top, num_words)`` become ``oov_char`` (or are dropped when
        ``oov_char`` is None, as Keras does).

        Args:
            text: Raw text.

        Returns:
            Token ids ready for :func:`trainways.data.pad`.
        """
        ids: list[int] = [] if self.start_char is None else [self.start_char]
        ids += [
            self.word_index[w] + self.index_from if w in self.word_index else -1
            for w in tokenize(text)
        ]
        out: list[int] = []
        for token_id in ids:
            if token_id >= 0 and self._keep(token_id):
                out.append(token_id)
            elif self.oov_char is not None:
                out.append(self.oov_char)
        return out

    _ENCODING_FIELDS = ("num_words", "skip_top", "start_char", "oov_char", "index_from")

    def encoder_state(self) -> dict[str, Any]:
        """What :meth:`encode` needs, as JSON-ready data (saved with a trained model)."""
        state: dict[str, Any] = {name: getattr(self, name) for name in self._ENCODING_FIELDS}
        return {"word_index": self.word_index, "topics": list(self.topics), **state}

    @classmethod
    def from_encoder_state(cls, state: dict[str, Any], *, source: str) -> Reuters:
        """A split-less ``Reuters`` that encodes text as the one :meth:`encoder_state` saved.

        Raises:
            DataError: ``state`` lacks a field.
        """
        try:
            options = {name: state[name] for name in cls._ENCODING_FIELDS}
            word_index, topics = dict(state["word_index"]), tuple(state["topics"])
        except (KeyError, TypeError) as error:
            raise DataError(f"encoder state from {source} lacks {error}: retrain the run") from None
        empty = np.empty(0, dtype=object)
        labels = np.empty(0, dtype=np.int64)
        return cls(
            x_train=empty,
            y_train=labels,
            x_test=empty,
            y_test=labels,
            word_index=word_index,
            topics=topics,
            source=source,
            **options,
        )

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into words for humans.

        Padding and the start char are omitted; OOV and unknown ids show as ``?``.

        Args:
            ids: Token ids as loaded or encoded.

        Returns:
            Space-separated words.
        """
        reverse = {i + self.index_from: w for w, i in self.word_index.items()}
        words = []
        for token_id in map(int, ids):
            if token_id == PAD_ID or token_id == self.start_char:
                continue
            words.append(reverse.get(token_id, "?") if token_id != self.oov_char else "?")
        return " ".join(words)


def describe(reuters: Reuters) -> dict[str, Any]:
    """Statistics for ``trainways data info`` (plain, JSON-serialisable types).

    Args:
        reuters: Loaded data.

    Returns:
        Source, sizes, vocabulary, sequence length summary, the ten largest topics, and the
        full corpus's fingerprint (``None`` if unknown) with whether it is Keras's dataset.
    """

    lengths = np.array(
        [len(s) for s in itertools.chain(reuters.x_train, reuters.x_test)], dtype=np.int64
    )
    train_counts = np.bincount(reuters.y_train, minlength=reuters.num_classes)
    test_counts = np.bincount(reuters.y_test, minlength=reuters.num_classes)
    total = train_counts + test_counts
    top = sorted(range(reuters.num_classes), key=lambda i: (-int(total[i]), i))[:10]
    has = len(lengths) > 0
    return {
        "source": reuters.source,
        "wires": len(lengths),
        "train": len(reuters.y_train),
        "test": len(reuters.y_test),
        "num_topics": reuters.num_classes,
        "vocabulary": len(reuters.word_index),
        "vocab_size": reuters.vocab_size,
        "length_min": int(lengths.min()) if has else 0,
        "length_median": float(np.median(lengths)) if has else 0.0,
        "length_mean": float(lengths.mean()) if has else 0.0,
        "length_max": int(lengths.max()) if has else 0,
        "fingerprint": reuters.fingerprint.to_dict() if reuters.fingerprint else None,
        "keras_dataset": reuters.fingerprint == KERAS_REUTERS,
        "top_topics": [
            {
                "label": i,
                "topic": reuters.topics[i],
                "train": int(train_counts[i]),
                "test": int(test_counts[i]),
                "total": int(total[i]),
            }
            for i in top
        ],
    }
