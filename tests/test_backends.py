"""Keras backends other than TensorFlow: choosing one, and the three methods on JAX.

This pytest process runs Keras on TensorFlow, so every JAX run is a child process (started
together: most of their time is starting Python). On the synthetic corpus: each method trains
on JAX and records its backend; the three agree after one epoch; a run stopped by SIGKILL in
epoch 2 resumes — on JAX, because the run recorded it — to exactly the unbroken run; what JAX does
not support yet is a one-line error before any file is written.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainways import rundir
from trainways.checkpoint import first_epoch_weights
from trainways.cli import main

from helpers import Children, assert_same_run, checkpoint_epochs, read_history, train_args

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed: pip install -e '.[jax]'"
)

METHODS = ("fit", "batch", "loop")
EPOCHS = 3
OPTIONS = ("--max-len", "60", "--backend", "jax")
JAX = {"KERAS_BACKEND": "jax"}  # for the paused child, whose script imports Keras first


@pytest.fixture(scope="module")
def jax_runs(corpus, tmp_path_factory) -> dict[str, Path]:
    """Each method on JAX, unbroken; and loop again, stopped by SIGKILL in epoch 2."""
    root = tmp_path_factory.mktemp("jax")
    children = Children(root / "cache")
    try:
        unbroken = {
            method: children.spawn(*train_args(corpus, root / method, method, EPOCHS, *OPTIONS))
            for method in METHODS
        }
        marker = root / "killed.paused"
        killed = children.spawn(
            *train_args(corpus, root / "killed", "loop", EPOCHS, *OPTIONS),
            pause_at="2:3",
            marker=marker,
            env=JAX,
        )
        children.wait_for(marker, killed)
        assert checkpoint_epochs(root / "killed") == [1]
        killed.send_signal(signal.SIGKILL)
        assert children.wait(killed) == -signal.SIGKILL
        for method, process in unbroken.items():
            assert children.wait(process) == 0, f"{method}: {process.stderr_text[-3000:]}"
    finally:
        children.kill_all()
    return {**{method: root / method for method in METHODS}, "killed": root / "killed"}


def test_each_method_trains_on_jax_and_records_it(jax_runs):
    for method in METHODS:
        run = jax_runs[method]
        assert json.loads((run / rundir.STATUS).read_text())["state"] == "completed"
        assert json.loads((run / rundir.CONFIG).read_text())["device"]["backend"] == "jax"
        assert "JAX" in (run / rundir.LOG).read_text()
        assert len(read_history(run)) == EPOCHS


def test_the_three_methods_agree_on_jax_after_one_epoch(jax_runs):
    weights = {method: first_epoch_weights(jax_runs[method]) for method in METHODS}
    for method in ("batch", "loop"):
        for (name, ours), (other, theirs) in zip(weights[method], weights["fit"], strict=True):
            assert name == other
            assert np.max(np.abs(ours - theirs)) <= 1e-5, (method, name)
    histories = {method: read_history(jax_runs[method]) for method in METHODS}
    for method in ("batch", "loop"):
        for ours, theirs in zip(histories[method], histories["fit"], strict=True):
            assert abs(float(ours["val_accuracy"]) - float(theirs["val_accuracy"])) <= 0.005


def test_a_killed_jax_run_resumes_on_jax_to_the_unbroken_run(jax_runs, tmp_path):
    # In a child: this process's Keras runs on TensorFlow, and --resume must pick the run's own
    # backend from its config.json with no --backend given.
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", "train", "--resume", str(jax_runs["killed"])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(jax_runs["killed"], jax_runs["loop"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--xla-optimizer",), "on JAX the whole step is already one XLA program"),
        (("--step", "examples/tutorial_step.py:train_step"), "TensorFlow backend only, for now"),
    ],
)
def test_what_jax_does_not_support_yet_is_refused_in_one_line(options, message, corpus, tmp_path):
    out = tmp_path / "run"
    argv = train_args(corpus, out, "loop", 1, *OPTIONS, *options)
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not out.exists()


def test_a_backend_other_than_the_running_one_is_refused_in_this_process(corpus, tmp_path, capsys):
    assert main(train_args(corpus, tmp_path / "run", "fit", 1, *OPTIONS)) == 2
    assert "Keras already runs on tensorflow in this process" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_backend_that_is_not_installed_names_its_install_command(monkeypatch):
    from trainways import backends
    from trainways.config import ConfigError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    install = r"pip install -e '\.\[jax\]'"
    with pytest.raises(ConfigError, match=f"backend jax is not installed: {install}"):
        backends.select("jax")
