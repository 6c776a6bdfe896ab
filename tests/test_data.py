"""Tests for trainways.data: SGML build, caching, Keras load conventions, model inputs."""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import trainways
from trainways import data
from trainways.data import DataError, keras_npz, loading, sgml
from trainways.data import cache as data_cache

_REAL_DOWNLOAD = keras_npz._download_keras_reuters

# ------------------------------------------------------------------------------ helpers


def sgml_wire(newid: int, topics: Sequence[str], body: str | None, *, tail: bool = True) -> str:
    """One wire in the exact Reuters-21578 layout; ``body=None`` makes a BRIEF wire."""
    ds = "".join(f"<D>{t}</D>" for t in topics)
    head = (
        f'<REUTERS TOPICS="{"YES" if topics else "NO"}" LEWISSPLIT="TRAIN" '
        f'CGISPLIT="TRAINING-SET" OLDID="{5000 + newid}" NEWID="{newid}">\n'
        "<DATE>26-FEB-1987 15:01:01.79</DATE>\n"
        f"<TOPICS>{ds}</TOPICS>\n"
        "<PLACES><D>usa</D></PLACES>\n<PEOPLE></PEOPLE>\n<ORGS></ORGS>\n"
        "<EXCHANGES></EXCHANGES>\n<COMPANIES></COMPANIES>\n"
        "<UNKNOWN> \n&#5;&#5;&#5;C T\n&#22;&#22;&#1;f0704&#31;reute\n"
        "u f BC-TEST-WIRE   02-26 0105</UNKNOWN>\n"
    )
    if body is None:
        text = (
            '<TEXT TYPE="BRIEF">&#2;\n******<TITLE>BRIEF TITLE WORDS\n</TITLE>'
            "Blah blah blah.\n&#3;\n\n</TEXT>\n"
        )
    else:
        end = "\n Reuter\n&#3;" if tail else ""
        text = (
            "<TEXT>&#2;\n<TITLE>TITLE &lt;WORDS></TITLE>\n"
            f"<DATELINE>    NEW YORK, Feb 26 - </DATELINE><BODY>{body}{end}</BODY></TEXT>\n"
        )
    return head + text + "</REUTERS>\n"


def write_sgml(path: Path, wires: Sequence[str]) -> Path:
    path.write_bytes(('<!DOCTYPE lewis SYSTEM "lewis.dtd">\n' + "".join(wires)).encode("latin-1"))
    return path


TAIL = "\n Reuter\n&#3;"


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A small SGML corpus with every quirk, and the (topic, text) of each kept wire."""
    root = tmp_path / "sgml"
    root.mkdir()
    kept: list[tuple[str, str]] = []
    f0: list[str] = []
    f0.append(sgml_wire(1, ["rare"], "Rare topic text"))
    f0.append(sgml_wire(2, [], "Unlabelled wire text"))
    entity_body = "Zeta first &lt;ZETA&gt; &amp; Co said, U.S. it's up 3.5 pct"
    f0.append(sgml_wire(3, ["zeta", "alpha"], entity_body))  # first topic wins
    kept.append(("zeta", entity_body + TAIL))
    f0.append(sgml_wire(4, ["alpha"], None))  # no body: borrows the next wire's
    f0.append(sgml_wire(5, [], "Borrowed body text"))
    kept.append(("alpha", "Borrowed body text" + TAIL))
    for i in range(14):  # zeta reaches exactly 15
        f0.append(sgml_wire(10 + i, ["zeta"], f"Zeta wire number{i} shares"))
        kept.append(("zeta", f"Zeta wire number{i} shares" + TAIL))
    for i in range(15):
        f0.append(sgml_wire(30 + i, ["alpha"], f"Alpha wire {i}, 1.5 MLN DLRS."))
        kept.append(("alpha", f"Alpha wire {i}, 1.5 MLN DLRS." + TAIL))
    f0 += [sgml_wire(50 + i, ["rare"], "rare again") for i in range(2)]
    f0 += [sgml_wire(60 + i, ["fourteen"], "only fourteen wires") for i in range(14)]
    for i in range(15):
        f0.append(sgml_wire(80 + i, ["fifteen"], f"fifteen exactly {i}"))
        kept.append(("fifteen", f"fifteen exactly {i}" + TAIL))
    f1: list[str] = []
    for i in range(15):  # a topic first seen in the second file gets the last label
        f1.append(sgml_wire(100 + i, ["omega"], f"Omega wire {i}"))
        kept.append(("omega", f"Omega wire {i}" + TAIL))
    # Last wire of a file without a body: find('<BODY>') == -1, text starts 5 chars
    # past the <TOPICS> tag, inside "<D>alpha</D>", i.e. "pha".
    f1.append(sgml_wire(200, ["alpha"], None))
    kept.append(("alpha", "pha"))
    # Written in reverse so directory order is unlikely to be name order.
    write_sgml(root / "reut2-001.sgm", f1)
    write_sgml(root / "reut2-000.sgm", f0)
    return root, kept


def write_keras_npz(
    directory: Path, seqs: Sequence[Sequence[int]], labels: Sequence[int], vocab: int
) -> Path:
    """A Keras-format reuters.npz (object array x, int64 y) plus its word index json."""
    directory.mkdir(parents=True, exist_ok=True)
    x = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        x[i] = list(s)
    path = directory / "reuters.npz"
    np.savez(path, x=x, y=np.asarray(labels, dtype=np.int64))
    words = {f"w{i}": i for i in range(1, vocab + 1)}
    (directory / "reuters_word_index.json").write_text(json.dumps(words))
    return path


def random_keras_data(seed: int = 0, n: int = 120, vocab: int = 60) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, vocab + 1, size=rng.integers(1, 25)).tolist() for _ in range(n)]
    seqs[5] = [vocab]  # make sure the largest id occurs
    labels = rng.integers(0, 46, size=n).tolist()
    return seqs, labels


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's caches or the network."""
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_DATA, raising=False)
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def offline() -> Path:
        raise OSError("offline (test)")

    # Patched where it is looked up: loading._resolve calls loading's binding.
    monkeypatch.setattr(loading, "_download_keras_reuters", offline)


