"""Data that is not what it claims to be: fingerprints, damaged files, a run's own data, and
options that leave no vocabulary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from trainways import rundir
from trainways.cli import main
from trainways.config import DataConfig, RunConfig
from trainways.data import (
    ENV_ALLOW_OTHER_DATA,
    KERAS_REUTERS,
    Corpus,
    DataError,
    Fingerprint,
    fingerprint_of,
    load_reuters,
)
from trainways.data import cache as data_cache
from trainways.data.keras_npz import KERAS_LABEL_NAMES

from helpers import write_corpus

CUT_FILE = "reut2-007.sgm"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Private caches, and no data found by accident."""
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINWAYS_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


@pytest.fixture
def keras_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take away the test suite's permission for other data (conftest sets it for all)."""
    monkeypatch.delenv(ENV_ALLOW_OTHER_DATA, raising=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("sgml"))


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("other-sgml"), seed=1)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert re.match(r"trainways [a-z ]+: error: ", err), err
    return err


def _snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (``None`` for a directory)."""
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(directory.rglob("*"))
    }


def _cut(source: Path, target: Path, *, whole_wires: bool) -> None:
    """``target``: the first half of ``source``, or that half up to its last complete wire."""
    raw = source.read_bytes()
    half = raw[: len(raw) // 2]
    if whole_wires:
        half = half[: half.rindex(b"</REUTERS>\n") + len(b"</REUTERS>\n")]
    assert half.count(b"<REUTERS") > 0
    target.write_bytes(half)


def _copy_with_one_cut(reuters_dir: Path, target: Path, *, whole_wires: bool) -> Path:
    """Symlinks to the real files, except one cut copy of :data:`CUT_FILE`."""
    target.mkdir()
    for path in sorted(reuters_dir.glob("reut2-*.sgm")):
        if path.name == CUT_FILE:
            _cut(path, target / path.name, whole_wires=whole_wires)
        else:
            (target / path.name).symlink_to(path)
    return target


# --------------------------------------------------------------------------- fingerprint


def _corpus(tokens, offsets, labels, topics=("a", "b"), words=None) -> Corpus:
    word_index = words or {"the": 1, "oil": 2, "said": 3}
    return Corpus(
        np.asarray(tokens), np.asarray(offsets), np.asarray(labels), topics, word_index, "x"
    )


def test_fingerprint_ignores_dtypes_and_sees_every_part() -> None:
    base = _corpus(np.array([1, 2, 3, 1], np.int32), [0, 2, 4], np.array([0, 1], np.int32))
    same = _corpus(np.array([1, 2, 3, 1], np.int64), [0, 2, 4], np.array([0, 1], np.int64))
    found = fingerprint_of(base)
    assert found == fingerprint_of(same)  # the SGML build keeps int32, Keras's npz int64
    assert (found.wires, found.words, len(found.sha256)) == (2, 3, 64)
    others = [
        _corpus([1, 2, 3, 2], [0, 2, 4], [0, 1]),  # a token
        _corpus([1, 2, 3, 1], [0, 1, 4], [0, 1]),  # a wire boundary
        _corpus([1, 2, 3, 1], [0, 2, 4], [1, 1]),  # a label
        _corpus([1, 2, 3, 1], [0, 2, 4], [0, 1], topics=("b", "a")),  # topic names
        _corpus([1, 2, 3, 1], [0, 2, 4], [0, 1], words={"the": 1, "said": 2, "oil": 3}),
    ]
    assert len({found.sha256, *(fingerprint_of(c).sha256 for c in others)}) == 6
    assert Fingerprint.from_dict(json.loads(json.dumps(found.to_dict()))) == found
    with pytest.raises(DataError, match=re.escape("is not {wires, words, sha256}")):
        Fingerprint.from_dict({"wires": 2})


def test_the_build_and_its_cache_give_the_same_fingerprint(corpus: Path, tmp_path: Path) -> None:
    built = load_reuters(corpus, cache_dir=tmp_path / "c")
    cached = load_reuters(corpus, cache_dir=tmp_path / "c")
    assert "built in" in built.source and "from cache" in cached.source
    assert built.fingerprint == cached.fingerprint != KERAS_REUTERS
    # Taken before the options: num_words does not change what the data is.
    assert load_reuters(corpus, num_words=10, cache_dir=tmp_path / "c").fingerprint == (
        built.fingerprint
    )


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_loads(reuters_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real data built, read back from the cache, and as a Keras-format npz."""
    cache = tmp_path_factory.mktemp("real-cache")
    built = load_reuters(reuters_dir, cache_dir=cache)
    cached = load_reuters(reuters_dir, cache_dir=cache)
    corpus = data_cache._latest_cache(cache)
    assert corpus is not None
    npz_dir = tmp_path_factory.mktemp("keras-npz")
    x = np.empty(len(corpus.labels), dtype=object)
    bounds = corpus.offsets.tolist()
    ids = corpus.tokens.tolist()
    for i in range(len(x)):
        x[i] = ids[bounds[i] : bounds[i + 1]]
    np.savez(npz_dir / "reuters.npz", x=x, y=corpus.labels.astype(np.int64))
    (npz_dir / "reuters_word_index.json").write_text(json.dumps(corpus.word_index))
    from_npz = load_reuters(npz_dir / "reuters.npz", cache_dir=cache)
    return built, cached, from_npz


