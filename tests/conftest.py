"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import Children, train_args, use_the_clis_thread_pools, write_corpus

# Before any test starts TensorFlow: whichever test ran first would otherwise decide.
use_the_clis_thread_pools()

# The repository sits beside the shared data: <root>/main and <root>/shared/data/...
_DEFAULT_REUTERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "reuters21578"


@pytest.fixture(scope="session", autouse=True)
def _allow_other_data():
    """The synthetic corpora are not the Keras dataset: allow them, as a user would say so.

    Session-wide (not a function's ``monkeypatch``), so that module-scoped fixtures that train
    a run see it too; tests of the refusal ``monkeypatch.delenv`` it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINWAYS_ALLOW_OTHER_DATA", "1")
        yield


@pytest.fixture(scope="session")
def reuters_dir() -> Path:
    """The Reuters-21578 SGML directory ($TRAINWAYS_REUTERS_DIR overrides); skip if absent."""
    path = Path(os.environ.get("TRAINWAYS_REUTERS_DIR") or _DEFAULT_REUTERS_DIR).expanduser()
    if not any(path.glob("reut2-*.sgm")):
        pytest.skip(f"no Reuters-21578 reut2-*.sgm in {path} (set TRAINWAYS_REUTERS_DIR)")
    return path


@pytest.fixture(scope="session")
def real_reuters(reuters_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The full dataset built from the real SGML once per session, in a private cache."""
    from trainways.data import load_reuters

    return load_reuters(reuters_dir, cache_dir=tmp_path_factory.mktemp("reuters-cache"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic corpus of 240 wires: 192 to train on (6 batches of 32), 48 to validate."""
    return write_corpus(tmp_path_factory.mktemp("sgml"), wires_per_topic=40)


@pytest.fixture(scope="session")
def unbroken_run(tmp_path_factory: pytest.TempPathFactory):
    """``unbroken_run(data, method, epochs, *extra)``: the run directory of that uninterrupted
    ``trainways train`` (:func:`helpers.train_args`), trained in this process once per session.

    The references every stopped, resumed, repeated or distributed run is compared with. Treat
    them as read-only: copy one before changing it.
    """
    from trainways.cli import main

    root = tmp_path_factory.mktemp("unbroken")
    runs: dict[tuple[str, ...], Path] = {}

    def train(data: Path, method: str, epochs: int, *extra: str) -> Path:
        key = (str(data), method, str(epochs), *extra)
        if key not in runs:
            out = root / f"{len(runs)}-{method}"
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("TRAINWAYS_CACHE_DIR", str(root / "cache"))
                assert main(train_args(data, out, method, epochs, *extra)) == 0
            runs[key] = out
        return runs[key]

    return train


@pytest.fixture
def children(tmp_path: Path):
    """Start child ``trainways`` processes (:class:`helpers.Children`); none outlives the test."""
    spawned = Children(tmp_path / "cache")
    yield spawned
    spawned.kill_all()
