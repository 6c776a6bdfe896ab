"""The Keras Reuters word ids, rebuilt from the Reuters-21578 SGML files.

The Keras ``reuters.npz`` (11,228 wires, 46 topics) was generated years ago from the
Reuters-21578 SGML files by a script Keras no longer ships. :func:`build_from_sgml`
re-creates it from the original distribution, byte for byte in its word ids, by
replaying that script's string scan and tokenizer, quirks included:

* Files ``reut2-*.sgm`` are read in sorted order as latin-1 and scanned as plain strings;
  SGML entities are *not* decoded, so ``&lt;`` becomes the word ``lt`` and the ``&#3;``
  that ends every body becomes the word ``3``.
* A wire is labelled with the first ``<D>`` of its ``<TOPICS>`` element. Its text starts at
  the next ``<BODY>`` found after that element, so a wire without a body takes the next
  wire's body. The scan works on the text *after* the ``<TOPICS>`` tag, so when no
  ``<BODY>`` follows in the file, ``find`` returns -1 and the text starts
  ``-1 + len("<BODY>") = 5`` characters past the tag (inside ``<D>earn</D>``, giving the
  one-off word ``rn``). A text ends at the next ``</``.
* Topics with fewer than 15 wires are dropped; label ids follow first appearance.
* Not a quirk but a guard: a file whose last ``<REUTERS`` is never closed was cut mid-wire
  (a partial copy) and is refused, naming it, rather than silently built into other data.
* The old Keras ``Tokenizer`` defaults: lower-case, punctuation to spaces, split on ``' '``.
  Words are ranked by count with a stable sort, and ties keep the iteration order of the
  *Python 2* ``dict`` that counted them (the dataset was made with Python 2.7 on a 64-bit
  machine). :func:`_py2_dict_order` replays that order; first-appearance order would
  give different ids to 30,173 of the 30,979 words.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainways.data.errors import _HINT, DataError

MIN_WIRES_PER_TOPIC = 15


# --------------------------------------------------------------------------- tokenizer

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
# One translate does both jobs. Only ASCII is lower-cased because the original ran on
# Python 2 byte strings, whose lower() leaves bytes >= 0x80 alone.
_TOKEN_TABLE = str.maketrans(
    FILTERS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    " " * len(FILTERS) + "abcdefghijklmnopqrstuvwxyz",
)


def tokenize(text: str) -> list[str]:
    """Split text into words the way the old Keras ``Tokenizer`` defaults did.

    Args:
        text: Raw text.

    Returns:
        Lower-cased words, punctuation removed.
    """
    return [w for w in text.translate(_TOKEN_TABLE).split(" ") if w]


_M64 = (1 << 64) - 1


def _py2_hash(data: bytes) -> int:
    """Python 2.7 ``str.__hash__`` on a 64-bit build without hash randomisation."""
    if not data:
        return 0
    x = data[0] << 7
    for byte in data:
        x = ((1000003 * x) & _M64) ^ byte
    x ^= len(data)
    if x >= 1 << 63:
        x -= 1 << 64
    return -2 if x == -1 else x


def _py2_dict_order(keys: Iterable[str]) -> list[str]:
    """Iteration order of a Python 2.7 dict into which ``keys`` were inserted in order.

    The original tokenizer counted words in a plain dict, so words with equal counts were
    ranked in that dict's slot order. This replays CPython 2.7's open addressing
    (``i = 5*i + perturb + 1``, ``perturb >>= 5``) and its resize rule (grow to the
    smallest power of two above 4 * used once two thirds are filled, re-inserting in slot
    order). Only insertions happen, so no dummy slots are involved.

    Args:
        keys: Distinct strings in first-insertion order (latin-1 encodable).

    Returns:
        The keys in Python 2 iteration order.
    """

    def insert(table: list[tuple[int, str] | None], item: tuple[int, str]) -> None:
        mask = len(table) - 1
        perturb = item[0] & _M64
        i = perturb & mask
        while table[i] is not None:
            i = (5 * i + perturb + 1) & _M64
            perturb >>= 5
            i &= mask
        table[i] = item

    table: list[tuple[int, str] | None] = [None] * 8
    for used, key in enumerate(keys, start=1):
        insert(table, (_py2_hash(key.encode("latin-1")), key))
        if used * 3 >= len(table) * 2:
            minused = (2 if used > 50000 else 4) * used
            size = 8
            while size <= minused:
                size <<= 1
            old, table = table, [None] * size
            for item in old:
                if item is not None:
                    insert(table, item)
    return [item[1] for item in table if item is not None]


def _rank_words(counts: dict[str, int]) -> list[str]:
    """Words by count, descending; ties in Python 2 dict order (see module docstring)."""
    return sorted(_py2_dict_order(counts), key=counts.__getitem__, reverse=True)


# ------------------------------------------------------------------------ SGML builder

_TOPICS_TAG = "<TOPICS>"
_BODY_TAG = "<BODY>"


def _scan_sgml(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(first topic, body)`` for every labelled wire, replaying the original scan.

    The original advanced a string ``s`` to just after each ``<TOPICS>`` tag and took
    ``s[:s.find('</')]`` as topics and ``s[s.find('<BODY>') + 6:]`` cut at its first
    ``'</'`` as body. The index arithmetic below is the same, without the copies.
    ``find`` returning -1 is kept as the original had it: a missing ``<BODY>`` starts
    the text 5 characters past the tag, a missing ``</`` drops the last character.
    """
    find = text.find
    last = len(text) - 1
    pos = find(_TOPICS_TAG)
    while pos >= 0:
        start = pos + len(_TOPICS_TAG)
        end = find("</", start)
        topic = text[start : end if end >= 0 else last].replace("<D>", "")
        if topic:
            body_at = find(_BODY_TAG, start)
            # The original's -1 was relative to the tag's end: start - 1 here.
            body_start = (body_at if body_at >= 0 else start - 1) + len(_BODY_TAG)
            body_end = find("</", body_start)
            yield topic, text[body_start : body_end if body_end >= 0 else last]
        pos = find(_TOPICS_TAG, start)


