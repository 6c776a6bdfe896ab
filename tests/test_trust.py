"""Trust: reproducible runs, three methods that agree, and nothing lost on a crash.

Child processes are real ``trainways`` processes, killed with real signals.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from trainways import rundir
from trainways.checkpoint import CHECKPOINTS
from trainways.cli import main

from helpers import write_corpus

METHODS = ("fit", "batch", "loop")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("sgml"), wires_per_topic=40)


def _weights(run: Path) -> list[np.ndarray]:
    return keras.models.load_model(run / rundir.MODEL).get_weights()


def _history(run: Path) -> list[dict[str, str]]:
    with (run / rundir.HISTORY).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _status(run: Path) -> dict:
    return json.loads((run / rundir.STATUS).read_text())


def _train_args(data: Path, out: Path, method: str, epochs: int, *extra: str) -> list[str]:
    return [
        "train",
        "--method",
        method,
        "--epochs",
        str(epochs),
        "--seed",
        "5",
        "--deterministic",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def _spawn(args: list[str], cache: Path) -> subprocess.Popen:
    env = {**os.environ, "TRAINWAYS_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "trainways.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(
                f"child exited early: {process.returncode} {process.stderr.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.05)


def _checkpoint_epochs(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run / CHECKPOINTS).glob("epoch-*"))


# --------------------------------------------------------------------------- reproducible


@pytest.mark.parametrize("method", METHODS)
def test_seeded_deterministic_runs_repeat_exactly(method, corpus, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert main(_train_args(corpus, run, method, 3, "--max-len", "60")) == 0
    assert _history(runs[0]) == _history(runs[1])
    for a, b in zip(_weights(runs[0]), _weights(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ checkpointing


def test_every_epoch_is_checkpointed_and_two_are_kept(corpus, tmp_path):
    run = tmp_path / "run"
    assert main(_train_args(corpus, run, "loop", 4, "--max-len", "60")) == 0
    assert _checkpoint_epochs(run) == [3, 4]
    assert _status(run)["state"] == "completed"


def test_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    run = tmp_path / "run"
    status = main(_train_args(corpus, run, "loop", 3, "--max-len", "60", "--lr", "1e12"))
    assert status == 1
    state = _status(run)
    assert state["state"] == "failed"
    assert state["error"].startswith("non-finite loss at epoch ")
    epoch = int(state["error"].split()[4])
    assert _checkpoint_epochs(run) == ([epoch - 1] if epoch > 1 else [])


def test_resume_refuses_what_it_cannot_continue(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(corpus, run, "fit", 1, "--max-len", "60")) == 0
    assert main(["train", "--resume", str(run)]) == 2
    assert "already completed" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a trainways run" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    rundir.set_status(run, rundir.INTERRUPTED)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues with the run's own config: drop --epochs, --lr" in err
    assert err.count("\n") == 1


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(corpus, tmp_path, capsys):
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert main(_train_args(corpus, reference, "batch", 3, "--max-len", "60")) == 0
    assert main(_train_args(corpus, run, "batch", 3, "--max-len", "60")) == 0
    # As if the run had died while its last checkpoint was being written.
    latest = run / CHECKPOINTS / "epoch-0003" / "arrays.npz"
    latest.write_bytes(latest.read_bytes()[:100])
    rundir.set_status(run, rundir.INTERRUPTED)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    log = (run / rundir.LOG).read_text()
    warnings = [line for line in log.splitlines() if "epoch-0003" in line]
    assert len(warnings) == 1 and "epoch-0002" in log
    assert _history(run) == _history(reference)
    for a, b in zip(_weights(run), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------- real kills of real processes


def _kill_mid_epoch_then_resume(data: Path, tmp_path: Path, method: str, signum: int, *extra):
    """Start a run, send ``signum`` in the middle of its second epoch, resume it, compare."""
    cache = tmp_path / "cache"
    reference, run = tmp_path / "reference", tmp_path / "run"
    args = _train_args(data, reference, method, 2, *extra)
    assert main(args) == 0

    child = _spawn(_train_args(data, run, method, 2, *extra), cache)
    _wait_for(lambda: _checkpoint_epochs(run) == [1], child)
    time.sleep(0.3)  # well inside epoch 2, which takes seconds
    child.send_signal(signum)
    returncode = child.wait(timeout=120)
    assert _checkpoint_epochs(run) == [1], "the child was not stopped mid-epoch"
    state = _status(run)

    resumed = main(["train", "--resume", str(run), "--quiet"])
    assert resumed == 0
    assert _status(run)["state"] == "completed"
    assert _history(run) == _history(reference)
    for a, b in zip(_weights(run), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    return returncode, state


@pytest.mark.realdata
@pytest.mark.parametrize("method", METHODS)
def test_sigkill_mid_epoch_then_resume_equals_an_unbroken_run(method, reuters_dir, tmp_path):
    returncode, state = _kill_mid_epoch_then_resume(reuters_dir, tmp_path, method, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert state["state"] == "running"  # a SIGKILLed process cannot say anything else


@pytest.mark.realdata
def test_sigkill_then_resume_with_the_speed_levers_on(reuters_dir, tmp_path):
    # Whole-epoch executions and the XLA optimizer: the checkpoint still holds everything.
    fast = ("--steps-per-execution", "epoch", "--xla-optimizer")
    returncode, _ = _kill_mid_epoch_then_resume(
        reuters_dir, tmp_path, "loop", signal.SIGKILL, *fast
    )
    assert returncode == -signal.SIGKILL


@pytest.mark.realdata
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_cleanly_and_resume(signum, code, reuters_dir, tmp_path):
    returncode, state = _kill_mid_epoch_then_resume(reuters_dir, tmp_path, "loop", signum)
    assert returncode == code
    assert state["state"] == "interrupted"
    assert state["epochs_completed"] == 1
    assert state["resume"] == f"trainways train --resume {tmp_path / 'run'}"
    assert state["signal"] == signal.Signals(signum).name


# ------------------------------------------------------------------ the three methods agree


@pytest.mark.realdata
def test_agree_one_epoch_on_real_data(reuters_dir, tmp_path, capsys):
    report = tmp_path / "agree.json"
    status = main(
        [
            "agree",
            "--epochs",
            "1",
            "--seed",
            "3",
            "--data",
            str(reuters_dir),
            "--json",
            str(report),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    figures = json.loads(report.read_text())
    assert figures["weight_difference_after_epoch_1"] <= 1e-5
    assert figures["val_accuracy_difference"] <= 0.005
    assert "embedding/embeddings" in out and out.strip().splitlines()[-1].startswith("AGREE")


@pytest.mark.realdata
def test_agree_one_epoch_with_the_float32_speed_levers(reuters_dir, tmp_path, capsys):
    report = tmp_path / "agree.json"
    argv = ["agree", "--epochs", "1", "--seed", "3", "--data", str(reuters_dir), "--quiet"]
    levers = ["--steps-per-execution", "epoch", "--xla-optimizer"]
    assert main([*argv, "--json", str(report), *levers]) == 0, capsys.readouterr().out
    figures = json.loads(report.read_text())
    assert figures["weight_difference_after_epoch_1"] <= 1e-5
    assert figures["val_accuracy_difference"] <= 0.005


@pytest.mark.realdata
def test_fit_and_loop_agree_exactly_in_mixed_bfloat16(real_reuters):
    # The batch method is left out: train_on_batch traces its first graph for the concrete
    # batch shape, whose bfloat16 kernels round differently (see the README).
    from trainways.agreement import measure as measure_agreement
    from trainways.config import RunConfig, TrainConfig

    train = TrainConfig(epochs=1, seed=3, steps_per_execution="epoch", precision="mixed_bfloat16")
    agreement, _ = measure_agreement(RunConfig(train=train), real_reuters, methods=("fit", "loop"))
    assert agreement.identical


@pytest.mark.realdata
@pytest.mark.slow
def test_ten_epochs_of_the_three_methods_agree(reuters_dir):
    from trainways.agreement import measure as measure_agreement
    from trainways.config import RunConfig, TrainConfig
    from trainways.data import load_reuters

    config = RunConfig(train=TrainConfig(epochs=10, seed=11, deterministic=True))
    agreement, histories = measure_agreement(config, load_reuters(reuters_dir))
    assert agreement.weight_difference <= 1e-5
    assert agreement.val_accuracy_difference <= 0.005
    assert all(len(h["val_accuracy"]) == 10 for h in histories.values())
