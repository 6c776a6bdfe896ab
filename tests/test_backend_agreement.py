"""Backends side by side: ``agree --backends`` and ``compare --backends`` start every backend from
the same initial weights (``--initial-weights``) and batches, so the first step's loss agrees.

The parent runs in this process (on TensorFlow); each backend trains in its own child. On the real
data, ``agree --backend jax`` and ``--backend torch``: the three methods agree on each backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from trainways import rundir
from trainways.cli import main

needs_all = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("jax", "torch")),
    reason="needs JAX and PyTorch: pip install -e '.[jax,torch]'",
)


@needs_all
def test_agree_backends_starts_every_backend_from_the_same_weights_and_batches(
    corpus, tmp_path, capsys
):
    figures = tmp_path / "agree.json"
    argv = ["agree", "--backends", "tensorflow,jax,torch", "--data", str(corpus)]
    code = main([*argv, "--max-len", "60", "--epochs", "2", "--seed", "5", "--json", str(figures)])
    out = capsys.readouterr().out
    result = json.loads(figures.read_text())
    assert result["backends"] == ["tensorflow", "jax", "torch"]
    # The same initial weights and batches: the first step's loss agrees across backends (the
    # seed alone would give each backend other initial weights, and losses apart by ~1e-3).
    assert result["first_step_difference"] <= 1e-5
    assert len(result["val_accuracy"]["torch"]) == 2
    assert code == (0 if result["ok"] else 1)
    assert "first-step loss" in out and ("AGREE" in out or "DISAGREE" in out)


@needs_all
def test_compare_backends_puts_them_side_by_side_from_the_same_initial_weights(corpus, tmp_path):
    out = tmp_path / "compare"
    argv = ["compare", "--backends", "jax,torch", "--data", str(corpus), "--max-len", "60"]
    assert main([*argv, "--epochs", "1", "--seed", "5", "--out", str(out), "--quiet"]) == 0
    for backend in ("jax", "torch"):
        config = json.loads((out / backend / rundir.CONFIG).read_text())
        assert config["device"]["backend"] == backend
        assert config["model"]["initial_weights"] == str(out / rundir.INITIAL_WEIGHTS)
    report = (out / rundir.REPORT_MD).read_text()
    assert "| backend |" in report and "| jax |" in report and "| torch |" in report
    first = [
        json.loads((out / b / rundir.METRICS).read_text())["first_step_loss"]
        for b in ("jax", "torch")
    ]
    assert abs(first[0] - first[1]) <= 1e-5


@pytest.mark.realdata
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(name) is None, reason=f"{name} is not installed"
            ),
        )
        for name in ("jax", "torch")
    ],
)
def test_the_three_methods_agree_on_the_real_data_on_each_backend(backend, reuters_dir, tmp_path):
    # In a child: this process runs Keras on TensorFlow. Measured bitwise equal on both.
    figures = tmp_path / "agree.json"
    argv = ["agree", "--backend", backend, "--data", str(reuters_dir), "--seed", "42"]
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", *argv, "--quiet", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(figures.read_text())
    assert report["config"]["device"]["backend"] == backend
    assert report["weight_difference_after_epoch_1"] <= 1e-5
    assert report["val_accuracy_difference"] <= 0.005