def _sgml_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("reut2-*.sgm"))
    if not files:
        raise DataError(f"no reut2-*.sgm files in {directory}: {_HINT}")
    return files


_NEWID = re.compile(r'NEWID="(\d+)"')


def _check_complete(path: Path, text: str) -> None:
    """Refuse a file cut in the middle of a wire (a partial copy or download).

    Every wire of the distribution ends with ``</REUTERS>``; the scan would otherwise take
    the cut wire's text (or a borrowed one) as if it were whole, and the build would silently
    differ from Keras's.
    """
    opened = text.rfind("<REUTERS")
    if opened <= text.rfind("</REUTERS>"):
        return
    tag_end = text.find(">", opened)
    newid = _NEWID.search(text, opened, tag_end if tag_end >= 0 else len(text))
    wire = f"NEWID {newid.group(1)}" if newid else "its last wire"
    raise DataError(
        f"{path} ends in the middle of a wire ({wire}, {len(text):,} bytes read): the file is "
        "damaged; restore it from the original Reuters-21578 distribution"
    )


def _read_latin1(path: Path) -> str:
    try:
        return path.read_bytes().decode("latin-1")
    except OSError as exc:
        raise DataError(
            f"cannot read {path} ({exc.strerror or exc}): fix its permissions or {_HINT}"
        ) from exc


@dataclass(frozen=True, eq=False)
class Corpus:
    """Word ids before the load-time conventions: what the Keras npz stores.

    Attributes:
        tokens: Flat word ids of all wires (1 = most frequent word).
        offsets: int64 wire boundaries into ``tokens``, ``len(wires) + 1`` long.
        labels: Topic label of each wire.
        topics: Topic name of each label id.
        word_index: Word → rank from 1.
        source: Where it came from, for humans.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    topics: tuple[str, ...]
    word_index: dict[str, int]
    source: str


def build_from_sgml(directory: str | os.PathLike[str]) -> Corpus:
    """Build the Keras Reuters data from the Reuters-21578 SGML files, uncached.

    Args:
        directory: Directory holding ``reut2-000.sgm`` … ``reut2-021.sgm``.

    Returns:
        The raw corpus (word ids from 1, no start char or offset).

    Raises:
        DataError: Missing, unreadable or damaged (cut mid-wire) files, or no usable labelled
            wire.
    """
    directory = Path(directory)
    wires: list[tuple[str, str]] = []
    for path in _sgml_files(directory):
        text = _read_latin1(path)
        _check_complete(path, text)
        wires.extend(_scan_sgml(text))
    if not wires:
        raise DataError(
            f"no wire with a <TOPICS><D>topic</D></TOPICS> label in {directory}/reut2-*.sgm: "
            f"{_HINT}"
        )
    topic_counts = Counter(topic for topic, _ in wires)
    kept = [(t, b) for t, b in wires if topic_counts[t] >= MIN_WIRES_PER_TOPIC]
    if not kept:
        raise DataError(
            f"no topic in {directory} has {MIN_WIRES_PER_TOPIC} or more labelled wires "
            f"(largest: {max(topic_counts.values())}): {_HINT}"
        )
    topics = tuple(dict.fromkeys(t for t, _ in kept))
    label_of = {t: i for i, t in enumerate(topics)}

    texts = [tokenize(body) for _, body in kept]
    # Counter keeps first-insertion order, which _py2_dict_order needs as its input.
    counts = Counter(itertools.chain.from_iterable(texts))
    ranked = _rank_words(counts)
    word_index = {w: i for i, w in enumerate(ranked, start=1)}
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.fromiter(
        map(word_index.__getitem__, itertools.chain.from_iterable(texts)),
        dtype=np.int32,
        count=int(offsets[-1]),
    )
    labels = np.fromiter((label_of[t] for t, _ in kept), dtype=np.int32, count=len(kept))
    return Corpus(tokens, offsets, labels, topics, word_index, f"Reuters-21578 SGML at {directory}")
