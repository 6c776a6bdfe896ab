"""Reuters newswire topic data: build it from Reuters-21578, cache it, load it like Keras.

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
* The old Keras ``Tokenizer`` defaults: lower-case, punctuation to spaces, split on ``' '``.
  Words are ranked by count with a stable sort, and ties keep the iteration order of the
  *Python 2* ``dict`` that counted them (the dataset was made with Python 2.7 on a 64-bit
  machine). :func:`_py2_dict_order` replays that order; first-appearance order would
  give different ids to 30,173 of the 30,979 words.

:func:`load_reuters` then applies exactly the conventions of
``keras.datasets.reuters.load_data`` (shuffle, start char, index offset, ``maxlen``,
``num_words``/``skip_top`` with OOV, split). Only NumPy is imported here; TensorFlow and
Keras are imported lazily by the few functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import pickle
import socket
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "ENV_CACHE",
    "ENV_DATA",
    "INDEX_FROM",
    "KERAS_LABEL_NAMES",
    "MIN_WIRES_PER_TOPIC",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "Corpus",
    "DataError",
    "Reuters",
    "build_from_sgml",
    "default_cache_dir",
    "describe",
    "epoch_order",
    "load_reuters",
    "make_dataset",
    "pad",
    "steps_per_epoch",
    "tokenize",
]

PAD_ID = 0
START_ID = 1
OOV_ID = 2
INDEX_FROM = 3

ENV_DATA = "TRAINWAYS_DATA"
ENV_CACHE = "TRAINWAYS_CACHE_DIR"

MIN_WIRES_PER_TOPIC = 15

# Bump when the build output could change; it is part of the cache key.
BUILDER_VERSION = 1
# Bump when the layout of the cached .npz changes.
CACHE_FORMAT = 1
_CACHE_GLOB = "reuters-sgml-*.npz"

_HINT = "point --data at the Reuters-21578 directory or a reuters.npz"

# What keras.datasets.reuters.get_label_names() returns, copied so that loading a Keras
# npz does not import TensorFlow; a test checks it against Keras.
KERAS_LABEL_NAMES: tuple[str, ...] = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing",
    "money-supply", "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass",
    "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum",
    "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi",
    "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
    "dlr", "gas", "silver", "wpi", "hog", "lead",
)  # fmt: skip

_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_KERAS_NPZ_SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
_KERAS_WORD_INDEX_MD5 = "4d44cc38712099c9e383dc6e5f11a921"
_DOWNLOAD_TIMEOUT_S = 5.0


class DataError(ValueError):
    """Bad data or options; the one-line message names the bad value and what to do."""


# --------------------------------------------------------------------------- tokenizer

_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
# One translate does both jobs. Only ASCII is lower-cased because the original ran on
# Python 2 byte strings, whose lower() leaves bytes >= 0x80 alone.
_TOKEN_TABLE = str.maketrans(
    _FILTERS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    " " * len(_FILTERS) + "abcdefghijklmnopqrstuvwxyz",
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
        DataError: Missing/unreadable files or no usable labelled wire.
    """
    directory = Path(directory)
    wires: list[tuple[str, str]] = []
    for path in _sgml_files(directory):
        wires.extend(_scan_sgml(_read_latin1(path)))
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


# ------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``$TRAINWAYS_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainways``, else ``~/.cache/trainways``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "trainways"


