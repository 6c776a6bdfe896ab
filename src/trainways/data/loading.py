"""Load the Reuters data with the conventions of ``keras.datasets.reuters``.

:func:`load_reuters` finds the data (an explicit source or ``$TRAINWAYS_DATA``, our cache,
Keras's cache, a download) and then applies exactly the conventions of
``keras.datasets.reuters.load_data`` (shuffle, start char, index offset, ``maxlen``,
``num_words``/``skip_top`` with OOV, split), returning a :class:`~trainways.data.reuters.Reuters`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainways.data.cache import _latest_cache, _load_sgml_cached, default_cache_dir
from trainways.data.errors import _HINT, DataError
from trainways.data.identity import fingerprint_of
from trainways.data.keras_npz import (
    _download_keras_reuters,
    _keras_cached_npz,
    _keras_home,
    _load_npz_file,
)
from trainways.data.reuters import INDEX_FROM, OOV_ID, START_ID, Reuters
from trainways.data.sgml import Corpus

ENV_DATA = "TRAINWAYS_DATA"


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
