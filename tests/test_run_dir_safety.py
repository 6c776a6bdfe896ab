"""Nothing written outside the run directory, nothing deleted that trainways did not write, and
a damaged run file is one line: ``--overwrite``, symbolic links, ``--json`` targets, readers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainways import files, rundir
from trainways.cli import main
from trainways.config import DataConfig, RunConfig, TrainConfig
from trainways.files import SymlinkRefused
from trainways.rundir import RunDirError

from helpers import read_status


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _tree(path: Path) -> dict[str, bytes | None]:
    """Every entry under ``path`` (links not followed) and a file's bytes."""
    return {
        str(p.relative_to(path)): None if p.is_dir() or p.is_symlink() else p.read_bytes()
        for p in sorted(path.rglob("*"))
    }


def _fake_run(path: Path, state: str, config: dict | None = None) -> Path:
    """A run directory as trainways leaves one, without training: its files hold words."""
    path.mkdir(parents=True)
    rundir.write_json(path / rundir.CONFIG, config or RunConfig().to_dict())
    rundir.set_status(path, state, epochs_completed=0)
    for name in (rundir.MODEL, rundir.BEST, rundir.HISTORY, rundir.LOG, rundir.ENCODER):
        (path / name).write_text(f"the old run's {name}")
    (path / rundir.CHECKPOINTS / "epoch-0001").mkdir(parents=True)
    (path / rundir.CHECKPOINTS / "epoch-0001" / "state.json").write_text("{}")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file and a folder of the user's, outside any run directory."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "dir").mkdir(parents=True)
    (elsewhere / "dir" / "model_v7.h5").write_text("the user's model")
    (elsewhere / "file.txt").write_text("the user's text")
    return elsewhere


# ------------------------------------------------------------------------- --overwrite


