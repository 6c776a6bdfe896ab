"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
