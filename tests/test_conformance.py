"""The conformance table: every input kind ``Model.fit`` takes × every method × every backend
trains two epochs and equals plain ``fit`` — History keys and values, final weights — or is
refused in one line before training. No cell may silently differ.

The table is one list (``tests/conformance_child.py``'s ``KINDS``); each backend's row runs in a
child process on that backend. docs/library.md shows what each kind gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("conformance_child.py")


@pytest.fixture(scope="module", params=["tensorflow", "jax", "torch"])
def row(request) -> tuple[str, dict[str, str]]:
    # One thread for PyTorch's kernels: two cores shared with the other test worker.
    env = {**os.environ, "KERAS_BACKEND": request.param, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return request.param, json.loads(done.stdout.strip().splitlines()[-1])


def test_every_input_kind_and_method_equals_plain_fit_or_is_refused_in_one_line(row):
    backend, table = row
    rows = 15 if backend == "tensorflow" else 15 - 3  # fit's own arguments: one backend's row
    assert len(table) == rows * 3, sorted(table)
    differs = {cell: verdict for cell, verdict in table.items() if verdict.startswith("differs")}
    assert not differs, f"{backend}: {differs}"
    for cell, verdict in table.items():
        assert verdict == "same" or (verdict.startswith("refused: ") and "\n" not in verdict), (
            cell,
            verdict,
        )


def test_no_input_kind_is_refused_by_any_method(row):
    backend, table = row
    refused = {cell: verdict for cell, verdict in table.items() if verdict != "same"}
    assert not refused, f"{backend}: {refused}"