def assert_one_line(exc: pytest.ExceptionInfo[DataError], *needles: object) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, (needle, message)


# ------------------------------------------------------------------------ tokenizer


def test_tokenize_matches_old_keras_tokenizer_defaults() -> None:
    text = "Zeta &lt;ZETA&gt; &amp; Co said, U.S. it's up 3.5 pct\n Reuter\n&#3;"
    assert data.tokenize(text) == [
        "zeta", "lt", "zeta", "gt", "amp", "co", "said", "u", "s", "it's",
        "up", "3", "5", "pct", "reuter", "3",
    ]  # fmt: skip
    # Tabs/newlines are filters but other whitespace is part of a word, as in Keras.
    assert data.tokenize("a\tb\nc\rd") == ["a", "b", "c\rd"]
    # Python 2 byte-string lower(): only ASCII is lower-cased.
    assert data.tokenize("ÉTÉ") == ["ÉtÉ"]


def test_filters_are_public_and_are_the_tokenizer_separators() -> None:
    # The old Keras Tokenizer's default filters; export.py builds its in-graph regex from them.
    assert data.FILTERS == '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
    assert data.FILTERS is sgml.FILTERS
    for char in data.FILTERS:
        assert data.tokenize(f"a{char}b") == ["a", "b"], repr(char)
    assert data.tokenize("a'b") == ["a'b"]  # not a filter


def test_py2_hash_and_dict_order_known_values() -> None:
    # hash('a') on 64-bit Python 2.7, and its famous {'a': 1, 'c': 3, 'b': 2} ordering.
    assert sgml._py2_hash(b"a") == 12416037344
    assert sgml._py2_dict_order(["a", "b", "c"]) == ["a", "c", "b"]
    assert sgml._py2_dict_order(["c", "b", "a"]) == ["a", "c", "b"]
    # Enough keys to force several resizes still returns each key once.
    keys = [f"k{i}" for i in range(5000)]
    assert sorted(sgml._py2_dict_order(keys)) == sorted(keys)


def test_ties_rank_in_python2_dict_order(tmp_path: Path) -> None:
    root = tmp_path / "ties"
    root.mkdir()
    wires = [sgml_wire(i, ["t"], "c b a", tail=False) for i in range(15)]
    wires.append(sgml_wire(99, ["t"], "z z z z z z z z z z z z z z z z", tail=False))
    write_sgml(root / "reut2-000.sgm", wires)
    corpus = data.build_from_sgml(root)
    # Count decides first; equal counts follow Python 2 dict order, not first appearance.
    assert corpus.word_index == {"z": 1, "a": 2, "c": 3, "b": 4}


# -------------------------------------------------------------------------- SGML scan


def test_scan_quirks_on_raw_text() -> None:
    text = (
        sgml_wire(1, ["cocoa"], "Cocoa &lt;ABC&gt; &amp; co &#22;")
        + sgml_wire(2, [], "unlabelled")
        + sgml_wire(3, ["grain", "wheat"], "Grain body")
        + sgml_wire(4, ["ship"], None)
        + sgml_wire(5, [], "Next body")
        + sgml_wire(6, ["earn"], None)
    )
    assert list(sgml._scan_sgml(text)) == [
        ("cocoa", "Cocoa &lt;ABC&gt; &amp; co &#22;" + TAIL),  # entities kept verbatim
        ("grain", "Grain body" + TAIL),
        ("ship", "Next body" + TAIL),
        ("earn", "rn"),  # -1 + len('<BODY>') = 5 chars into "<D>earn</D>"
    ]
    # A text with no closing "</" loses its last character (find() == -1 again).
    assert list(sgml._scan_sgml("<TOPICS><D>x</D></TOPICS><BODY>abc")) == [("x", "ab")]


def test_build_from_sgml(synthetic: tuple[Path, list[tuple[str, str]]]) -> None:
    root, kept = synthetic
    corpus = data.build_from_sgml(root)
    # Label ids by first appearance among kept wires, files in name order.
    assert corpus.topics == ("zeta", "alpha", "fifteen", "omega")
    assert [corpus.topics[i] for i in corpus.labels] == [t for t, _ in kept]
    inverse = {i: w for w, i in corpus.word_index.items()}
    for i, (_, text) in enumerate(kept):
        ids = corpus.tokens[corpus.offsets[i] : corpus.offsets[i + 1]]
        assert [inverse[int(t)] for t in ids] == data.tokenize(text)
    vocab = corpus.word_index
    assert {"lt", "gt", "amp", "3", "pha", "it's"} <= vocab.keys()  # entities not decoded
    assert not {"rare", "fourteen", "unlabelled", "blah", "title"} & vocab.keys()
    assert sorted(vocab.values()) == list(range(1, len(vocab) + 1))
    counts = np.bincount(corpus.tokens, minlength=len(vocab) + 1)[1:]
    assert (np.diff(counts) <= 0).all()  # ranked by count
    # "&#3;" ends every body but "pha"; one more "3" comes from "3.5".
    assert (vocab["3"], vocab["reuter"]) == (1, 2)


