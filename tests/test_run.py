"""One run's life cycle (trainways.lifecycle), the pre-flight (trainways.preflight), the one
config → spec translation (trainways.training) and the run entry points (trainways.run).

Small synthetic models and the synthetic corpus: what is tested is the bookkeeping around
training — which file says what, in which order, with which exit status — not learning.
"""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from trainways import callbacks as tw_callbacks
from trainways import checkpoint, run, rundir
from trainways.config import ConfigError, DataConfig, RunConfig, TrainConfig
from trainways.lifecycle import RunLife, one_line
from trainways.preflight import preflight
from trainways.stops import EXIT_FAILED, EXIT_INTERRUPTED, Interrupted, NonFiniteLoss
from trainways.training import make_spec, schedule_callbacks

from helpers import read_status


def _tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _life(out: Path | None, **kwargs) -> RunLife:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    return RunLife(out, RunConfig(), quiet=True, **kwargs)


# --------------------------------------------------------------------------- RunLife


def test_start_says_running_and_logs_to_train_log(tmp_path):
    life = _life(tmp_path / "run")
    life.start()
    assert read_status(life.out)["state"] == rundir.RUNNING
    run_log = life.out / rundir.LOG
    assert run_log.is_file()
    from trainways.lifecycle import LOG

    LOG.info("a line")
    assert "a line" in run_log.read_text()


def test_the_run_directory_callbacks_come_in_the_order_they_must_run(tmp_path):
    life = _life(tmp_path / "run")
    life.start()
    schedule = schedule_callbacks(RunConfig(train=TrainConfig(lr_halve_at=2, patience=1)))
    kinds = [type(c) for c in life.callbacks(schedule)]
    assert kinds == [
        tw_callbacks.StopOnSignal,
        tw_callbacks.StopOnNonFiniteLoss,
        tw_callbacks.HalveLearningRate,
        keras.callbacks.EarlyStopping,
        tw_callbacks.EpochLogger,
        tw_callbacks.HistoryCSV,
        keras.callbacks.ModelCheckpoint,
        checkpoint.EpochCheckpoint,
    ]


def test_a_tracker_runs_last_after_the_checkpoint(tmp_path):
    class Tracker(keras.callbacks.Callback):
        pass

    life = _life(tmp_path / "run")
    tracker = Tracker()
    life.start(lambda: tracker)
    callbacks = life.callbacks(best_monitor=None)
    assert callbacks[-1] is tracker
    assert isinstance(callbacks[-2], checkpoint.EpochCheckpoint)
    assert not any(isinstance(c, keras.callbacks.ModelCheckpoint) for c in callbacks)


def test_without_a_run_directory_no_file_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    life = _life(None)
    life.start()
    kinds = [type(c) for c in life.callbacks()]
    assert kinds == [
        tw_callbacks.StopOnSignal,
        tw_callbacks.StopOnNonFiniteLoss,
        tw_callbacks.EpochLogger,
    ]
    assert life.run(lambda: None) == 0
    assert list(tmp_path.iterdir()) == []


def test_the_library_call_gets_only_its_own_callbacks():
    life = _life(None)
    life.start(log=False)
    mine = keras.callbacks.EarlyStopping()
    assert life.callbacks([mine], guards=False) == [mine]


