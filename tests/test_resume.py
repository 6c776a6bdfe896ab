"""Stopping and resuming a run directory through the command line.

Every epoch is checkpointed and two are kept; a corrupt latest checkpoint falls back to the one
before; ``--resume`` refuses what it cannot continue; a non-finite loss fails the run and keeps
the last good checkpoint; and real child processes stopped mid-epoch by SIGKILL, SIGINT or
SIGTERM resume to exactly the run that was never stopped (history.csv and weights, bit for bit).

The stopped children run ``tests/pause_at_batch.py``, which waits at a known batch of the second
epoch until the signal comes: no guessing how long an epoch takes. The synthetic ones are started
together by one fixture; each test then resumes its own in this process. The unit tests of the
checkpoint format are in test_checkpoint.py; the signal handler's in test_callbacks.py.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainways import rundir
from trainways.checkpoint import CHECKPOINTS
from trainways.cli import main

from helpers import Children, assert_same_run, checkpoint_epochs, read_status, train_args

METHODS = ("fit", "batch", "loop")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TWO_RATES = f"{EXAMPLES / 'two_learning_rates.py'}:train_step"
EPOCHS = 3  # stopped in the second epoch; after the resume, the first checkpoint is pruned
# Calls of 4 steps: an epoch of the synthetic corpus (6 steps) is 4 + 2, so a stop waits between
# them (the default, 16, would make each epoch one call, with no hook in its middle).
SMALL = ("--max-len", "60", "--deterministic", "--steps-per-execution", "4")
REGULARISED = (
    "--model", "tfidf_mlp", "--validation-split", "0.2", "--label-smoothing", "0.1",
    "--weight-decay", "0.01",
)  # fmt: skip
FAST = ("--steps-per-execution", "epoch", "--xla-optimizer")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------------ checkpointing


def test_every_epoch_is_checkpointed_and_the_last_two_are_kept(corpus, unbroken_run):
    run = unbroken_run(corpus, "loop", EPOCHS, *SMALL)
    assert read_status(run)["state"] == "completed"
    assert checkpoint_epochs(run) == [EPOCHS - 1, EPOCHS]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(corpus, unbroken_run, tmp_path):
    reference = unbroken_run(corpus, "batch", EPOCHS, *SMALL)
    run = shutil.copytree(reference, tmp_path / "run")
    # As if the run had died while its last checkpoint was being written, before its outputs.
    latest = run / CHECKPOINTS / "epoch-0003" / "arrays.npz"
    latest.write_bytes(latest.read_bytes()[:100])
    (run / rundir.MODEL).unlink()
    rundir.set_status(run, rundir.INTERRUPTED)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    log = (run / rundir.LOG).read_text()
    assert len([line for line in log.splitlines() if "epoch-0003" in line]) == 1
    assert "resuming after epoch 2" in log
    assert_same_run(run, reference)


def test_resume_refuses_what_it_cannot_continue(corpus, unbroken_run, tmp_path, capsys):
    run = shutil.copytree(unbroken_run(corpus, "fit", EPOCHS, *SMALL), tmp_path / "run")
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


def test_a_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    run = tmp_path / "run"
    status = main(train_args(corpus, run, "loop", EPOCHS, *SMALL, "--lr", "1e12"))
    assert status == 1
    state = read_status(run)
    assert state["state"] == "failed"
    assert state["error"].startswith("non-finite loss at epoch ")
    epoch = int(state["error"].split()[4])
    assert checkpoint_epochs(run) == ([epoch - 1] if epoch > 1 else [])


# ------------------------------------------------- real signals to real child processes


@dataclass(frozen=True)
class Stop:
    """How to stop a child: its method and options, the signal, and where it waits for it."""

    method: str
    options: tuple[str, ...]
    signum: int
    pause_at: str = "2:3"  # epoch 2, the call from batch 4: the middle of a synthetic epoch


@dataclass(frozen=True)
class Stopped:
    """A child's run directory after the stop, and what the stop left."""

    run: Path
    returncode: int
    state: dict  # status.json
    checkpoints_at_pause: list[int]
    checkpoints_after: list[int]


STOPS = {
    "SIGKILL fit": Stop("fit", SMALL, signal.SIGKILL),
    "SIGKILL batch": Stop("batch", SMALL, signal.SIGKILL),
    "SIGKILL loop": Stop("loop", SMALL, signal.SIGKILL),
    # Whole-epoch executions have one batch hook per epoch: the wait is before epoch 2's only one.
    "SIGKILL loop levers": Stop("loop", (*SMALL, *FAST), signal.SIGKILL, pause_at="2:0"),
    # A user's step with a second optimizer: its state must come back too (examples/).
    "SIGKILL loop step": Stop("loop", (*SMALL, "--step", TWO_RATES), signal.SIGKILL),
    # Dropout draws from random generators whose states are not weights: they come back too.
    "SIGKILL fit tfidf_mlp": Stop("fit", (*SMALL, *REGULARISED), signal.SIGKILL),
    "SIGINT loop": Stop("loop", SMALL, signal.SIGINT),
    "SIGTERM loop": Stop("loop", SMALL, signal.SIGTERM),
}