def _cache_key(files: Sequence[Path]) -> str:
    lines = [f"builder {BUILDER_VERSION}"]
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            raise DataError(f"cannot stat {path} ({exc.strerror or exc}): {_HINT}") from exc
        lines.append(f"{path.name}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:24]


def _write_cache(corpus: Corpus, directory: Path, path: Path) -> None:
    """Write atomically so a crash or a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    words = sorted(corpus.word_index, key=corpus.word_index.__getitem__)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                format_version=np.int64(CACHE_FORMAT),
                builder_version=np.int64(BUILDER_VERSION),
                tokens=corpus.tokens.astype(np.int32, copy=False),
                offsets=corpus.offsets.astype(np.int64, copy=False),
                labels=corpus.labels.astype(np.int32, copy=False),
                topics=np.array(corpus.topics, dtype=str),
                words=np.array(words, dtype=str),
                source_dir=np.array(str(directory)),
            )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _is_cache_npz(names: Iterable[str]) -> bool:
    return {"format_version.npy", "tokens.npy", "offsets.npy"} <= set(names)


def _read_cache(path: Path) -> Corpus:
    """Read one of our cache files (also usable as an explicit ``source``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != CACHE_FORMAT:
                raise DataError(
                    f"{path} is a trainways cache of format {int(z['format_version'])}, "
                    f"expected {CACHE_FORMAT}: delete it and rebuild from the SGML"
                )
            tokens = z["tokens"]
            offsets = z["offsets"]
            labels = z["labels"]
            topics = tuple(z["topics"].tolist())
            words = z["words"].tolist()
            source_dir = str(z["source_dir"])
    except DataError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"corrupt trainways cache {path} ({exc}): delete it to rebuild") from exc
    word_index = {w: i for i, w in enumerate(words, start=1)}
    source = f"cache {path} (built from Reuters-21578 SGML at {source_dir})"
    return Corpus(tokens, offsets, labels, topics, word_index, source)


def _load_sgml_cached(directory: Path, cache_dir: Path) -> Corpus:
    files = _sgml_files(directory)
    cache_path = cache_dir / f"reuters-sgml-{_cache_key(files)}.npz"
    if cache_path.is_file():
        try:
            corpus = _read_cache(cache_path)
        except DataError:
            pass  # a damaged cache is rebuilt below and overwritten
        else:
            source = f"Reuters-21578 SGML at {directory} (from cache {cache_path})"
            return _replace_source(corpus, source)
    started = time.perf_counter()
    corpus = _build_from_sgml(directory)
    seconds = time.perf_counter() - started
    try:
        _write_cache(corpus, directory, cache_path)
        where = f"cached at {cache_path}"
    except OSError as exc:
        # Caching is an optimisation: an unwritable cache dir must not stop training.
        where = f"not cached: {exc.strerror or exc}"
    return _replace_source(
        corpus, f"Reuters-21578 SGML at {directory} (built in {seconds:.1f} s, {where})"
    )


# Indirection so tests can count builds.
_build_from_sgml = build_from_sgml


def _replace_source(corpus: Corpus, source: str) -> Corpus:
    return Corpus(
        corpus.tokens, corpus.offsets, corpus.labels, corpus.topics, corpus.word_index, source
    )


def _latest_cache(cache_dir: Path) -> Corpus | None:
    try:
        candidates = sorted(
            cache_dir.glob(_CACHE_GLOB), key=lambda p: p.stat().st_mtime_ns, reverse=True
        )
    except OSError:
        return None
    for path in candidates:
        try:
            return _read_cache(path)
        except DataError:
            continue
    return None


# ---------------------------------------------------------------------- Keras npz files

# The only globals needed to rebuild numpy object arrays; same list as Keras 3's
# keras/src/datasets/npz_utils.py. Anything else in a pickle (os.system, eval, ...) is
# refused, so a tampered npz cannot run code.
_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_npy(fp: io.BytesIO) -> np.ndarray:
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError:
        # Only object arrays get here: skip the header and unpickle under restriction.
        fp.seek(0)
        version = np.lib.format.read_magic(fp)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(fp)
        elif version[0] in (2, 3):
            # Format 3 differs from 2 only in the header's text encoding.
            np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}") from None
        return _RestrictedUnpickler(fp).load()