# ------------------------------------------------------------------- Keras conventions


@pytest.fixture
def keras_reuters_loader(monkeypatch: pytest.MonkeyPatch):
    """keras.datasets.reuters.load_data reading a local npz.

    Keras's get_file rejects paths as ``fname`` ("Paths are no longer accepted") and
    re-downloads a cached file whose hash differs, so its module-level get_file is
    replaced to hand back our file; everything after that is Keras's own code.
    """
    keras_reuters = pytest.importorskip("keras.src.datasets.reuters")

    def load(path: Path, **kwargs):
        monkeypatch.setattr(keras_reuters, "get_file", lambda *a, **k: str(path))
        return keras_reuters.load_data(**kwargs)

    return load


def assert_same_as_keras(ours: data.Reuters, theirs) -> None:
    (kx_train, ky_train), (kx_test, ky_test) = theirs
    assert len(ours.x_train) == len(kx_train) and len(ours.x_test) == len(kx_test)
    assert [list(s) for s in ours.x_train] == [list(s) for s in kx_train]
    assert [list(s) for s in ours.x_test] == [list(s) for s in kx_test]
    np.testing.assert_array_equal(ours.y_train, ky_train)
    np.testing.assert_array_equal(ours.y_test, ky_test)
    assert ours.y_train.dtype == np.int64 and ours.x_train.dtype == object


@pytest.mark.parametrize(
    "options",
    [
        {"num_words": 30},
        {"num_words": 30, "skip_top": 6},
        {"num_words": 61, "maxlen": 12},
        {"num_words": 25, "oov_char": None, "skip_top": 4},
        {"num_words": 40, "start_char": None, "index_from": 2, "test_split": 0.35, "seed": 7},
        {"num_words": 50, "start_char": 5, "oov_char": 9, "index_from": 10, "skip_top": 7},
    ],
)
def test_load_matches_keras_load_data(tmp_path: Path, keras_reuters_loader, options) -> None:
    seqs, labels = random_keras_data()
    npz = write_keras_npz(tmp_path / "k", seqs, labels, vocab=60)
    ours = data.load_reuters(npz, **options)
    assert_same_as_keras(ours, keras_reuters_loader(npz, **options))
    assert ours.topics == data.KERAS_LABEL_NAMES
    assert ours.source == f"Keras reuters.npz at {npz}"


def test_num_words_none_keeps_the_largest_id_unlike_keras(
    tmp_path: Path, keras_reuters_loader
) -> None:
    seqs, labels = random_keras_data()
    npz = write_keras_npz(tmp_path / "k", seqs, labels, vocab=60)
    ours = data.load_reuters(npz)
    theirs = keras_reuters_loader(npz)
    top = 60 + data.INDEX_FROM  # largest id after the offset
    # Keras silently sets num_words = max id, turning that id into OOV ...
    assert_same_as_keras(data.load_reuters(npz, num_words=top), theirs)
    assert all(top not in s for s in theirs[0][0])
    # ... we keep it, and nothing else differs.
    assert any(top in s for s in [*ours.x_train, *ours.x_test])
    for mine, keras_seq in zip(ours.x_train, theirs[0][0], strict=True):
        assert [data.OOV_ID if w == top else w for w in mine] == list(keras_seq)
    assert ours.vocab_size == top + 1


def test_load_conventions_on_sgml_build(synthetic) -> None:
    root, kept = synthetic
    r = data.load_reuters(root, test_split=0.25, seed=5)
    n = len(kept)
    order = np.arange(n)
    np.random.RandomState(5).shuffle(order)
    split = int(n * 0.75)
    assert len(r.x_train) == split and len(r.x_test) == n - split
    label_of = {t: i for i, t in enumerate(r.topics)}
    expected_y = np.array([label_of[kept[i][0]] for i in order])
    np.testing.assert_array_equal(np.concatenate([r.y_train, r.y_test]), expected_y)
    for seq, i in zip([*r.x_train, *r.x_test], order, strict=True):
        words = data.tokenize(kept[i][1])
        assert seq == [data.START_ID] + [r.word_index[w] + data.INDEX_FROM for w in words]
    assert r.num_classes == 4
    assert r.vocab_size == len(r.word_index) + data.INDEX_FROM + 1
    assert max(max(s) for s in [*r.x_train, *r.x_test]) == r.vocab_size - 1


def test_maxlen_drops_sequences_of_at_least_maxlen(tmp_path: Path) -> None:
    seqs = [[1] * k for k in range(1, 9)]  # with the start char: lengths 2..9
    npz = write_keras_npz(tmp_path / "k", seqs, [0] * 8, vocab=1)
    r = data.load_reuters(npz, maxlen=5, test_split=0.5)
    lengths = sorted(len(s) for s in [*r.x_train, *r.x_test])
    assert lengths == [2, 3, 4]


# ------------------------------------------------------------------------------ encode


