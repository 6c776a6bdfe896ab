"""Seeded, deterministic runs repeat exactly: history.csv and every weight, bit for bit."""

from __future__ import annotations

import pytest

from trainways.cli import main

from helpers import assert_same_run, train_args

METHODS = ("fit", "batch", "loop")


@pytest.mark.parametrize("method", METHODS)
def test_seeded_deterministic_runs_repeat_exactly(
    method, corpus, unbroken_run, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    options = ("--max-len", "60", "--deterministic")
    first = unbroken_run(corpus, method, 3, *options)
    again = tmp_path / "again"
    assert main(train_args(corpus, again, method, 3, *options)) == 0
    assert_same_run(again, first)