def _load_npz_members(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as raw:
                    arrays[member[: -len(".npy")]] = _read_npy(io.BytesIO(raw.read()))
    return arrays


def _load_npz_file(path: Path, *, origin: str | None = None) -> Corpus:
    """Load a Keras-format ``reuters.npz`` (or one of our cache files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        hint = "point --data at its directory" if path.suffix == ".sgm" else _HINT
        raise DataError(f"{path} is not a .npz (zip) archive: {hint}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}): {_HINT}") from exc
    if _is_cache_npz(names):
        return _read_cache(path)
    try:
        arrays = _load_npz_members(path)
    except (pickle.UnpicklingError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt or unsafe .npz {path} ({exc}): {_HINT}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}): {_HINT}") from exc
    if "x" not in arrays or "y" not in arrays:
        raise DataError(
            f"{path} lacks the arrays 'x' and 'y' (has {sorted(arrays) or 'none'}): "
            f"it is not a Keras-format reuters.npz; {_HINT}"
        )
    xs, ys = arrays["x"], arrays["y"]
    try:
        lists = [list(map(int, seq)) for seq in xs]
        labels = np.asarray(ys, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} has malformed 'x'/'y' arrays ({exc}): {_HINT}") from exc
    if len(lists) != len(labels) or not lists:
        raise DataError(f"{path} has {len(lists)} sequences but {len(labels)} labels: {_HINT}")
    if labels.min() < 0 or labels.max() >= len(KERAS_LABEL_NAMES):
        raise DataError(
            f"{path} has labels outside 0..{len(KERAS_LABEL_NAMES) - 1} "
            f"(min {labels.min()}, max {labels.max()}): {_HINT}"
        )
    word_index_path = path.with_name("reuters_word_index.json")
    try:
        word_index = json.loads(word_index_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(
            f"{word_index_path} not found: put Keras's reuters_word_index.json beside {path}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read word index {word_index_path} ({exc}): replace it with Keras's "
            "reuters_word_index.json"
        ) from exc
    if not isinstance(word_index, dict):
        raise DataError(f"{word_index_path} is not a JSON object: replace it with Keras's")
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.fromiter(
        itertools.chain.from_iterable(lists), dtype=np.int64, count=int(offsets[-1])
    )
    words = {str(k): int(v) for k, v in word_index.items()}
    source = origin or f"Keras reuters.npz at {path}"
    return Corpus(tokens, offsets, labels, KERAS_LABEL_NAMES, words, source)


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def _keras_cached_npz() -> Path | None:
    bases = [_keras_home()]
    if not os.access(bases[0], os.W_OK):
        # Where keras.utils.get_file puts downloads when the Keras home is read-only.
        bases.append(Path(tempfile.gettempdir()) / ".keras")
    for base in bases:
        candidate = base / "datasets" / "reuters.npz"
        if candidate.is_file():
            return candidate
    return None


def _download_keras_reuters() -> Path:
    """Fetch Keras's reuters.npz and word index through ``keras.utils.get_file``.

    A short default socket timeout makes an offline machine fail in seconds; it is
    restored afterwards because it is process-wide.
    """
    from keras.utils import get_file  # lazy: pulls in TensorFlow

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        npz = get_file(
            "reuters.npz", origin=f"{_KERAS_ORIGIN}reuters.npz", file_hash=_KERAS_NPZ_SHA256
        )
        words = get_file(
            "reuters_word_index.json",
            origin=f"{_KERAS_ORIGIN}reuters_word_index.json",
            file_hash=_KERAS_WORD_INDEX_MD5,
        )
    finally:
        socket.setdefaulttimeout(previous)
    npz_path = Path(npz)
    if Path(words) != npz_path.with_name("reuters_word_index.json"):
        raise OSError(f"word index landed at {words}, not beside {npz_path}")
    return npz_path


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
        max_word_id=int(corpus.tokens.max()) if len(corpus.tokens) else 0,
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


def describe(reuters: Reuters) -> dict[str, Any]:
    """Statistics for ``trainways data info`` (plain, JSON-serialisable types).

    Args:
        reuters: Loaded data.

    Returns:
        Source, sizes, vocabulary, sequence length summary and the ten largest topics.
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