def test_encode_and_decode(synthetic) -> None:
    root, kept = synthetic
    r = data.load_reuters(root)
    wi = r.word_index
    assert r.encode("Zeta, ZETA shares!! nosuchword") == [
        1, wi["zeta"] + 3, wi["zeta"] + 3, wi["shares"] + 3, data.OOV_ID,
    ]  # fmt: skip
    assert r.encode("") == [data.START_ID]
    # encode(raw text) reproduces the loaded sequence of that wire.
    order = np.arange(len(kept))
    np.random.RandomState(113).shuffle(order)
    assert r.encode(kept[order[0]][1]) == r.x_train[0]
    assert r.decode(r.encode("Zeta shares nosuchword")) == "zeta shares ?"
    assert r.decode([0, 0, 1, wi["alpha"] + 3]) == "alpha"


def test_encode_applies_num_words_skip_top_and_oov_none(synthetic) -> None:
    root, _ = synthetic
    r = data.load_reuters(root, num_words=6, skip_top=4)
    wi = r.word_index
    common = next(w for w, i in wi.items() if i == 1)  # id 4 after the offset
    rare = next(w for w, i in wi.items() if i == 5)  # id 8 >= num_words
    # The start char 1 < skip_top becomes OOV too, exactly as Keras treats it.
    assert r.encode(f"{common} {rare}") == [2, 4, 2]
    assert r.vocab_size == 6
    dropped = data.load_reuters(root, num_words=6, oov_char=None)
    assert dropped.encode(f"{common} {rare} unknownword") == [1, 4]


# ------------------------------------------------------------------------------ caching


def test_second_load_is_served_from_cache(synthetic, tmp_path, monkeypatch) -> None:
    root, _ = synthetic
    calls = []
    real_build = data_cache._build_from_sgml

    def counting_build(directory):
        calls.append(directory)
        return real_build(directory)

    # Patched where it is looked up: data_cache._load_sgml_cached calls it.
    monkeypatch.setattr(data_cache, "_build_from_sgml", counting_build)
    cache = tmp_path / "cache"  # the autouse fixture's $TRAINWAYS_CACHE_DIR
    first = data.load_reuters(root)
    assert len(calls) == 1 and "built in" in first.source and str(cache) in first.source
    second = data.load_reuters(root)
    assert len(calls) == 1 and "from cache" in second.source
    assert [list(s) for s in first.x_train] == [list(s) for s in second.x_train]
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.word_index == second.word_index and first.topics == second.topics
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("reuters-sgml-")
    with np.load(files[0], allow_pickle=False) as z:  # no object arrays
        assert z["tokens"].dtype == np.int32 and z["offsets"].dtype == np.int64
        assert z["labels"].dtype == np.int32 and z["words"].dtype.kind == "U"

    # Touching a source file changes the key, and a rebuild follows.
    sgm = root / "reut2-000.sgm"
    st = sgm.stat()
    os.utime(sgm, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    data.load_reuters(root)
    assert len(calls) == 2

    # Without a source, the most recent build in the cache is used.
    third = data.load_reuters()
    assert len(calls) == 2 and third.source.startswith("cache ")
    assert third.word_index == first.word_index
    # A cache file is itself a valid explicit source.
    assert data.load_reuters(files[0]).topics == first.topics


def test_corrupt_cache_is_rebuilt(synthetic, tmp_path) -> None:
    root, _ = synthetic
    cache = tmp_path / "own-cache"
    data.load_reuters(root, cache_dir=cache)
    (path,) = cache.glob("*.npz")
    path.write_bytes(b"garbage")
    again = data.load_reuters(root, cache_dir=cache)
    assert "built in" in again.source
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temp files left


def test_unwritable_cache_still_loads(synthetic, tmp_path) -> None:
    root, _ = synthetic
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("file where the cache dir should be")
    r = data.load_reuters(root, cache_dir=blocker / "cache")
    assert "not cached" in r.source and len(r.x_train) > 0


def test_default_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "c"))
    assert data.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(data.ENV_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "trainways"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir() == Path.home() / ".cache" / "trainways"


# --------------------------------------------------------------------- source resolution


def test_env_var_and_explicit_source(synthetic, tmp_path, monkeypatch) -> None:
    root, _ = synthetic
    seqs, labels = random_keras_data()
    npz = write_keras_npz(tmp_path / "k", seqs, labels, vocab=60)
    monkeypatch.setenv(data.ENV_DATA, str(root))
    assert data.load_reuters().source.startswith(f"Reuters-21578 SGML at {root}")
    assert data.load_reuters(npz).source == f"Keras reuters.npz at {npz}"
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "missing"))
    with pytest.raises(DataError) as exc:
        data.load_reuters()
    assert_one_line(exc, tmp_path / "missing", data.ENV_DATA)


def test_keras_cache_is_used_when_our_cache_is_empty(tmp_path) -> None:
    seqs, labels = random_keras_data()
    npz = write_keras_npz(tmp_path / "keras-home" / "datasets", seqs, labels, vocab=60)
    r = data.load_reuters()
    assert r.source == f"Keras reuters.npz at {npz}"
    assert r.word_index["w1"] == 1


def test_nothing_found_says_what_to_do(tmp_path) -> None:
    with pytest.raises(DataError) as exc:
        data.load_reuters()
    assert_one_line(exc, "--data PATH", data.ENV_DATA, "offline (test)")


