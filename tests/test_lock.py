"""One writer per run directory: the lock every command that writes one takes.

A second writer — ``train`` (new, ``--overwrite``, ``--resume``), ``evaluate``, ``track``,
``compare``, a ``Loop`` — is refused in one line with exit status 2 (an exception for the
library) and changes nothing, while the holder runs in another process (a cheap child that only
takes the lock) or in this one; a lock whose process was SIGKILLed blocks nothing; of two
concurrent ``--resume``, exactly one trains (a real child paused mid-epoch); and runs started
together without ``--out`` each get their own directory.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import keras
import pytest

import trainways
from trainways import lifecycle, rundir
from trainways.checkpoint import CHECKPOINTS
from trainways.cli import main
from trainways.config import RunConfig
from trainways.lifecycle import RunLife

from helpers import assert_same_run, read_history, read_status, toy_problem

# Takes the lock of each directory given (making it if needed), says so, and waits to be killed.
LOCKER = """
import sys, time
from pathlib import Path
from trainways import rundir
held = [rundir.lock(Path(path), create=True) for path in sys.argv[1:]]
print("locked", flush=True)
time.sleep(600)
"""


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` (itself included): size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [root, *sorted(root.rglob("*"))]
    }


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("trainways"), err
    return err


def _loop(out: Path) -> trainways.Loop:
    x, y = toy_problem(n=64)
    model = keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(40, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return trainways.Loop(model, x, y, epochs=2, seed=0, out=out, verbose=False)


def _train_loop(loop: trainways.Loop, stop_after: int | None = None) -> None:
    for epoch in loop.epochs():
        for x, y in loop.batches():
            loop.log(loop.model.train_on_batch(x, y, return_dict=True))
        if stop_after is not None and epoch + 1 == stop_after:
            break


@pytest.fixture
def done(unbroken_run, corpus, tmp_path) -> Path:
    """A copy of a small completed two-epoch run (deterministic: a resume of it is compared with
    it bit for bit)."""
    reference = unbroken_run(corpus, "fit", 2, "--max-len", "40", "--deterministic")
    return Path(shutil.copytree(reference, tmp_path / "d"))


@pytest.fixture
def stopped(done, tmp_path) -> Path:
    """A copy of ``done`` as a run killed in its second epoch: epoch 1 checkpointed."""
    run = Path(shutil.copytree(done, tmp_path / "s"))
    shutil.rmtree(run / CHECKPOINTS / "epoch-0002")
    rundir.set_status(run, rundir.RUNNING, epochs_completed=1)
    return run


def test_every_writer_is_refused_while_another_process_holds_the_lock(
    done, stopped, corpus, tmp_path, capsys
):
    fresh, comparison = tmp_path / "fresh", tmp_path / "cmp"
    comparison.mkdir()
    rundir.write_json(comparison / rundir.COMPARE_STATE, {})
    locked = (done, stopped, fresh, comparison)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, *map(str, locked)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {path: _snapshot(path) for path in locked}
        data = ("--data", str(corpus), "--epochs", "1", "--quiet")
        new, wait = "wait for it, or pass another --out", "wait for it to end"
        refused = {
            "train": (["train", "--out", str(fresh), *data], new),
            "train --overwrite": (["train", "--out", str(done), "--overwrite", *data], new),
            "train --resume": (["train", "--resume", str(stopped), "--quiet"], wait),
            "evaluate": (["evaluate", str(done)], wait),
            "track": (["track", str(done)], wait),
            "compare": (["compare", "--methods", "fit", "--out", str(fresh), *data], new),
            "compare --resume": (["compare", "--resume", str(comparison), "--quiet"], wait),
        }
        for name, (argv, advice) in refused.items():
            assert main(argv) == 2, name
            err = _one_line_error(capsys)
            assert "is in use by another trainways process" in err and advice in err, (name, err)
            assert f"(pid {holder.pid})" in err or not Path("/proc/locks").exists(), err
        with pytest.raises(rundir.RunDirBusy, match="in use by another trainways process"):
            _loop(fresh)
        assert {path: _snapshot(path) for path in locked} == before
    finally:
        holder.kill()
        holder.wait()
    # The OS dropped the killed process's lock: nothing is left to block the next writer.
    assert holder.returncode == -signal.SIGKILL
    for path in locked:
        with rundir.lock(path):
            pass


def test_a_writer_in_this_process_is_refused_and_a_released_lock_is_free(tmp_path):
    out = tmp_path / "own"
    with rundir.lock(out, create=True):
        with pytest.raises(rundir.RunDirBusy, match=r"another run in this process \(pid"):
            _loop(out)
        with pytest.raises(rundir.RunDirBusy):
            lifecycle.make_run_dir(RunConfig(), out, name="fit", overwrite=True)
        assert [p.name for p in out.iterdir()] == [rundir.LOCK]
    # A Loop abandoned mid-run (dropped, or only waiting to be collected) does not block the
    # script run again in this process; a finished one releases the lock itself.
    _train_loop(_loop(out), stop_after=1)
    loop = _loop(out)
    _train_loop(loop)
    assert read_status(out)["state"] == "completed" and len(read_history(out)) == 2
    with rundir.lock(out):
        assert loop.history["loss"]


def test_of_two_concurrent_resumes_exactly_one_trains(stopped, done, monkeypatch, capsys):
    seen = []

    class SecondResume(keras.callbacks.Callback):
        """While the first resume trains its second epoch, a second one starts."""

        def on_epoch_begin(self, epoch, logs=None):
            if seen:  # one second resume (unrefused, it would start a third)
                return
            before = _snapshot(stopped)
            code = main(["train", "--resume", str(stopped), "--quiet"])
            seen.append((code, capsys.readouterr().err, _snapshot(stopped) == before))

    callbacks_of = RunLife.callbacks
    monkeypatch.setattr(
        RunLife, "callbacks", lambda life, *a, **k: [*callbacks_of(life, *a, **k), SecondResume()]
    )
    assert main(["train", "--resume", str(stopped), "--quiet"]) == 0
    [(code, err, unchanged)] = seen
    assert code == 2 and unchanged, err
    assert "\n" not in err.strip() and "is in use by another run in this process" in err, err
    assert "wait for it to end (it may be resuming this run already)" in err
    assert read_status(stopped)["state"] == "completed"
    assert_same_run(stopped, done)


def test_runs_started_together_without_out_get_their_own_directory(tmp_path, monkeypatch):
    second = datetime(2024, 5, 1, 12, 0, 0).astimezone()

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return second

    monkeypatch.setattr(rundir.format, "datetime", Frozen)
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda _: rundir.new_run_dir("fit", tmp_path / "runs"), range(6)))
    assert len(set(made)) == 6 and all(path.is_dir() for path in made)
    assert {path.name for path in made} == {
        rundir.default_run_dir("fit").name + suffix for suffix in ("", "-2", "-3", "-4", "-5", "-6")
    }
    # What train and compare do without --out: each run its own directory, locked.
    monkeypatch.chdir(tmp_path / "runs")
    first, _, held = lifecycle.make_run_dir(RunConfig(), None, name="batch", overwrite=False)
    with held:
        other, _, also = lifecycle.make_run_dir(RunConfig(), None, name="batch", overwrite=False)
        assert other != first and other.name == f"{first.name}-2"
        also.release()