@pytest.mark.realdata
def test_real_data_has_the_keras_fingerprint(real_loads) -> None:
    built, cached, from_npz = real_loads
    assert "built in" in built.source and "from cache" in cached.source
    assert from_npz.source.startswith("Keras reuters.npz at ")
    assert from_npz.topics == KERAS_LABEL_NAMES  # the npz path names topics itself
    for reuters in real_loads:
        assert reuters.fingerprint == KERAS_REUTERS
    assert KERAS_REUTERS.to_dict() == {
        "wires": 11_228,
        "words": 30_979,
        "sha256": "7574fd59733dbeb212722a747f4350db5e9476f14fc9944148d7a6ee3bf456ee",
    }


@pytest.mark.realdata
def test_real_data_info_says_it_is_keras(reuters_dir: Path, keras_only, capsys) -> None:
    assert main(["data", "info", "--data", str(reuters_dir)]) == 0
    out = capsys.readouterr().out
    assert (
        "fingerprint: 11,228 wires, 30,979 words, sha256 7574fd59733dbeb2 "
        "(the Keras Reuters dataset)"
    ) in out


@pytest.mark.realdata
@pytest.mark.parametrize("allow", [[], ["--allow-other-data"]])
def test_a_file_cut_mid_wire_is_named(reuters_dir, tmp_path, keras_only, capsys, allow) -> None:
    cut = _copy_with_one_cut(reuters_dir, tmp_path / "cut", whole_wires=False)
    out = tmp_path / "run"
    for argv in (
        ["data", "info", "--data", str(cut), *allow],
        ["train", "--data", str(cut), "--out", str(out), *allow],
    ):
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert f"{cut / CUT_FILE} ends in the middle of a wire (NEWID " in err
        assert "the file is damaged; restore it from the original" in err
        assert capsys.readouterr().out == ""
    # Damaged is never intended: --allow-other-data does not let it through.
    assert not out.exists()
    assert not any((tmp_path / "cache").glob("*.npz"))


@pytest.fixture(scope="module")
def fewer_wires(reuters_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real files with one cut at a wire boundary (whole, but not Keras's), and a cache."""
    root = tmp_path_factory.mktemp("fewer")
    return _copy_with_one_cut(reuters_dir, root / "sgml", whole_wires=True), root / "cache"


@pytest.mark.realdata
def test_other_data_is_refused_before_anything_is_written(
    fewer_wires, tmp_path, keras_only, monkeypatch, capsys
) -> None:
    data_dir, cache = fewer_wires
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(cache))  # built once for the module
    out = tmp_path / "run"
    for argv in (
        ["data", "info", "--data", str(data_dir)],
        ["train", "--data", str(data_dir), "--out", str(out)],
    ):
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert f"{data_dir} has " in err and " wires and " in err
        assert "not Keras's 11,228 and 30,979 (sha256 7574fd59733dbeb2)" in err
        assert "it is not the Keras Reuters dataset; pass --allow-other-data" in err
        assert ENV_ALLOW_OTHER_DATA in err
    assert not out.exists()


@pytest.mark.realdata
@pytest.mark.parametrize("how", ["flag", "env"])
def test_other_data_is_allowed_when_intended(
    fewer_wires, keras_only, monkeypatch, capsys, how
) -> None:
    data_dir, cache = fewer_wires
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(cache))
    argv = ["data", "info", "--data", str(data_dir)]
    if how == "flag":
        argv.append("--allow-other-data")
    else:
        monkeypatch.setenv(ENV_ALLOW_OTHER_DATA, "1")
    assert main(argv) == 0
    out = capsys.readouterr().out
    found = load_reuters(data_dir).fingerprint
    assert found is not None and found.wires < KERAS_REUTERS.wires
    assert f"fingerprint: {found} (not the Keras Reuters dataset; allowed)" in out
    assert f"wires:       {found.wires:,} " in out