def test_download_uses_get_file_with_short_timeout(monkeypatch) -> None:
    keras_utils = pytest.importorskip("keras.utils")
    seen = []

    def fake_get_file(fname, origin, file_hash):
        seen.append((fname, socket.getdefaulttimeout()))
        raise Exception(f"URL fetch failure on {origin}: None -- no network")

    monkeypatch.setattr(loading, "_download_keras_reuters", _REAL_DOWNLOAD)
    monkeypatch.setattr(keras_utils, "get_file", fake_get_file)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError) as exc:
        data.load_reuters()
    assert seen == [("reuters.npz", keras_npz._DOWNLOAD_TIMEOUT_S)]
    assert socket.getdefaulttimeout() == before
    assert_one_line(exc, "no network", "--data PATH")


# --------------------------------------------------------------------------- DataError


def test_data_errors_name_the_bad_path(tmp_path, synthetic) -> None:
    root, _ = synthetic
    cases: list[tuple[Path, Path, str]] = []  # (source, path in message, phrase)

    missing = tmp_path / "missing"
    cases.append((missing, missing, "does not exist"))

    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, empty, "no reut2-*.sgm files in"))

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    write_sgml(unlabelled / "reut2-000.sgm", [sgml_wire(1, [], "no topics here")])
    cases.append((unlabelled, unlabelled, "no wire with a <TOPICS>"))

    small = tmp_path / "small"
    small.mkdir()
    write_sgml(small / "reut2-000.sgm", [sgml_wire(i, ["t"], "few") for i in range(3)])
    cases.append((small, small, "has 15 or more"))

    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "reut2-000.sgm").mkdir()  # reading a directory fails even for root
    cases.append((unreadable, unreadable / "reut2-000.sgm", "cannot read"))

    not_zip = tmp_path / "bad.npz"
    not_zip.write_bytes(b"not a zip at all")
    cases.append((not_zip, not_zip, "is not a .npz"))

    truncated = write_keras_npz(tmp_path / "trunc", [[1, 2]], [0], vocab=2)
    truncated.write_bytes(truncated.read_bytes()[:-40])
    cases.append((truncated, truncated, "is not a .npz"))

    no_xy = tmp_path / "noxy.npz"
    np.savez(no_xy, a=np.arange(3))
    cases.append((no_xy, no_xy, "lacks the arrays 'x' and 'y'"))

    no_index = write_keras_npz(tmp_path / "noindex", [[1, 2]], [0], vocab=2)
    (no_index.parent / "reuters_word_index.json").unlink()
    cases.append((no_index, no_index.parent / "reuters_word_index.json", "not found"))

    bad_label = write_keras_npz(tmp_path / "badlabel", [[1, 2]], [46], vocab=2)
    cases.append((bad_label, bad_label, "labels outside 0..45"))

    cases.append((root / "reut2-000.sgm", root / "reut2-000.sgm", "at its directory"))

    for source, path, phrase in cases:
        with pytest.raises(DataError) as exc:
            data.load_reuters(source)
        assert_one_line(exc, path, phrase)


def test_malicious_pickle_in_npz_is_refused(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "evil" / "reuters.npz"
    path.parent.mkdir()
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    pickle.dump(Evil(), buffer, protocol=3)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(1, dtype=np.int64))
    with pytest.raises(DataError) as exc:
        data.load_reuters(path)
    assert_one_line(exc, path, "refusing to unpickle")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"num_words": 0}, "num_words must be >= 1 or None, got 0"),
        ({"skip_top": -1}, "skip_top must be >= 0, got -1"),
        ({"maxlen": 0}, "maxlen must be >= 1 or None, got 0"),
        ({"test_split": 0.0}, "test_split must be in (0, 1), got 0.0"),
        ({"test_split": 1.0}, "test_split must be in (0, 1), got 1.0"),
        ({"index_from": -3}, "index_from must be >= 0, got -3"),
        ({"oov_char": -1}, "oov_char must be >= 0, got -1"),
    ],
)
def test_bad_options(options, needle) -> None:
    with pytest.raises(DataError) as exc:
        data.load_reuters("/does/not/matter", **options)
    assert_one_line(exc, needle)


# --------------------------------------------------------------------------- model inputs


def test_pad_matches_keras_pad_sequences() -> None:
    keras = pytest.importorskip("keras")
    seqs = [[], [5], [1, 2, 3], list(range(1, 12)), [7, 8, 9, 10]]
    for max_len in (1, 4, 10, 300, None):
        ours = data.pad(seqs, max_len) if max_len else data.pad(seqs, None)
        theirs = keras.utils.pad_sequences(seqs, maxlen=max_len)
        assert ours.dtype == np.int32 == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    objects = np.empty(3, dtype=object)
    objects[:] = [[1, 2], [3], []]
    np.testing.assert_array_equal(data.pad(objects, 3), [[0, 1, 2], [0, 0, 3], [0, 0, 0]])
    assert data.pad([], 5).shape == (0, 5)
    with pytest.raises(DataError):
        data.pad(seqs, 0)