def test_overwrite_with_a_wrong_typed_config_touches_nothing(corpus, tmp_path, capsys):
    run = _fake_run(tmp_path / "done", rundir.COMPLETED)
    before = _tree(run)
    bad = RunConfig(data=DataConfig(source=str(corpus), max_len=40)).to_dict()
    bad["train"].update(batch_size=2.5, epochs=1)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    argv = ["train", "--config", str(tmp_path / "bad.json"), "--out", str(run), "--overwrite"]
    assert main([*argv, "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "batch_size must be a whole number, got 2.5 (--batch-size)" in err
    assert _tree(run) == before


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / rundir.CONFIG).write_text('{"lr": 0.1}')
    (project / rundir.METRICS).write_text('{"accuracy": 0.9}')
    (project / rundir.CHECKPOINTS).mkdir()
    (project / rundir.CHECKPOINTS / "model_v7.h5").write_text("the user's model")
    (project / rundir.TENSORBOARD).mkdir()
    before = _tree(project)
    with pytest.raises(RunDirError, match=r"proj is not a trainways run .*--overwrite replaces"):
        rundir.prepare(project, overwrite=True)
    assert _tree(project) == before
    # A status.json that is not a run's does not make one either.
    (project / rundir.STATUS).write_text('{"state": "deployed"}')
    with pytest.raises(RunDirError, match="is not a trainways run"):
        rundir.prepare(project, overwrite=True)
    assert rundir.is_run(_fake_run(tmp_path / "run", rundir.FAILED))


def test_overwrite_removes_a_symlink_itself_never_what_it_points_to(tmp_path, outside):
    run = _fake_run(tmp_path / "run", rundir.INTERRUPTED)
    shutil.rmtree(run / rundir.CHECKPOINTS)
    (run / rundir.CHECKPOINTS).symlink_to(outside / "dir", target_is_directory=True)
    (run / rundir.LOG).unlink()
    (run / rundir.LOG).symlink_to(outside / "file.txt")
    (run / ".status.json.x1.tmp").write_text("a crash's leftover")
    (run / "notes.txt").write_text("mine")
    before = _tree(outside)
    assert rundir.prepare(run, overwrite=True) == run
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    assert _tree(outside) == before


def test_overwrite_replaces_a_comparison_and_keeps_the_users_files(tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    rundir.write_json(out / rundir.COMPARE_STATE, {"methods": ["fit", "batch"], "backends": []})
    (out / rundir.REPORT_MD).write_text("report")
    (out / rundir.PLOTS).mkdir()
    _fake_run(out / "fit", rundir.COMPLETED)
    _fake_run(out / "batch", rundir.COMPLETED)
    (out / "batch" / "notes.txt").write_text("mine")
    rundir.prepare(out, overwrite=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["batch", "batch/notes.txt"]
    # A compare.json naming something outside the comparison is not a comparison's.
    rundir.write_json(out / rundir.COMPARE_STATE, {"methods": [".."], "backends": []})
    with pytest.raises(RunDirError, match="not a trainways run"):
        rundir.prepare(out, overwrite=True)


# ------------------------------------------------------------------------ symbolic links


def test_writers_refuse_a_symlink_and_leave_its_target(tmp_path, outside):
    from trainways.lifecycle import configure_logging

    link = tmp_path / rundir.STATUS
    link.symlink_to(outside / "file.txt")
    with pytest.raises(SymlinkRefused, match=r"status\.json is a symbolic link: .*remove the"):
        rundir.set_status(tmp_path, rundir.RUNNING)
    log = tmp_path / rundir.LOG
    log.symlink_to(outside / "file.txt")
    with pytest.raises(SymlinkRefused, match=r"train\.log is a symbolic link"):
        configure_logging(log, quiet=True)
    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(outside / "new.txt")
    with pytest.raises(SymlinkRefused):
        files.open_append(dangling)
    assert link.is_symlink() and log.is_symlink() and not (outside / "new.txt").exists()
    assert (outside / "file.txt").read_text() == "the user's text"
    configure_logging(None, quiet=True)


@pytest.mark.parametrize("name", [rundir.LOG, rundir.BEST, rundir.HISTORY, rundir.CHECKPOINTS])
def test_resume_refuses_a_symlinked_run_file_before_writing(tmp_path, outside, name, capsys):
    run = _fake_run(tmp_path / "run", rundir.INTERRUPTED)
    entry = run / name
    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    target = outside / ("dir" if name == rundir.CHECKPOINTS else "file.txt")
    entry.symlink_to(target, target_is_directory=target.is_dir())
    before, status = _tree(outside), read_status(run)
    for check in (rundir.require_resumable, lambda run: rundir.set_status(run, rundir.RUNNING)):
        with pytest.raises(SymlinkRefused, match=f"{name} is a symbolic link"):
            check(run)  # --resume, and the start of every run (a Loop's too)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert f"{name} is a symbolic link" in _one_line_error(capsys)
    assert _tree(outside) == before and read_status(run) == status


def test_evaluate_refuses_a_symlinked_plot(corpus, unbroken_run, tmp_path, outside, capsys):
    run = Path(shutil.copytree(unbroken_run(corpus, "fit", 2, "--max-len", "40"), tmp_path / "r"))
    (run / f"{rundir.CONFUSION}.png").symlink_to(outside / "file.txt")
    assert main(["evaluate", str(run)]) == 2
    assert "confusion_matrix.png is a symbolic link" in _one_line_error(capsys)
    assert (outside / "file.txt").read_text() == "the user's text"
    assert not (run / rundir.EVALUATION).exists()


# ----------------------------------------------------------------- a hand-broken config.json


def test_resume_of_a_hand_broken_config_leaves_the_run_as_it_was(corpus, tmp_path, capsys):
    config = RunConfig(
        data=DataConfig(source=str(corpus), max_len=40), train=TrainConfig(epochs=1, seed=1)
    ).to_dict()
    config["train"]["batch_size"] = 2.5
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_json(run / rundir.CONFIG, config)
    rundir.set_status(run, rundir.INTERRUPTED, epochs_completed=0)
    before = _tree(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "batch_size must be a whole number, got 2.5" in _one_line_error(capsys)
    assert _tree(run) == before


# ------------------------------------------------------------------------- --json targets


def test_json_outputs_refuse_a_directory_before_the_work(corpus, tmp_path, capsys):
    directory = tmp_path / "figures"
    directory.mkdir()
    baseline = ["baseline", "--data", str(corpus), "--json", str(directory)]
    agree = ["agree", "--data", str(corpus), "--max-len", "40", "--epochs", "1", "--quiet"]
    for argv in (baseline, [*agree, "--json", str(directory)]):
        assert main(argv) == 2
        assert f"cannot write {directory}: it is a directory" in _one_line_error(capsys)
    assert not any(directory.iterdir())


# ------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("text", ["[1, 2]", '"done"', '{"state": "finished"}', "{}"])
def test_a_damaged_status_is_one_line(tmp_path, text, capsys):
    run = _fake_run(tmp_path / "run", rundir.COMPLETED)
    (run / rundir.STATUS).write_text(text)
    for read in (rundir.read_status, rundir.require_completed, rundir.require_resumable):
        with pytest.raises(RunDirError, match=r"is not a run's status .*repair it"):
            read(run)
    assert main(["predict", str(run), "oil prices"]) == 2
    assert "is not a run's status" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "holds list, not a run's configuration"),
        ('{"model": 5}', "section 'model' holds int, not a JSON object"),
    ],
)
def test_a_damaged_config_is_one_line(tmp_path, text, message, capsys):
    run = _fake_run(tmp_path / "run", rundir.COMPLETED)
    (run / rundir.CONFIG).write_text(text)
    with pytest.raises(RunDirError, match=message):
        rundir.read_config(run)
    assert main(["evaluate", str(run)]) == 2
    assert message in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_len": None}, "max_len must be a whole number, got missing"),
        ({"word_index": {"oil": "3"}}, "word_index must be an object of words"),
        ({"topics": []}, "topics must be a list of topic names, got \\[\\]"),
    ],
)
def test_a_damaged_encoder_is_one_line(tmp_path, change, message):
    from trainways import inference

    run = _fake_run(tmp_path / "run", rundir.COMPLETED)
    state = {"word_index": {"oil": 3}, "topics": ["crude"], "max_len": 40, "num_words": None}
    state.update(skip_top=0, start_char=1, oov_char=2, index_from=3)
    state.update(change)
    state = {key: value for key, value in state.items() if value is not None or key != "max_len"}
    rundir.write_json(run / rundir.ENCODER, state)
    with pytest.raises(RunDirError, match=message):
        inference.encoder_state(run)