def _stop_children(data, epochs: int, stops: dict[str, Stop], root: Path) -> dict[str, Stopped]:
    """Start one child per entry of ``stops`` (all at once: they spend most of their time starting
    Python and TensorFlow), send each its signal when it waits at its batch, wait for them all."""
    spawned = Children(root / "cache")
    try:
        children = {
            name: spawned.spawn(
                *train_args(data, root / name, stop.method, epochs, *stop.options),
                pause_at=stop.pause_at,
                marker=root / f"{name}.paused",
            )
            for name, stop in stops.items()
        }
        at_pause = {}
        for name, child in children.items():
            spawned.wait_for(root / f"{name}.paused", child)
            at_pause[name] = checkpoint_epochs(root / name)
            child.send_signal(stops[name].signum)
        codes = {name: spawned.wait(child) for name, child in children.items()}
    finally:
        spawned.kill_all()
    return {
        name: Stopped(
            root / name,
            codes[name],
            read_status(root / name),
            at_pause[name],
            checkpoint_epochs(root / name),
        )
        for name in stops
    }


@pytest.fixture(scope="module")
def stopped(corpus, tmp_path_factory) -> dict[str, Stopped]:
    """Every child of ``STOPS``, trained on the synthetic corpus and stopped in epoch 2."""
    return _stop_children(corpus, EPOCHS, STOPS, tmp_path_factory.mktemp("stopped"))


def _resume_equals(stop: Stopped, reference: Path) -> None:
    """Stopped in its second epoch, ``stop``'s run resumes (here) to exactly ``reference``."""
    assert stop.checkpoints_at_pause == [1]
    assert stop.checkpoints_after == [1], "the child was not stopped in its second epoch"
    assert main(["train", "--resume", str(stop.run), "--quiet"]) == 0
    assert read_status(stop.run)["state"] == "completed"
    assert_same_run(stop.run, reference)


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_mid_epoch_then_resume_equals_an_unbroken_run(
    method, corpus, unbroken_run, stopped
):
    stop = stopped[f"SIGKILL {method}"]
    assert stop.returncode == -signal.SIGKILL
    assert stop.state["state"] == "running"  # a SIGKILLed process cannot say anything else
    _resume_equals(stop, unbroken_run(corpus, method, EPOCHS, *SMALL))


def test_sigkill_then_resume_with_the_speed_levers_on(corpus, unbroken_run, stopped):
    # Whole-epoch executions and the XLA optimizer: the checkpoint still holds everything.
    stop = stopped["SIGKILL loop levers"]
    assert stop.returncode == -signal.SIGKILL
    _resume_equals(stop, unbroken_run(corpus, "loop", EPOCHS, *SMALL, *FAST))


def test_sigkill_then_resume_with_a_users_step_and_its_second_optimizer(
    corpus, unbroken_run, stopped
):
    stop = stopped["SIGKILL loop step"]
    assert stop.returncode == -signal.SIGKILL
    _resume_equals(stop, unbroken_run(corpus, "loop", EPOCHS, *SMALL, "--step", TWO_RATES))


def test_sigkill_then_resume_with_dropout_draws_the_unbroken_runs_masks(
    corpus, unbroken_run, stopped
):
    stop = stopped["SIGKILL fit tfidf_mlp"]
    assert stop.returncode == -signal.SIGKILL
    _resume_equals(stop, unbroken_run(corpus, "fit", EPOCHS, *SMALL, *REGULARISED))


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_sigint_and_sigterm_stop_at_the_next_batch_and_resume(
    signum, code, corpus, unbroken_run, stopped
):
    name = signal.Signals(signum).name
    stop = stopped[f"{name} loop"]
    assert stop.returncode == code
    assert stop.state["state"] == "interrupted"
    assert stop.state["epochs_completed"] == 1
    assert stop.state["resume"] == f"trainways train --resume {stop.run}"
    assert stop.state["signal"] == name
    _resume_equals(stop, unbroken_run(corpus, "loop", EPOCHS, *SMALL))


# ------------------------------------------------------------------------ on the real data

REAL = ("fit", 2, "--deterministic")  # method, epochs, options


@pytest.mark.realdata
def test_sigkill_mid_epoch_on_the_real_data_then_resume_equals_an_unbroken_run(
    reuters_dir, unbroken_run, tmp_path
):
    method, epochs, *options = REAL
    # Batch 140 of 281: the middle of a real epoch.
    stops = {"SIGKILL": Stop(method, tuple(options), signal.SIGKILL, pause_at="2:140")}
    stop = _stop_children(reuters_dir, epochs, stops, tmp_path)["SIGKILL"]
    assert stop.returncode == -signal.SIGKILL
    assert stop.state["state"] == "running"
    _resume_equals(stop, unbroken_run(reuters_dir, *REAL))