def test_loading_and_padding_do_not_import_tensorflow(tmp_path) -> None:
    seqs, labels = random_keras_data()
    npz = write_keras_npz(tmp_path / "k", seqs, labels, vocab=60)
    code = (
        "import sys; from trainways import data; r = data.load_reuters(sys.argv[1]); "
        "data.pad(r.x_train); data.describe(r); "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    # The src directory this trainways was imported from, so the child imports the same code.
    env = {**os.environ, "PYTHONPATH": str(Path(trainways.__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code, str(npz)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_describe(synthetic) -> None:
    root, kept = synthetic
    r = data.load_reuters(root)
    info = data.describe(r)
    assert info["wires"] == len(kept) == info["train"] + info["test"]
    assert info["num_topics"] == 4 and info["vocabulary"] == len(r.word_index)
    assert info["vocab_size"] == r.vocab_size and info["source"] == r.source
    assert info["length_min"] <= info["length_median"] <= info["length_max"]
    top = info["top_topics"]
    assert [t["topic"] for t in top] == ["alpha", "zeta", "fifteen", "omega"]
    assert top[0]["total"] == 17 and top[0]["train"] + top[0]["test"] == 17
    json.dumps(info)  # plain types only


def _epoch_orders(dataset, epochs: int, steps: int | None = None) -> list[list[int]]:
    if steps is None:  # one pass per epoch
        return [np.concatenate([y.numpy() for _, y in dataset]).tolist() for _ in range(epochs)]
    stream = iter(dataset)
    return [
        np.concatenate([next(stream)[1].numpy() for _ in range(steps)]).tolist()
        for _ in range(epochs)
    ]


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    first = data.epoch_order(50, seed=3, epoch=0)
    assert sorted(first.tolist()) == list(range(50))
    assert np.array_equal(first, data.epoch_order(50, seed=3, epoch=0))
    assert not np.array_equal(first, data.epoch_order(50, seed=3, epoch=1))
    assert not np.array_equal(first, data.epoch_order(50, seed=4, epoch=0))
    assert data.steps_per_epoch(64, 8) == 8 and data.steps_per_epoch(65, 8) == 9
    assert data.steps_per_epoch(65, 8, drop_remainder=True) == 8


def test_make_dataset_streams_epochs_in_epoch_order() -> None:
    pytest.importorskip("tensorflow")
    x = data.pad([[i + 1] for i in range(60)], 4)
    y = np.arange(60, dtype=np.int64)
    steps = data.steps_per_epoch(60, 8)  # 7 full batches and one of 4
    shuffled = data.make_dataset(x, y, batch_size=8, shuffle=True, seed=3)
    orders = _epoch_orders(shuffled, 3, steps)
    assert orders == [data.epoch_order(60, 3, epoch).tolist() for epoch in range(3)]
    assert orders[0] != orders[1]
    # Every pass over the dataset starts again at its first epoch, however many are opened
    # (fit opens an extra one), and a resumed stream starts at the epoch it is given.
    assert _epoch_orders(shuffled, 1, steps) == orders[:1]
    resumed = data.make_dataset(x, y, batch_size=8, shuffle=True, seed=3, first_epoch=2)
    assert _epoch_orders(resumed, 1, steps) == orders[2:]
    first_batch = next(iter(shuffled))
    assert first_batch[0].dtype.name == "int32" and first_batch[0].shape == (8, 4)
    # Rows stay paired with their labels.
    assert np.array_equal(first_batch[0].numpy()[:, -1], first_batch[1].numpy() + 1)


def test_make_dataset_without_shuffle_is_one_ordered_pass() -> None:
    pytest.importorskip("tensorflow")
    x = data.pad([[i + 1] for i in range(64)], 4)
    y = np.arange(64, dtype=np.int64)
    ordered = data.make_dataset(x, y, batch_size=10, shuffle=False)
    assert _epoch_orders(ordered, 2) == [list(range(64))] * 2
    batches = list(data.make_dataset(x, y, batch_size=10, shuffle=False, drop_remainder=True))
    assert len(batches) == 6 and batches[0][0].shape == (10, 4)
    with pytest.raises(DataError, match="seed must be >= 0, got -1"):
        data.make_dataset(x, y, batch_size=8, shuffle=True, seed=-1)


@pytest.mark.parametrize(
    ("shuffle", "first_epoch", "drop_remainder"),
    [(True, 0, False), (True, 2, False), (True, 0, True), (False, 0, False), (False, 0, True)],
)
def test_numpy_batches_are_make_datasets_batches_without_tensorflow(
    shuffle, first_epoch, drop_remainder
) -> None:
    pytest.importorskip("tensorflow")
    x = data.pad([[i + 1, i + 2] for i in range(60)], 4)
    y = np.arange(60, dtype=np.int64)
    options = {"batch_size": 8, "shuffle": shuffle, "drop_remainder": drop_remainder}
    options.update({"seed": 3, "first_epoch": first_epoch} if shuffle else {})
    theirs = data.make_dataset(x, y, **options)
    ours = data.NumpyBatches(x, y, **options)
    steps = data.steps_per_epoch(60, 8, drop_remainder=drop_remainder)
    count = 3 * steps if shuffle else steps  # three epochs of the stream, or the one pass
    expected = list(itertools.islice(theirs.as_numpy_iterator(), count))
    got = list(itertools.islice(ours, count))
    assert len(got) == len(expected) == count
    for (x_ours, y_ours), (x_theirs, y_theirs) in zip(got, expected, strict=True):
        assert x_ours.dtype == x_theirs.dtype and y_ours.dtype == y_theirs.dtype
        np.testing.assert_array_equal(x_ours, x_theirs)
        np.testing.assert_array_equal(y_ours, y_theirs)
    if not shuffle:
        assert len(list(ours)) == steps == ours.cardinality()  # one pass per iteration
    else:
        assert ours.cardinality() == -1


@pytest.mark.parametrize("make", ["make_dataset", "NumpyBatches"])
def test_a_clocked_training_dataset_is_one_epoch_per_pass_the_clocks(make) -> None:
    x = np.arange(60, dtype=np.int32).reshape(30, 2)
    y = np.arange(30, dtype=np.int64)
    clock = data.EpochClock(4)
    batches = getattr(data, make)(x, y, batch_size=8, shuffle=True, seed=3, clock=clock)
    assert batches.cardinality() == 4  # a pass ends where the epoch does: 30 wires, 8 a batch

    def one_pass() -> np.ndarray:
        got = [np.asarray(labels) for _, labels in batches]
        assert [len(part) for part in got] == [8, 8, 8, 6]
        return np.concatenate(got)

    np.testing.assert_array_equal(one_pass(), data.epoch_order(30, 3, 4))
    np.testing.assert_array_equal(one_pass(), data.epoch_order(30, 3, 4))  # until told
    clock.set_epoch(7)
    np.testing.assert_array_equal(one_pass(), data.epoch_order(30, 3, 7))


@pytest.mark.parametrize("clock", [None, 2])
@pytest.mark.parametrize("shuffle", [True, False])
def test_numpy_batches_are_make_datasets_batches_for_nested_weighted_inputs(shuffle, clock):
    pytest.importorskip("tensorflow")
    from keras import tree

    n = 27
    x = {"ids": np.arange(4 * n, dtype=np.int32).reshape(n, 4), "extra": [np.ones((n, 2))]}
    y = (np.arange(n, dtype=np.int64), np.linspace(0, 1, n, dtype=np.float32))
    weights = (np.full(n, 2.0, np.float32), np.linspace(1, 2, n, dtype=np.float32))
    options = {"sample_weight": weights, "batch_size": 6, "shuffle": shuffle, "seed": 3}
    if clock is not None:
        options.update(clock=data.EpochClock(clock), steps_per_epoch=3)
    count = 9 if shuffle and clock is None else None  # two epochs of the stream and one batch
    theirs = list(itertools.islice(data.make_dataset(x, y, **options).as_numpy_iterator(), count))
    ours = list(itertools.islice(data.NumpyBatches(x, y, **options), count))
    assert len(ours) == len(theirs) == (count or (3 if clock is not None else 5))
    for mine, batch in zip(ours, theirs, strict=True):
        assert isinstance(mine, tuple) and len(mine) == 3
        tree.assert_same_structure(mine, batch)
        for a, b in zip(tree.flatten(mine), tree.flatten(batch), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # Rows stay together across the structure: label i comes with ids row i.
    first = ours[0]
    np.testing.assert_array_equal(first[0]["ids"][:, 0], first[1][0] * 4)


def test_unsupervised_batches_are_one_tuples_in_both_pipelines() -> None:
    pytest.importorskip("tensorflow")
    x = np.arange(10, dtype=np.int32).reshape(5, 2)
    ours = list(data.NumpyBatches(x, batch_size=2, shuffle=False))
    theirs = list(data.make_dataset(x, batch_size=2, shuffle=False).as_numpy_iterator())
    assert [len(b) for b in ours] == [len(b) for b in theirs] == [1, 1, 1]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in ours]), x)


@pytest.mark.parametrize(
    ("x", "y", "weights", "needle"),
    [
        (np.ones((4, 2)), np.ones(3), None, r"row counts differ \(x has 4, y has 3\)"),
        ({"a": np.ones(4), "b": [np.ones(5)]}, np.ones(4), None, r"x\['b'\]\[0\] has 5"),
        (np.ones(4), {"o": np.ones(4)}, {"o": np.ones(2)}, r"sample_weight\['o'\] has 2"),
        (np.ones(4), None, np.ones(4), "pass y too"),
        (np.ones(4), 3, None, "y is a scalar"),
    ],
)
def test_structures_that_do_not_batch_are_one_line_errors(x, y, weights, needle) -> None:
    with pytest.raises(DataError, match=needle) as error:
        data.NumpyBatches(x, y, sample_weight=weights, batch_size=2, shuffle=False)
    assert "\n" not in str(error.value)


def test_a_clock_cuts_passes_into_epochs_of_steps_per_epoch() -> None:
    x, y = np.zeros((10, 1), np.int32), np.arange(10)
    clock = data.EpochClock()
    options = {"batch_size": 3, "shuffle": True, "seed": 1, "clock": clock}
    batches = data.NumpyBatches(x, y, **options, steps_per_epoch=2)
    assert batches.cardinality() == 2  # 4 batches a pass, 2 an epoch
    epochs = []
    for epoch in range(4):
        clock.set_epoch(epoch)
        epochs.append([b[1] for b in batches])
    assert [[len(b) for b in e] for e in epochs] == [[3, 3], [3, 1], [3, 3], [3, 1]]
    np.testing.assert_array_equal(np.concatenate(epochs[0] + epochs[1]), data.epoch_order(10, 1, 0))
    np.testing.assert_array_equal(np.concatenate(epochs[2] + epochs[3]), data.epoch_order(10, 1, 1))
    # Three batches an epoch leave one for the second: epochs differ, the count is unknown.
    assert data.NumpyBatches(x, y, **options, steps_per_epoch=3).cardinality() == -2


def test_make_dataset_draws_its_seed_from_numpys_global_generator() -> None:
    pytest.importorskip("tensorflow")
    x, y = np.zeros((12, 1), np.int32), np.arange(12)

    def first_epoch() -> list[int]:
        np.random.seed(5)  # what keras.utils.set_random_seed(5) does to NumPy
        stream = iter(data.make_dataset(x, y, batch_size=4, shuffle=True))
        return np.concatenate([next(stream)[1].numpy() for _ in range(3)]).tolist()

    assert first_epoch() == first_epoch()


def test_keras_label_names_constant_matches_keras() -> None:
    keras = pytest.importorskip("keras")
    assert tuple(keras.datasets.reuters.get_label_names()) == data.KERAS_LABEL_NAMES


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real(reuters_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("real-cache")
    started = time.perf_counter()
    reuters = data.load_reuters(reuters_dir, cache_dir=cache)
    return reuters, cache, time.perf_counter() - started


@pytest.mark.realdata
def test_real_statistics(real) -> None:
    r, _, _ = real
    assert len(r.x_train) + len(r.x_test) == 11_228
    assert (len(r.x_train), len(r.x_test)) == (8_982, 2_246)
    assert r.num_classes == 46
    assert len(r.word_index) == 30_979
    assert r.vocab_size == 30_983
    everything = [*r.x_train, *r.x_test]
    assert max(max(s) for s in everything) + 1 == r.vocab_size
    for topic, label, train, test in [("earn", 3, 3_159, 813), ("acq", 4, 1_949, 474)]:
        assert r.topics[label] == topic
        assert (int((r.y_train == label).sum()), int((r.y_test == label).sum())) == (train, test)
    info = data.describe(r)
    assert info["top_topics"][0]["topic"] == "earn" and info["wires"] == 11_228


@pytest.mark.realdata
def test_real_topic_order_is_keras_label_names(real) -> None:
    keras = pytest.importorskip("keras")
    r, _, _ = real
    assert r.topics == tuple(keras.datasets.reuters.get_label_names())


@pytest.mark.realdata
def test_real_ids_match_published_keras_values(real, reuters_dir: Path) -> None:
    """Word ids as printed from Keras's own reuters.npz / reuters_word_index.json.

    These are only reproduced with Python 2 dict order for ties; first-appearance order
    gives e.g. 'mdbl' 11401 and a different x_train[0].
    """
    r, cache, _ = real
    wi = r.word_index
    assert [wi[w] for w in ("the", "of", "to", "said", "mln", "3", "reuter")] == [
        1, 2, 3, 5, 8, 9, 14,
    ]  # fmt: skip
    expected = {"mdbl": 10996, "fawc": 16260, "degussa": 12089, "woods": 8803, "hanging": 13796}
    assert {w: wi[w] for w in expected} == expected
    top10k = data.load_reuters(reuters_dir, num_words=10_000, cache_dir=cache)
    assert top10k.x_train[10] == [
        1, 245, 273, 207, 156, 53, 74, 160, 26, 14, 46, 296, 26, 39, 74, 2979, 3554, 14,
        46, 4689, 4329, 86, 61, 3499, 4795, 14, 61, 451, 4329, 17, 12,
    ]  # fmt: skip
    assert top10k.x_train[0][:16] == [
        1, 2, 2, 8, 43, 10, 447, 5, 25, 207, 270, 5, 3095, 111, 16, 369,
    ]  # fmt: skip
    assert len(top10k.x_train[0]) == 87
    assert top10k.y_train[:10].tolist() == [3, 4, 3, 4, 4, 4, 4, 3, 3, 16]


@pytest.mark.realdata
def test_real_sgml_quirks(real, reuters_dir: Path) -> None:
    r, _, _ = real
    labelled = bodiless = 0
    for path in sorted(reuters_dir.glob("reut2-*.sgm")):
        for wire in path.read_bytes().decode("latin-1").split("</REUTERS>"):
            at = wire.find("<TOPICS>")
            if at >= 0 and wire[at + 8 : wire.find("</", at + 8)].replace("<D>", ""):
                labelled += 1
                bodiless += "<BODY>" not in wire
    assert (labelled, bodiless) == (11_367, 990)  # 989 borrow a body, 1 hits find() == -1
    assert "rn" in r.word_index  # the -1 wire's text: "rn" from "<D>earn</D>"
    assert {"lt", "amp", "3"} <= r.word_index.keys()  # entities were not decoded
    assert r.word_index["3"] == 9  # "&#3;" ends nearly every body


@pytest.mark.realdata
def test_real_cached_load_and_encode(real, reuters_dir: Path) -> None:
    r, cache, _ = real
    again = data.load_reuters(reuters_dir, cache_dir=cache)
    assert "from cache" in again.source  # (speed is measured in benchmarks/, not here)
    assert [list(s) for s in again.x_test] == [list(s) for s in r.x_test]
    # encode() on the raw SGML body reproduces the loaded sequence.
    wires = [
        w
        for p in sorted(reuters_dir.glob("reut2-*.sgm"))
        for w in sgml._scan_sgml(p.read_bytes().decode("latin-1"))
    ]
    counts: dict[str, int] = {}
    for topic, _ in wires:
        counts[topic] = counts.get(topic, 0) + 1
    kept = [text for topic, text in wires if counts[topic] >= data.MIN_WIRES_PER_TOPIC]
    order = np.arange(len(kept))
    np.random.RandomState(113).shuffle(order)
    for i in range(20):
        assert r.encode(kept[order[i]]) == r.x_train[i]