def test_complete_writes_model_files_metrics_and_status_in_that_order(tmp_path, monkeypatch):
    life = _life(tmp_path / "run")
    life.start()
    life.callbacks()
    written: list[str] = []
    real_write = rundir.format.write_atomic  # every run file is written through it

    def spy(path, text):
        written.append(Path(path).name)
        real_write(path, text)

    monkeypatch.setattr(rundir.format, "write_atomic", spy)
    summary = {"epochs": 2, "final": {"loss": 0.5}}
    code = life.run(
        lambda: life.complete(_tiny_model(), summary=summary, files={"x.json": [1]}, device="cpu")
    )
    assert code == 0
    assert written[:2] == ["x.json", rundir.METRICS]
    assert written[-1] == rundir.STATUS  # status.json is the last file written
    assert (life.out / rundir.MODEL).is_file()
    status = read_status(life.out)
    assert status["state"] == rundir.COMPLETED
    assert status["epochs_completed"] == 2 and status["device"] == "cpu"
    assert json.loads((life.out / rundir.METRICS).read_text()) == summary


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_is_recorded_as_interrupted_with_its_exit_status(tmp_path, signum, code):
    life = _life(tmp_path / "run", resume_hint="do this to resume")
    life.start()

    def stop():
        raise Interrupted(signum)

    assert life.run(stop) == code
    status = read_status(life.out)
    assert status["state"] == rundir.INTERRUPTED
    assert status["signal"] == signal.Signals(signum).name
    assert status["resume"] == "do this to resume"
    assert status["epochs_completed"] == 0


def test_a_non_finite_loss_is_recorded_as_failed(tmp_path):
    life = _life(tmp_path / "run")
    life.start()

    def stop():
        raise NonFiniteLoss(2, 3, float("nan"))

    assert life.run(stop) == EXIT_FAILED
    status = read_status(life.out)
    assert status["state"] == rundir.FAILED
    assert status["error"] == "non-finite loss at epoch 2 batch 3"