# ---------------------------------------------------------------- synthetic: the refusal


@pytest.mark.parametrize("command", ["train", "agree", "compare"])
def test_training_commands_refuse_other_data(corpus, tmp_path, keras_only, capsys, command):
    out = tmp_path / "out"
    argv = [command, "--data", str(corpus), "--max-len", "40", "--epochs", "1"]
    argv += ["--json", str(out / "agree.json")] if command == "agree" else ["--out", str(out)]
    assert main(argv) == 2
    assert "is not the Keras Reuters dataset; pass --allow-other-data" in _one_line_error(capsys)
    assert not out.exists()


def test_data_info_refuses_other_data_unless_allowed(corpus, keras_only, monkeypatch, capsys):
    assert main(["data", "info", "--data", str(corpus)]) == 2
    assert f"{corpus} has 144 wires and " in _one_line_error(capsys)
    assert main(["data", "info", "--data", str(corpus), "--allow-other-data"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint: 144 wires, " in out and "(not the Keras Reuters dataset; allowed)" in out
    monkeypatch.setenv(ENV_ALLOW_OTHER_DATA, "1")
    assert main(["data", "info", "--data", str(corpus)]) == 0
    assert "(not the Keras Reuters dataset; allowed)" in capsys.readouterr().out


def test_a_synthetic_file_cut_mid_wire_is_named(corpus, tmp_path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    first, second = sorted(corpus.glob("reut2-*.sgm"))
    (cut / first.name).write_bytes(first.read_bytes())
    text = second.read_bytes()
    last = text.rindex(b"<REUTERS")
    (cut / second.name).write_bytes(text[: text.rindex(b"<BODY>") + 10])  # in its body
    with pytest.raises(DataError) as error:
        load_reuters(cut)
    message = str(error.value)
    assert "\n" not in message
    assert f"{cut / second.name} ends in the middle of a wire (NEWID 144, " in message
    (cut / second.name).write_bytes(text[: last + 12])  # inside the <REUTERS tag itself
    with pytest.raises(DataError, match="ends in the middle of a wire \\(its last wire, "):
        load_reuters(cut)


# ------------------------------------------------------------------- a run and its data


def _train(corpus: Path, out: Path, *extra: str) -> int:
    argv = ["train", "--data", str(corpus), "--out", str(out), "--max-len", "40"]
    return main([*argv, "--epochs", "1", "--seed", "1", "--quiet", *extra])


@pytest.fixture(scope="module")
def trained_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fit"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINWAYS_CACHE_DIR", str(out.parent / "cache"))
        assert _train(corpus, out) == 0
    return out


def test_a_run_records_its_data(trained_run: Path, corpus: Path) -> None:
    config = json.loads((trained_run / rundir.CONFIG).read_text())
    assert config["data"]["fingerprint"] == load_reuters(corpus).fingerprint.to_dict()
    assert config["data"]["allow_other_data"] is False  # the env var is not recorded as a flag
    assert RunConfig.from_dict(config).data.fingerprint == config["data"]["fingerprint"]


def test_evaluate_refuses_other_data_and_changes_nothing(
    trained_run, corpus, other_corpus, tmp_path, capsys
) -> None:
    before = _snapshot(trained_run)
    assert main(["evaluate", str(trained_run), "--data", str(other_corpus)]) == 2
    err = _one_line_error(capsys)
    assert f"{other_corpus} (144 wires, " in err
    assert f"is not the data {trained_run} was trained on (144 wires, " in err
    assert "point --data at that data" in err
    assert _snapshot(trained_run) == before
    # The same data elsewhere is the same data.
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in corpus.glob("reut2-*.sgm"):
        (moved / path.name).write_bytes(path.read_bytes())
    assert main(["evaluate", str(trained_run), "--data", str(moved)]) == 0
    assert json.loads((trained_run / rundir.EVALUATION).read_text())["test_wires"] == 29


def test_resume_refuses_other_data_and_changes_nothing(
    corpus, other_corpus, tmp_path, monkeypatch, capsys
) -> None:
    import keras

    def interrupt(self, batch, logs=None):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.CSVLogger, "on_train_batch_end", interrupt, raising=False)
        assert _train(corpus, out) == 130
    assert json.loads((out / rundir.STATUS).read_text())["state"] == "interrupted"
    before = _snapshot(out)
    assert main(["train", "--resume", str(out), "--data", str(other_corpus), "--quiet"]) == 2
    assert f"is not the data {out} was trained on" in _one_line_error(capsys)
    assert _snapshot(out) == before


def test_a_run_without_a_recorded_fingerprint_is_accepted(monkeypatch) -> None:
    from trainways.preflight import check_run_data

    found = Fingerprint(10, 20, "ab" * 32)
    reuters = SimpleNamespace(fingerprint=found, source="somewhere")
    old = RunConfig()  # made before runs recorded their data
    check_run_data(old, reuters, Path("run"))  # other data, allowed by the test suite
    monkeypatch.delenv(ENV_ALLOW_OTHER_DATA)
    with pytest.raises(DataError, match="not the Keras Reuters dataset"):
        check_run_data(old, reuters, Path("run"))  # ... but still not Keras's
    check_run_data(RunConfig(data=DataConfig(allow_other_data=True)), reuters, Path("run"))
    recorded = RunConfig(data=DataConfig(fingerprint=found.to_dict()))
    check_run_data(recorded, reuters, Path("run"))  # its own data, recorded as allowed
    other = SimpleNamespace(fingerprint=Fingerprint(10, 20, "cd" * 32), source="elsewhere")
    with pytest.raises(
        DataError, match=r"elsewhere \(10 wires, .* is not the data run was trained on"
    ):
        check_run_data(recorded, other, Path("run"))


# ---------------------------------------------------------------- no usable vocabulary


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"num_words": 1}, "choose num_words > 4, or None for all words"),
        ({"num_words": 3}, "num_words 3 leaves 0 usable words"),
        ({"num_words": 4}, "num_words 4 leaves 0 usable words"),
        ({"skip_top": 10_000}, "choose skip_top <= "),
        ({"num_words": 12, "skip_top": 12}, "num_words 12 with skip_top 12 leaves 0 usable"),
    ],
)
def test_options_that_leave_no_word_are_refused(corpus, options, needle) -> None:
    with pytest.raises(DataError) as error:
        load_reuters(corpus, **options)
    message = str(error.value)
    assert "\n" not in message and needle in message
    assert "words have ids 4.." in message


def test_one_usable_word_is_enough(corpus) -> None:
    reuters = load_reuters(corpus, num_words=5)
    last = 3 + len(reuters.word_index)
    assert load_reuters(corpus, skip_top=last).vocab_size == last + 1
    with pytest.raises(DataError, match=f"^skip_top {last + 1} leaves 0 usable words"):
        load_reuters(corpus, skip_top=last + 1)
    assert {i for s in reuters.x_train for i in s} == {1, 2, 4}


@pytest.mark.parametrize("flags", [["--num-words", "3"], ["--skip-top", "100000"]])
def test_the_cli_refuses_them_before_writing(corpus, tmp_path, capsys, flags) -> None:
    out = tmp_path / "run"
    assert _train(corpus, out, *flags) == 2
    assert "leaves 0 usable words" in _one_line_error(capsys)
    assert not out.exists()
    assert main(["data", "info", "--data", str(corpus), *flags]) == 2
    assert "leaves 0 usable words" in _one_line_error(capsys)