@pytest.mark.realdata
def test_a_real_data_run_predicts_five_topics_from_raw_text(reuters_dir, unbroken_run, capsys):
    run = unbroken_run(reuters_dir, *REAL)
    capsys.readouterr()
    assert main(["predict", str(run), "Coffee exports fell as Brazil cut its quota"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5


# ------------------------------------------------ the checkpoint is the commit point


def _killed_before_the_first_checkpoint(reference: Path, run: Path, history_rows: int) -> Path:
    """``reference`` as a run SIGKILLed in epoch 1 leaves it: CSVLogger's empty history.csv
    (``history_rows`` 0), or epoch 1's row and best.keras written but not its checkpoint."""
    run = shutil.copytree(reference, run)
    shutil.rmtree(run / CHECKPOINTS)
    for name in (rundir.MODEL, rundir.METRICS, rundir.ENCODER):
        (run / name).unlink()
    lines = (run / rundir.HISTORY).read_text().splitlines(keepends=True)
    (run / rundir.HISTORY).write_text("".join(lines[: 1 + history_rows]) if history_rows else "")
    rundir.set_status(run, rundir.RUNNING, epochs_completed=0)
    return run


@pytest.mark.parametrize("rows", [0, 1], ids=["empty history", "a row past the checkpoint"])
def test_a_run_killed_before_its_first_checkpoint_starts_over(rows, corpus, unbroken_run, tmp_path):
    reference = unbroken_run(corpus, "batch", EPOCHS, *SMALL)
    run = _killed_before_the_first_checkpoint(reference, tmp_path / "run", rows)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "starting over from epoch 1" in (run / rundir.LOG).read_text()
    assert_same_run(run, reference)


def test_a_run_killed_between_its_config_and_its_status_starts_over(corpus, unbroken_run, tmp_path):
    reference = unbroken_run(corpus, "loop", EPOCHS, *SMALL)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(reference / rundir.CONFIG, run / rundir.CONFIG)  # and nothing else yet
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert_same_run(run, reference)


def test_what_an_epoch_wrote_after_the_last_checkpoint_is_rolled_back(
    corpus, unbroken_run, tmp_path
):
    reference = unbroken_run(corpus, "fit", EPOCHS, *SMALL)
    run = shutil.copytree(reference, tmp_path / "run")
    # Killed between epoch 3's row (and best.keras) and its checkpoint; best.keras then even
    # half-written.
    shutil.rmtree(run / CHECKPOINTS / "epoch-0003")
    (run / rundir.BEST).write_bytes((run / rundir.BEST).read_bytes()[:100])
    for name in (rundir.MODEL, rundir.METRICS):
        (run / name).unlink()
    rundir.set_status(run, rundir.RUNNING, epochs_completed=0)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "rolled back to epoch-0002: best.keras" in (run / rundir.LOG).read_text()
    assert_same_run(run, reference)
    assert (run / rundir.BEST).read_bytes() == (
        reference / CHECKPOINTS / "epoch-0003" / "best.keras"
    ).read_bytes()


def test_damaged_checkpoints_that_no_kill_explains_are_refused(
    corpus, unbroken_run, tmp_path, capsys
):
    run = shutil.copytree(unbroken_run(corpus, "fit", EPOCHS, *SMALL), tmp_path / "run")
    for epoch in (2, 3):
        (run / CHECKPOINTS / f"epoch-000{epoch}" / "state.json").write_text("{")
    rundir.set_status(run, rundir.RUNNING, epochs_completed=0)
    before = read_status(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checkpoints (epoch-0003, epoch-0002) are damaged but no usable checkpoint" in err
    assert read_status(run) == before


def test_a_changed_model_builder_is_refused_before_anything_is_written(corpus, tmp_path, capsys):
    builder = tmp_path / "builder.py"
    layers = "keras.layers.Embedding(vocab_size, {}), keras.layers.GlobalAveragePooling1D()"
    source = (
        "import keras\n\ndef build(vocab_size, num_classes, max_len):\n"
        "    return keras.Sequential([keras.Input((max_len,), dtype='int32'), "
        f"{layers}, keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    builder.write_text(source.format(4))
    run = tmp_path / "run"
    assert (
        main(train_args(corpus, run, "fit", 1, "--max-len", "60", "--model", f"{builder}:build"))
        == 0
    )
    rundir.set_status(run, rundir.INTERRUPTED, epochs_completed=1)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    builder.write_text(source.format(5))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "now builds" in err and "put " in err, err
    builder.write_text("import keras\n\ndef build(vocab_size, num_classes, max_len):\n    1 / 0\n")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