def test_a_lost_worker_is_a_failure_that_says_how_to_restart_every_worker(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = RunConfig()
    device = replace(config.device, strategy="multiworker", workers=("a:1", "b:2"), task_index=0)
    config = replace(config, device=device)
    life = RunLife(out, config, quiet=True)
    life.start()

    def lose():
        raise ConnectionError("peer gone\nmore")

    assert life.run(lose, is_lost_worker=lambda e: isinstance(e, ConnectionError)) == 1
    status = read_status(out)
    assert status["error"] == "lost a worker: ConnectionError: peer gone"
    assert "--workers a:1,b:2 --task-index I" in status["resume"]


def test_a_ctrl_c_outside_a_batch_is_recorded_as_interrupted(tmp_path):
    life = _life(tmp_path / "run")
    life.start()

    def ctrl_c():
        raise KeyboardInterrupt

    assert life.run(ctrl_c) == EXIT_INTERRUPTED
    status = read_status(life.out)
    assert status["state"] == rundir.INTERRUPTED
    assert status["resume"] == rundir.resume_command(life.out)


def test_an_error_is_recorded_as_one_plain_line_and_raised_again(tmp_path):
    life = _life(tmp_path / "run")
    life.start()

    def explode():
        raise RuntimeError("\x1b[1mboom\x1b[0m\nand a page of context")

    with pytest.raises(RuntimeError):
        life.run(explode)
    status = read_status(life.out)
    assert status["state"] == rundir.FAILED
    assert status["error"] == "RuntimeError: boom"


def test_without_a_run_directory_every_error_is_raised_and_ends_the_tracker_as_it_ended():
    ended: list[str] = []

    class Run:
        def end(self, status):
            ended.append(status)

    class Tracker(keras.callbacks.Callback):
        run = Run()

    for error, expected in ((KeyboardInterrupt(), "KILLED"), (ValueError("x"), "FAILED")):
        life = _life(None)
        life.start(Tracker, log=False)

        def fail(error=error):
            raise error

        with pytest.raises(type(error)):
            life.run(fail)
        assert ended[-1] == expected
    life = _life(None)
    life.start(Tracker, log=False)
    assert life.run(lambda: None) == 0
    assert ended[-1] == "FINISHED"


def test_one_line_strips_colour_and_context():
    assert one_line(ValueError("\x1b[31mred\x1b[0m\nsecond")) == "ValueError: red"
    assert one_line(KeyError()) == "KeyError: "


# --------------------------------------------------------------------------- the translation


def test_the_spec_takes_every_training_setting_from_the_configuration():
    train = TrainConfig(epochs=7, jit_compile=True, steps_per_execution=4)
    loss, optimizer = keras.losses.SparseCategoricalCrossentropy(), keras.optimizers.Adam()
    spec = make_spec(train, loss=loss, optimizer=optimizer, metrics=list, first_epoch=3)
    assert (spec.epochs, spec.jit_compile, spec.steps_per_execution) == (7, True, 4)
    assert (spec.initial_epoch, spec.loss, spec.optimizer) == (3, loss, optimizer)
    assert spec.train_step is None and spec.test_step is None


# --------------------------------------------------------------------------- pre-flight and run


def _config(corpus: Path, **train) -> RunConfig:
    return RunConfig(
        data=DataConfig(source=str(corpus), max_len=40),
        train=TrainConfig(epochs=1, seed=None, **train),
    )


def test_preflight_draws_a_seed_and_records_backend_and_data(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    prepared = preflight(_config(corpus), devices=False)
    assert prepared.devices is None
    assert isinstance(prepared.config.train.seed, int)
    assert prepared.config.device.backend == keras.backend.backend()
    assert prepared.config.data.fingerprint == prepared.reuters.fingerprint.to_dict()


def test_a_bad_model_is_refused_before_the_run_directory_exists(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    config = _config(corpus)
    config = replace(config, data=replace(config.data, max_len=5))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="max_len 5"):
        run.train(config, out=out, quiet=True)
    assert not out.exists()


def test_a_run_trains_completes_and_refuses_to_be_resumed(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert run.train(_config(corpus, method="batch"), out=out, quiet=True) == 0
    status = read_status(out)
    assert status["state"] == rundir.COMPLETED and status["epochs_completed"] == 1
    saved = json.loads((out / rundir.CONFIG).read_text())
    assert isinstance(saved["train"]["seed"], int)
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["train_samples"] == 192 and metrics["epochs"] == 1
    encoder = json.loads((out / rundir.ENCODER).read_text())
    assert encoder["max_len"] == 40
    with pytest.raises(rundir.RunDirError):
        run.resume(out, quiet=True)


def test_a_stopped_run_resumes_to_the_end(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    real = RunLife.callbacks

    class StopInEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupted(signal.SIGTERM)

    def with_stop(life, *args, **kwargs):
        return [StopInEpoch2(), *real(life, *args, **kwargs)]

    out = tmp_path / "run"
    config = _config(corpus, method="loop")
    config = replace(config, train=replace(config.train, epochs=2, seed=3))
    monkeypatch.setattr(RunLife, "callbacks", with_stop)
    assert run.train(config, out=out, quiet=True) == 143
    status = read_status(out)
    assert status["state"] == rundir.INTERRUPTED and status["epochs_completed"] == 1
    monkeypatch.setattr(RunLife, "callbacks", real)
    assert run.resume(out, quiet=True) == 0
    assert read_status(out)["epochs_completed"] == 2
    assert len(json.loads((out / rundir.METRICS).read_text())["seconds_per_epoch"]) == 2
    assert np.isfinite(json.loads((out / rundir.METRICS).read_text())["final"]["loss"])


def test_a_graph_error_says_what_went_wrong_in_status_and_train_log(tmp_path):
    page = (
        "Graph execution error:\n\nDetected at node sequential/embedding/GatherV2 defined at "
        '(most recent call last):\n  File "train.py", line 6, in <module>\n\n'
        "indices[0,0] = 9 is not in [0, 5)\n\t [[{{node sequential/embedding/GatherV2}}]] "
        "[Op:__inference_multi_step_on_iterator_781]"
    )
    life = _life(tmp_path / "run")
    life.start()

    def explode():
        raise ValueError(page)

    with pytest.raises(ValueError):
        life.run(explode)
    line = "ValueError: Graph execution error: indices[0,0] = 9 is not in [0, 5)"
    assert read_status(life.out)["error"] == line
    assert f"failed: {line}" in (life.out / rundir.LOG).read_text()
