"""Load the Reuters data with the conventions of ``keras.datasets.reuters``, and pad it.

:func:`load_reuters` finds the data (an explicit source or ``$TRAINWAYS_DATA``, our cache,
Keras's cache, a download) and then applies exactly the conventions of
``keras.datasets.reuters.load_data`` (shuffle, start char, index offset, ``maxlen``,
``num_words``/``skip_top`` with OOV, split). :func:`pad` is ``keras.utils.pad_sequences``
with its defaults, without importing TensorFlow.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainways.data.cache import _latest_cache, _load_sgml_cached, default_cache_dir
from trainways.data.errors import _HINT, DataError
from trainways.data.identity import KERAS_REUTERS, Fingerprint, fingerprint_of
from trainways.data.keras_npz import (
    _download_keras_reuters,
    _keras_cached_npz,
    _keras_home,
    _load_npz_file,
)
from trainways.data.sgml import Corpus, tokenize

PAD_ID = 0
START_ID = 1
OOV_ID = 2
INDEX_FROM = 3

ENV_DATA = "TRAINWAYS_DATA"


# -------------------------------------------------------------------------------- load


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
            Token ids ready for :func:`pad`.
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


def _check_options(
    num_words: int | None,
    skip_top: int,
    maxlen: int | None,
    test_split: float,
    start_char: int | None,
    oov_char: int | None,
    index_from: int,
) -> None:
    checks = [
        (
            num_words is not None and num_words < 1,
            f"num_words must be >= 1 or None, got {num_words}",
        ),
        (skip_top < 0, f"skip_top must be >= 0, got {skip_top}"),
        (maxlen is not None and maxlen < 1, f"maxlen must be >= 1 or None, got {maxlen}"),
        (not 0.0 < test_split < 1.0, f"test_split must be in (0, 1), got {test_split}"),
        (start_char is not None and start_char < 0, f"start_char must be >= 0, got {start_char}"),
        (oov_char is not None and oov_char < 0, f"oov_char must be >= 0, got {oov_char}"),
        (index_from < 0, f"index_from must be >= 0, got {index_from}"),
    ]
    for bad, message in checks:
        if bad:
            raise DataError(message)


def _check_vocabulary(num_words: int | None, skip_top: int, index_from: int, words: int) -> None:
    """Refuse ``num_words``/``skip_top`` that leave no word id for the model to learn from.

    Word ids run from ``index_from + 1`` (the most frequent word) to ``index_from + words``;
    lower ids are padding, start and OOV. Ids below ``skip_top`` or from ``num_words`` on
    become OOV, so with none left a run would train a majority-class model on OOV alone.
    """
    first, last = index_from + 1, index_from + words
    usable = min(last + 1, num_words or last + 1) - max(first, skip_top)
    if usable > 0:
        return
    ids = f"the {words:,} words have ids {first}..{last}"
    if num_words is not None and num_words <= first:
        fix = f"choose num_words > {first}, or None for all words"
    elif skip_top > last:
        fix = f"choose skip_top <= {last}"
    else:
        fix = "choose num_words > skip_top"
    given = [f"num_words {num_words}"] if num_words is not None else []
    given += [f"skip_top {skip_top}"] if skip_top else []
    raise DataError(
        f"{' with '.join(given)} leaves 0 usable words ({ids}; lower ids are padding, start "
        f"and OOV): {fix}"
    )


def _resolve(source: str | os.PathLike[str] | None, cache_dir: Path) -> Corpus:
    if source is not None:
        return _load_path(Path(source), cache_dir, origin="")
    env = os.environ.get(ENV_DATA)
    if env:
        return _load_path(Path(env), cache_dir, origin=f" (from ${ENV_DATA})")
    corpus = _latest_cache(cache_dir)
    if corpus is not None:
        return corpus
    keras_npz = _keras_cached_npz()
    if keras_npz is not None:
        return _load_npz_file(keras_npz)
    try:
        downloaded = _download_keras_reuters()
    except Exception as exc:  # any failure here means "no data", reported below
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(
            f"no Reuters data found (not in {cache_dir}, not in {_keras_home() / 'datasets'}, "
            f"download failed: {reason}): pass --data PATH (a Reuters-21578 directory or "
            f"reuters.npz) or set {ENV_DATA}"
        ) from exc
    return _load_npz_file(downloaded, origin=f"Keras reuters.npz downloaded to {downloaded}")


def _load_path(path: Path, cache_dir: Path, origin: str) -> Corpus:
    path = path.expanduser()
    if not path.exists():
        raise DataError(f"{path}{origin} does not exist: {_HINT}")
    if path.is_dir():
        return _load_sgml_cached(path, cache_dir)
    return _load_npz_file(path)


def _flatten_apply(
    corpus: Corpus,
    *,
    num_words: int | None,
    skip_top: int,
    maxlen: int | None,
    seed: int,
    start_char: int | None,
    oov_char: int | None,
    index_from: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras's load conventions, vectorised over the flat token array.

    Returns:
        ``(ids, offsets, labels)`` for all wires in shuffled order after ``maxlen``.
    """
    n = len(corpus.labels)
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    src_offsets = corpus.offsets
    lengths = np.diff(src_offsets)[indices]
    labels = np.asarray(corpus.labels, dtype=np.int64)[indices]

    # Gather the shuffled wires and make room for the start char in one pass.
    extra = 0 if start_char is None else 1
    new_lengths = lengths + extra
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(new_lengths, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.int64)
    is_word = np.ones(len(ids), dtype=bool)
    if extra:
        is_word[offsets[:-1]] = False
        ids[offsets[:-1]] = start_char
    word_starts = np.repeat(src_offsets[indices] - offsets[:-1] - extra, lengths)
    positions = np.flatnonzero(is_word)
    ids[positions] = corpus.tokens[word_starts + positions] + index_from

    if maxlen:
        # keras.utils.python_utils.remove_long_seq keeps len(x) < maxlen.
        keep = new_lengths < maxlen
        ids = ids[np.repeat(keep, new_lengths)]
        new_lengths = new_lengths[keep]
        labels = labels[keep]
        offsets = np.zeros(len(new_lengths) + 1, dtype=np.int64)
        np.cumsum(new_lengths, out=offsets[1:])

    in_range = ids >= skip_top
    if num_words is not None:
        in_range &= ids < num_words
    if oov_char is not None:
        ids[~in_range] = oov_char
    elif not in_range.all():
        seq_of = np.repeat(np.arange(len(new_lengths)), new_lengths)
        new_lengths = np.bincount(seq_of[in_range], minlength=len(new_lengths))
        ids = ids[in_range]
        offsets = np.zeros(len(new_lengths) + 1, dtype=np.int64)
        np.cumsum(new_lengths, out=offsets[1:])
    return ids, offsets, labels


