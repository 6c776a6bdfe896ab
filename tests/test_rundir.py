"""The run-directory format (trainways.rundir): status, JSON files, history.csv, refusals, names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from trainways import files, rundir
from trainways.rundir import RunDirError

HISTORY = {
    "loss": [1.5, 0.75, 0.5],
    "accuracy": [0.25, 0.5, 0.625],
    "val_loss": [1.25, 1.0, 0.875],
}


def _run(path: Path, state: str | None = None) -> Path:
    """A run directory with a configuration and, given a state, a status."""
    path.mkdir(parents=True, exist_ok=True)
    rundir.write_json(path / rundir.CONFIG, {"train": {"method": "fit"}})
    if state is not None:
        rundir.set_status(path, state)
    return path


# ------------------------------------------------------------------------- JSON and status


def test_json_round_trips_and_leaves_no_temporary_file(tmp_path):
    payload = {"state": "completed", "epochs": [1, 2], "nested": {"a": None}}
    rundir.write_json(tmp_path / "x.json", payload)
    assert rundir.read_json(tmp_path / "x.json") == payload
    assert (tmp_path / "x.json").read_text().endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_json_writes_numpy_scalars_as_floats(tmp_path):
    rundir.write_json(tmp_path / "x.json", {"loss": np.float32(0.5)})
    assert rundir.read_json(tmp_path / "x.json") == {"loss": 0.5}


def test_a_failed_write_keeps_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / rundir.STATUS
    rundir.write_json(target, {"state": "running"})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        rundir.write_json(target, {"state": "completed"})
    monkeypatch.undo()
    assert rundir.read_json(target) == {"state": "running"}
    # The temporary file is removed, not left beside the run's files.
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.STATUS]


def test_written_files_get_the_umask_mode(tmp_path):
    rundir.write_json(tmp_path / "x.json", {})
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == files.default_mode()


def test_read_json_says_what_is_missing_or_broken(tmp_path):
    with pytest.raises(RunDirError, match=r"status\.json is missing: is .* a trainways run\?"):
        rundir.read_json(tmp_path / rundir.STATUS)
    (tmp_path / rundir.STATUS).write_text("{not json")
    with pytest.raises(RunDirError, match="cannot read"):
        rundir.read_json(tmp_path / rundir.STATUS)


def test_status_records_state_time_and_details(tmp_path):
    assert rundir.read_status(tmp_path) is None
    rundir.set_status(tmp_path, rundir.FAILED, error="ValueError: boom")
    status = rundir.read_status(tmp_path)
    assert status["state"] == "failed" and status["error"] == "ValueError: boom"
    # Local time with its UTC offset, to the second.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", status["time"])
    rundir.set_status(tmp_path, rundir.COMPLETED)
    assert rundir.read_status(tmp_path)["state"] == "completed"
    assert "error" not in rundir.read_status(tmp_path)


def test_config_metrics_and_tracking_records(tmp_path):
    _run(tmp_path)
    assert rundir.read_config(tmp_path) == {"train": {"method": "fit"}}
    rundir.write_json(tmp_path / rundir.METRICS, {"epochs": 3})
    assert rundir.read_metrics(tmp_path) == {"epochs": 3}
    assert rundir.read_tracking(tmp_path) is None
    record = {"tracking_uri": "sqlite:///x.db", "experiment_id": "1", "run_id": "abc"}
    rundir.write_tracking(tmp_path, record)
    assert rundir.read_tracking(tmp_path) == record


# ---------------------------------------------------------------------------- refusals


def test_require_resumable_refuses_what_cannot_continue(tmp_path):
    with pytest.raises(RunDirError, match="no such directory"):
        rundir.require_resumable(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not a trainways run"):
        rundir.require_resumable(tmp_path / "empty")
    without_status = _run(tmp_path / "no-status")
    (without_status / rundir.HISTORY).write_text("epoch,loss\n1,0.5\n")  # more than a start
    with pytest.raises(RunDirError, match="not a trainways run"):
        rundir.require_resumable(without_status)
    done = _run(tmp_path / "done", rundir.COMPLETED)
    with pytest.raises(RunDirError, match="already completed; start a new one with --out"):
        rundir.require_resumable(done)


def test_a_run_killed_before_its_first_status_is_resumable_from_the_start(tmp_path):
    run = _run(tmp_path / "started")  # its config.json, nothing else yet
    (run / rundir.LOCK).touch()
    assert rundir.require_resumable(run) == {"state": rundir.RUNNING, "epochs_completed": 0}


@pytest.mark.parametrize("state", [rundir.RUNNING, rundir.INTERRUPTED, rundir.FAILED])
def test_require_resumable_returns_the_status_of_an_unfinished_run(tmp_path, state):
    run = _run(tmp_path / "run", state)
    assert rundir.require_resumable(run)["state"] == state


def test_require_completed_refuses_unfinished_runs(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        rundir.require_completed(tmp_path / "none")
    with pytest.raises(RunDirError, match="is missing"):
        rundir.require_completed(_run(tmp_path / "no-status"))
    for state in (rundir.RUNNING, rundir.INTERRUPTED, rundir.FAILED):
        run = _run(tmp_path / state, state)
        with pytest.raises(RunDirError, match=f"is {state}, not completed"):
            rundir.require_completed(run)
    done = _run(tmp_path / "done", rundir.COMPLETED)
    assert rundir.require_completed(done)["state"] == "completed"


def test_prepare_refuses_a_file_and_an_old_run(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        rundir.prepare(tmp_path / "file", overwrite=False)
    old = _run(tmp_path / "old", rundir.COMPLETED)
    with pytest.raises(RunDirError, match=r"exists and is not empty.*--overwrite"):
        rundir.prepare(old, overwrite=False)
    assert rundir.read_status(old)["state"] == "completed"  # untouched


def test_prepare_makes_a_new_directory_and_leaves_an_empty_one_usable(tmp_path):
    assert rundir.prepare(tmp_path / "a" / "b", overwrite=False) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())
    assert rundir.prepare(tmp_path / "a" / "b", overwrite=False).is_dir()


def test_overwrite_removes_the_old_runs_files_but_not_others(tmp_path):
    old = _run(tmp_path / "old", rundir.COMPLETED)
    for name in (rundir.HISTORY, rundir.MODEL, rundir.FIRST_EPOCH, rundir.TRACKING):
        (old / name).write_text("old")
    (old / rundir.CHECKPOINTS / "epoch-0001").mkdir(parents=True)
    (old / rundir.TENSORBOARD).mkdir()
    (old / "notes.txt").write_text("mine")
    rundir.prepare(old, overwrite=True)
    # An old checkpoint or status would otherwise be resumed or trusted as this run's.
    assert sorted(p.name for p in old.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------------- history.csv


def test_history_csv_round_trips_with_epochs_from_one(tmp_path):
    rundir.write_history_csv(HISTORY, tmp_path)
    lines = (tmp_path / rundir.HISTORY).read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
    assert rundir.read_history(tmp_path) == {
        "accuracy": HISTORY["accuracy"],
        "loss": HISTORY["loss"],
        "val_loss": HISTORY["val_loss"],
    }


def test_an_empty_history_leaves_no_file(tmp_path):
    (tmp_path / rundir.HISTORY).write_text("epoch,loss\n1,0.5\n")
    rundir.write_history_csv({"loss": []}, tmp_path)
    assert not (tmp_path / rundir.HISTORY).exists()
    rundir.write_history_csv({}, tmp_path)
    assert not (tmp_path / rundir.HISTORY).exists()


def test_a_resumed_runs_csv_logger_continues_the_file_seamlessly(tmp_path):
    from types import SimpleNamespace

    from trainways.callbacks import HistoryCSV

    first_two = {key: values[:2] for key, values in HISTORY.items()}
    rundir.write_history_csv(first_two, tmp_path)
    logger = HistoryCSV(str(tmp_path / rundir.HISTORY), append=True)
    logger.set_model(SimpleNamespace(stop_training=False))
    logger.on_train_begin()
    logger.on_epoch_end(2, {key: values[2] for key, values in HISTORY.items()})
    logger.on_train_end()
    appended = (tmp_path / rundir.HISTORY).read_text()
    rundir.write_history_csv(HISTORY, tmp_path)
    assert appended == (tmp_path / rundir.HISTORY).read_text()


# ------------------------------------------------------------------------------- names


def test_default_run_dir_is_named_by_local_time_and_method():
    path = rundir.default_run_dir("batch", Path("somewhere"))
    assert path.parent == Path("somewhere")
    assert re.fullmatch(r"\d{8}-\d{6}[+-]\d{4}-batch", path.name), path.name
    assert rundir.default_run_dir("fit").parent == Path("runs")


def test_resume_command_and_comparison_layout(tmp_path):
    assert rundir.resume_command(tmp_path / "r") == f"trainways train --resume {tmp_path / 'r'}"
    assert rundir.comparison_config(tmp_path, "loop") == tmp_path / "configs" / "loop.json"


def test_every_file_of_a_run_has_its_own_name():
    names = [
        rundir.CONFIG,
        rundir.STATUS,
        rundir.LOG,
        rundir.HISTORY,
        rundir.METRICS,
        rundir.MODEL,
        rundir.BEST,
        rundir.ENCODER,
        rundir.EVALUATION,
        rundir.CHECKPOINTS,
        rundir.TENSORBOARD,
        rundir.FIRST_EPOCH,
        rundir.TRACKING,
        rundir.COMPARE_STATE,
        rundir.COMPARE_CONFIGS,
        rundir.INITIAL_WEIGHTS,
        rundir.COMPARISON,
        rundir.REPORT_MD,
        rundir.REPORT_HTML,
        rundir.PLOTS,
    ]
    assert len(set(names)) == len(names)