def _object_array(ids: list[int], offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    # Filled one by one: np.array(list_of_lists, dtype=object) would make a 2-D array
    # whenever all lists happen to have the same length.
    out = np.empty(hi - lo, dtype=object)
    bounds = offsets.tolist()
    for i in range(lo, hi):
        out[i - lo] = ids[bounds[i] : bounds[i + 1]]
    return out


def load_reuters(
    source: str | os.PathLike[str] | None = None,
    *,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    test_split: float = 0.2,
    seed: int = 113,
    start_char: int | None = START_ID,
    oov_char: int | None = OOV_ID,
    index_from: int = INDEX_FROM,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Reuters:
    """Load the Reuters topic data with the conventions of ``keras.datasets.reuters``.

    Source, in order: ``source`` (a Reuters-21578 SGML directory, a Keras-format
    ``reuters.npz`` with ``reuters_word_index.json`` beside it, or one of our cache files);
    ``$TRAINWAYS_DATA``; the most recently built dataset in the cache; Keras's cached
    ``reuters.npz``; a download through ``keras.utils.get_file``. SGML builds are cached
    in ``cache_dir`` keyed by the files' names, sizes and mtimes.

    Then, exactly as Keras: ``RandomState(seed)`` shuffles all wires; each sequence gets
    ``start_char`` and its ids are offset by ``index_from``; sequences with
    ``len >= maxlen`` (start char included) are dropped; ids outside
    ``[skip_top, num_words)`` become ``oov_char`` (or are removed if it is None; this also
    applies to ``start_char``); the first ``int(n * (1 - test_split))`` wires are train.

    One deliberate difference: with ``num_words=None`` Keras sets ``num_words`` to the
    largest id and so maps that single id to OOV, contrary to its docstring ("If None,
    all words are kept"). Here every word is kept.

    Args:
        source: Explicit data path, see above.
        num_words: Keep ids below this (after offset); None keeps all.
        skip_top: Ids below this become OOV.
        maxlen: Drop sequences at least this long; None keeps all.
        test_split: Fraction of wires for the test split, in (0, 1).
        seed: Shuffle seed.
        start_char: Id put at the start of every sequence, or None.
        oov_char: Id for filtered words, or None to drop them.
        index_from: Offset added to word ranks.
        cache_dir: Cache directory; default :func:`default_cache_dir`.

    Returns:
        The split data with its word index, topic names and provenance.

    Raises:
        DataError: Bad options, or no usable data (message names the path and the fix).
    """
    _check_options(num_words, skip_top, maxlen, test_split, start_char, oov_char, index_from)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    corpus = _resolve(source, cache)
    max_word_id = int(corpus.tokens.max()) if len(corpus.tokens) else 0
    _check_vocabulary(num_words, skip_top, index_from, max(len(corpus.word_index), max_word_id))
    ids, offsets, labels = _flatten_apply(
        corpus,
        num_words=num_words,
        skip_top=skip_top,
        maxlen=maxlen,
        seed=seed,
        start_char=start_char,
        oov_char=oov_char,
        index_from=index_from,
    )
    n = len(labels)
    split = int(n * (1 - test_split))
    id_list = ids.tolist()
    return Reuters(
        x_train=_object_array(id_list, offsets, 0, split),
        y_train=labels[:split].copy(),
        x_test=_object_array(id_list, offsets, split, n),
        y_test=labels[split:].copy(),
        word_index=corpus.word_index,
        topics=corpus.topics,
        source=corpus.source,
        num_words=num_words,
        skip_top=skip_top,
        maxlen=maxlen,
        test_split=test_split,
        seed=seed,
        start_char=start_char,
        oov_char=oov_char,
        index_from=index_from,
        max_word_id=max_word_id,
        fingerprint=fingerprint_of(corpus),
    )


# ------------------------------------------------------------------------ model inputs


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
