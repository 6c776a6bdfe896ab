"""MLflow tracking (``--mlflow``, ``tracking=``, ``trainways track``) against a real MLflow.

Runs log to a local SQLite store, read back through ``mlflow.MlflowClient``; the
never-lose-training test starts an ``mlflow server`` on 127.0.0.1 and stops it in the middle of
a run. The comparison's parent and nested runs are tested with the module comparison of
test_compare.py; JAX's and PyTorch's runs (and their own-loop examples) in test_backends.py.
Longer than most test modules: every way a run meets MLflow shares its fixtures (the trained
runs, the store), and the cheap checks of stores and records at the end train nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow import MlflowClient

import trainways
from trainways import callbacks as tw_callbacks
from trainways import rundir
from trainways.cli import main
from trainways.config import RunConfig, options
from trainways.lifecycle import RunLife
from trainways.parser import build_parser
from trainways.tracking import (
    TrackedRun,
    TrackingError,
    library_uri,
    log_evaluation,
    resolve_uri,
    with_resolved_uri,
)

from helpers import Children, read_history, read_status, toy_problem, train_args

EPOCHS = 2
SMALL = ("--max-len", "40")
# What every epoch logs, whatever trains it: the epoch logs, the rate and the time.
EPOCH_KEYS = {
    "loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy",
    "learning_rate", "epoch_seconds",
}  # fmt: skip


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def run_of(run_dir: Path):
    """The MLflow run a run directory records, read from its store."""
    record = rundir.read_tracking(run_dir)
    client = MlflowClient(record["tracking_uri"])
    return client, client.get_run(record["run_id"])


def steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return sqlite(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture(scope="module")
def tracked(corpus, store, tmp_path_factory) -> dict[str, Path]:
    """Each method's run, 2 epochs, logged to the module's SQLite store."""
    root = tmp_path_factory.mktemp("tracked")
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINWAYS_CACHE_DIR", str(root / "cache"))
        for method in ("fit", "batch", "loop"):
            runs[method] = root / method
            argv = train_args(corpus, runs[method], method, EPOCHS, *SMALL, "--mlflow", store)
            assert main(argv) == 0
            keras.backend.clear_session()
    return runs


# --------------------------------------------------------------------------- what a run logs


def test_every_method_logs_the_same_keys_per_epoch_and_finishes(tracked):
    for method, run_dir in tracked.items():
        client, mlflow_run = run_of(run_dir)
        assert mlflow_run.info.status == "FINISHED", method
        assert mlflow_run.info.run_name == run_dir.name
        assert set(mlflow_run.data.metrics) == EPOCH_KEYS, method
        for key in EPOCH_KEYS:
            assert [s for s, _ in steps(client, mlflow_run.info.run_id, key)] == [1, 2], key


def test_the_logged_metrics_are_the_history_epoch_by_epoch(tracked):
    for method, run_dir in tracked.items():
        client, mlflow_run = run_of(run_dir)
        for key in ("loss", "val_accuracy", "top5_accuracy"):
            logged = [v for _, v in steps(client, mlflow_run.info.run_id, key)]
            written = [float(row[key]) for row in read_history(run_dir)]
            assert logged == pytest.approx(written, rel=1e-12), (method, key)
        rates = steps(client, mlflow_run.info.run_id, "learning_rate")
        assert [v for _, v in rates] == pytest.approx([1e-3, 1e-3])
        seconds = [v for _, v in steps(client, mlflow_run.info.run_id, "epoch_seconds")]
        assert all(s > 0 for s in seconds)


def test_params_are_backend_method_seed_and_every_option(tracked):
    config = json.loads((tracked["loop"] / rundir.CONFIG).read_text())
    _, mlflow_run = run_of(tracked["loop"])
    params = mlflow_run.data.params
    assert (params["backend"], params["method"], params["seed"]) == ("tensorflow", "loop", "5")
    for option in options():
        section, key = option.path.split(".")
        value = config[section][key]
        assert params[option.path] == (value if isinstance(value, str) else json.dumps(value))
    assert params["train.epochs"] == "2" and params["data.max_len"] == "40"


def test_the_run_files_are_its_artifacts_and_the_run_records_its_mlflow_run(tracked, store):
    client, mlflow_run = run_of(tracked["fit"])
    assert artifacts(client, mlflow_run.info.run_id) == set(rundir.RUN_ARTIFACTS)
    assert rundir.read_tracking(tracked["fit"])["tracking_uri"] == store
    assert mlflow_run.data.tags["trainways.run_dir"] == str(tracked["fit"].resolve())


def test_evaluate_adds_the_test_figures_to_the_runs_mlflow_run(tracked, tmp_path):
    from trainways import inference

    run_dir = tmp_path / "fit"
    subprocess.run(["cp", "-r", str(tracked["fit"]), str(run_dir)], check=True)
    figures = inference.evaluate(run_dir)
    client, mlflow_run = run_of(run_dir)
    metrics = client.get_run(mlflow_run.info.run_id).data.metrics
    assert metrics["test_accuracy"] == pytest.approx(figures["accuracy"])
    assert metrics["test_macro_f1"] == pytest.approx(figures["macro_f1"])
    assert set(rundir.EVALUATION_ARTIFACTS) <= artifacts(client, mlflow_run.info.run_id)


# --------------------------------------------------------------------------- stops and resumes


def _interrupt_at(epoch: int, batch: int, monkeypatch):
    """The next in-process run stops as SIGINT stops it, at the first batch end of that (1-based)
    epoch from that 0-based batch on (fit runs several steps per call)."""

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, index, logs=None):
            self.epoch = index + 1

        def on_train_batch_end(self, index, logs=None):
            if self.epoch == epoch and index >= batch:
                raise tw_callbacks.Interrupted(signal.SIGINT)

    original = RunLife.callbacks

    def with_stop(life, *args, **kwargs):
        return [Stop(), *original(life, *args, **kwargs)]

    monkeypatch.setattr(RunLife, "callbacks", with_stop)


def test_an_interrupted_run_is_killed_in_mlflow_and_resume_continues_the_same_run(
    corpus, store, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        _interrupt_at(2, 1, patch)
        argv = train_args(corpus, run_dir, "fit", 3, *SMALL, "--mlflow", store)
        assert main(argv) == 130
    client, stopped = run_of(run_dir)
    assert stopped.info.status == "KILLED"
    assert [s for s, _ in steps(client, stopped.info.run_id, "loss")] == [1]
    keras.backend.clear_session()
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    _, resumed = run_of(run_dir)
    assert resumed.info.run_id == stopped.info.run_id
    assert resumed.info.status == "FINISHED"
    logged = steps(client, resumed.info.run_id, "loss")
    assert [s for s, _ in logged] == [1, 2, 3]  # each epoch once
    written = [float(row["loss"]) for row in read_history(run_dir)]
    assert [v for _, v in logged] == pytest.approx(written)


def test_a_failed_run_is_failed_in_mlflow(corpus, store, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "nan"
    # A learning rate this large sends the loss to infinity in the first epoch (test_resume.py).
    argv = train_args(corpus, run_dir, "loop", 2, *SMALL, "--lr", "1e12", "--mlflow", store)
    assert main(argv) == 1
    assert read_status(run_dir)["state"] == "failed"
    assert run_of(run_dir)[1].info.status == "FAILED"


# --------------------------------------------------------------------------- never lose training


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``mlflow server`` on 127.0.0.1:``port`` over a SQLite store in ``root``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", sqlite(self.root / "server.db"),
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "server.log").open("a"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("mlflow server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "server"
    root.mkdir()
    server = Server(root, _free_port())
    server.start()
    yield server
    server.stop()


def test_a_server_stopped_mid_run_costs_one_warning_and_track_uploads_the_rest(
    corpus, server, tmp_path
):
    children = Children(tmp_path / "cache")
    run_dir, marker, release = tmp_path / "run", tmp_path / "paused", tmp_path / "go"
    try:
        child = children.spawn(
            *train_args(corpus, run_dir, "batch", EPOCHS, *SMALL, "--mlflow", server.uri),
            pause_at="2:0",
            marker=marker,
            env={"TRAINWAYS_TEST_PAUSE_RELEASE": str(release)},
        )
        children.wait_for(marker, child)
        # Epoch 1 reached the server, which the test reads back.
        client, live = run_of(run_dir)
        assert live.info.status == "RUNNING"
        assert [s for s, _ in steps(client, live.info.run_id, "loss")] == [1]
        server.stop()
        release.touch()
        assert children.wait(child) == 0, child.stderr_text[-3000:]
    finally:
        children.kill_all()
    warnings = [line for line in child.stderr_text.splitlines() if "MLflow" in line]
    assert len(warnings) == 1, child.stderr_text[-3000:]
    assert f"trainways track {run_dir}" in warnings[0]
    assert read_status(run_dir)["state"] == "completed"
    assert len(read_history(run_dir)) == EPOCHS
    assert all((run_dir / name).is_file() for name in (rundir.MODEL, rundir.BEST, rundir.METRICS))

    server.start()  # the same store, on the same port the run recorded
    assert main(["track", str(run_dir)]) == 0
    _, tracked = run_of(run_dir)
    assert tracked.info.run_id == live.info.run_id
    assert tracked.info.status == "FINISHED"
    logged = steps(client, tracked.info.run_id, "loss")
    assert logged == [(i + 1, float(r["loss"])) for i, r in enumerate(read_history(run_dir))]
    assert set(rundir.RUN_ARTIFACTS) <= artifacts(client, tracked.info.run_id)


def test_an_unreachable_store_is_one_warning_and_track_logs_the_run_later(
    corpus, store, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "untracked"
    nowhere = f"http://127.0.0.1:{_free_port()}"
    assert main(train_args(corpus, run_dir, "fit", EPOCHS, *SMALL, "--mlflow", nowhere)) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "MLflow" in line]) == 1, err
    assert "Connection refused" in err
    assert read_status(run_dir)["state"] == "completed"
    assert rundir.read_tracking(run_dir) is None

    assert main(["track", str(run_dir), "--mlflow", store]) == 0
    assert "2 epoch(s) logged now" in capsys.readouterr().out
    client, mlflow_run = run_of(run_dir)
    assert mlflow_run.info.status == "FINISHED"
    assert set(mlflow_run.data.metrics) == EPOCH_KEYS
    assert mlflow_run.data.params["method"] == "fit"
    # Again: the run has every epoch, so nothing is logged twice.
    assert main(["track", str(run_dir)]) == 0
    assert "0 epoch(s) logged now" in capsys.readouterr().out
    assert len(steps(client, mlflow_run.info.run_id, "loss")) == EPOCHS


def test_track_refuses_a_running_run_and_a_directory_that_is_no_run(tmp_path, capsys):
    rundir.set_status(tmp_path, rundir.RUNNING)
    assert main(["track", str(tmp_path)]) == 2
    assert "is running (or its process was killed)" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "nothing")]) == 2
    assert "not a trainways run" in capsys.readouterr().err


# --------------------------------------------------------------------------- where runs go


def test_mlflow_without_a_uri_means_the_environments_or_a_store_beside_the_runs(
    tmp_path, monkeypatch
):
    parsed = build_parser().parse_args(["train", "--mlflow"])
    assert getattr(parsed, "train.tracking") == "auto"
    given = build_parser().parse_args(["train", "--mlflow", "http://host:5000"])
    assert getattr(given, "train.tracking") == "http://host:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri("auto", tmp_path / "runs") == f"sqlite:///{tmp_path}/runs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert resolve_uri("auto", tmp_path / "runs") == "http://tracker:5000"
    assert resolve_uri("sqlite:////elsewhere.db", tmp_path) == "sqlite:////elsewhere.db"


def test_without_mlflow_installed_tracking_is_refused_before_the_run_exists(
    corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now fails
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    assert main(train_args(corpus, run_dir, "fit", 1, *SMALL, "--mlflow")) == 2
    assert "pip install 'trainways[mlflow]'" in capsys.readouterr().err
    assert not run_dir.exists()


def test_the_tracking_modules_start_no_backend_and_import_no_callbacks():
    # `trainways track` and --mlflow's resolution run before (or without) any backend; the
    # Keras side (trainways.callbacks) sits above the MLflow side, never below it.
    code = (
        "import importlib, pkgutil, sys\n"
        "import trainways.tracking as package\n"
        "for found in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(f'{package.__name__}.{found.name}')\n"
        "print(sorted(m for m in ('keras', 'mlflow', 'tensorflow', 'jax', 'torch',\n"
        "                         'trainways.callbacks') if m in sys.modules))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert child.stdout.strip() == "[]", child.stdout + child.stderr


# --------------------------------------------------------------------------- the library


def _toy_model(length: int) -> keras.Model:
    """A small classifier of ``helpers.toy_problem``'s sequences (6 classes), seeded."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(40, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def library_store(tmp_path_factory) -> str:
    return sqlite(tmp_path_factory.mktemp("library") / "mlflow.db")


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_the_library_logs_the_same_keys_for_every_method(method, library_store):
    store = library_store
    x, y = toy_problem(n=96)
    model = _toy_model(x.shape[1])
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = trainways.fit(
        model, x[:64], y[:64], validation_data=(x[64:], y[64:]), method=method, epochs=2,
        seed=0, tracking=store, verbose=0,
    )  # fmt: skip
    client = MlflowClient(store)
    [found] = client.search_runs(
        [client.get_experiment_by_name("trainways").experiment_id],
        filter_string=f"params.method = '{method}'",
    )
    assert found.info.status == "FINISHED"
    assert set(found.data.metrics) == {*history.history, "learning_rate", "epoch_seconds"}
    assert [v for _, v in steps(client, found.info.run_id, "val_loss")] == pytest.approx(
        history.history["val_loss"]
    )


def test_a_users_loop_logs_like_a_run_and_resumes_its_mlflow_run(store, tmp_path):
    x, y = toy_problem(n=96)
    out = tmp_path / "own"

    def train(stop_after: int | None) -> trainways.Loop:
        model = _toy_model(x.shape[1])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        loop = trainways.Loop(
            model, x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=3, seed=0, out=out,
            verbose=False, tracking=store,
        )  # fmt: skip
        for epoch in loop.epochs():
            for xb, yb in loop.batches():
                loop.log(model.train_on_batch(xb, yb, return_dict=True))
            loop.validate(lambda xv, yv: model.test_on_batch(xv, yv, return_dict=True))
            if stop_after is not None and epoch + 1 == stop_after:
                break  # the script leaves the loop in this epoch: the run failed there
        return loop

    train(stop_after=2)  # epoch 1 checkpointed and logged
    client, first = run_of(out)
    assert first.info.status == "FAILED"  # as status.json says
    train(stop_after=None)
    _, resumed = run_of(out)
    assert resumed.info.run_id == first.info.run_id
    assert resumed.info.status == "FINISHED"
    assert set(resumed.data.metrics) == {
        "loss", "val_loss", "learning_rate", "epoch_seconds"
    }  # fmt: skip
    assert [s for s, _ in steps(client, resumed.info.run_id, "loss")] == [1, 2, 3]
    assert resumed.data.params["method"] == "loop"
    assert resumed.data.params["loop.script"]
    assert {"config.json", "history.csv", "metrics.json", "train.log"} <= artifacts(
        client, resumed.info.run_id
    )


def test_the_callback_logs_a_plain_keras_fit(tmp_path):
    x, y = toy_problem(n=64)
    model = _toy_model(x.shape[1])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    tracker = tw_callbacks.MlflowTracking(sqlite(tmp_path / "plain.db"))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[tracker])
    client = MlflowClient(sqlite(tmp_path / "plain.db"))
    found = client.get_run(tracker.run.run_id)
    assert found.info.status == "FINISHED"
    assert set(found.data.metrics) == {"loss", "learning_rate", "epoch_seconds"}
    assert np.isfinite(found.data.metrics["loss"])
    # A SQLite store keeps its artifacts beside it, not in ./mlruns of the working directory.
    experiment = client.get_experiment(found.info.experiment_id)
    assert experiment.artifact_location == (tmp_path / rundir.TRACKING_ARTIFACTS).as_uri()


# --------------------------------------------------------------------------- stores and records
# A store that cannot be written, a relative store, MLflow's own lines, a repeated track and a
# broken mlflow.json: each costs a warning or a one-line refusal, never a stall or a traceback.


def _finished_run(path: Path, *, figures: dict | None = None) -> Path:
    """A completed run directory written by hand (no training): 2 epochs, and ``figures`` as
    its ``evaluation.json``."""
    path.mkdir(parents=True)
    rundir.write_json(path / rundir.CONFIG, {"train": {"method": "fit", "learning_rate": 1e-3}})
    rundir.write_history_csv({"loss": [1.5, 1.0], "accuracy": [0.25, 0.5]}, path)
    if figures is not None:
        rundir.write_json(path / rundir.EVALUATION, figures)
    rundir.set_status(path, rundir.COMPLETED, epochs_completed=2)
    return path


def _unwritable(monkeypatch, folder: Path) -> None:
    """``folder`` reads as unwritable, as a directory of someone else's does (tests run as
    root, which may write anywhere)."""
    access = os.access

    def no_write(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", no_write)


def test_a_sqlite_store_in_an_unwritable_directory_is_refused_before_the_run_exists(
    corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    locked, run_dir = tmp_path / "locked", tmp_path / "run"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    argv = train_args(corpus, run_dir, "fit", 1, *SMALL, "--mlflow", sqlite(locked / "m.db"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert f"{locked} is not writable" in line and "--mlflow" in line, line
    assert captured.out == ""
    assert not run_dir.exists() and list(locked.iterdir()) == []


def test_a_store_that_cannot_be_opened_is_one_quick_warning_without_mlflows_retries(
    tmp_path, monkeypatch, capsys
):
    # MLflow retries opening a SQLite store 9 times over ~100 s, 4 lines each, --quiet or not.
    where = tmp_path / "store.db"
    where.mkdir()  # a directory where the database file should be: SQLite cannot open it
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    for uri in (sqlite(where), sqlite(locked / "m.db"), sqlite(tmp_path / "new" / "m.db")):
        warnings: list[str] = []
        started = time.monotonic()
        run = TrackedRun(uri, warn=warnings.append)
        run.open()
        assert time.monotonic() - started < 10, uri
        if uri.endswith("new/m.db"):  # a folder that does not exist yet is made
            assert run.run_id is not None and warnings == []
            continue
        assert run.run_id is None and len(warnings) == 1, warnings
        assert "training goes on untracked" in warnings[0]
        with pytest.raises(TrackingError, match="MLflow at"):
            TrackedRun(uri, strict=True).open()
    captured = capsys.readouterr()
    assert captured.out == "" and "SQLAlchemy" not in captured.err, captured.err


def test_a_relative_sqlite_store_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    # --resume from another directory must find the same store, and the same MLflow run.
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path}/rel.db"
    assert resolve_uri("sqlite:///rel.db", tmp_path / "runs") == expected
    assert library_uri("sqlite:///rel.db", tmp_path / "runs") == expected
    config = RunConfig()
    config = replace(config, train=replace(config.train, tracking="sqlite:///sub/rel.db"))
    resolved = with_resolved_uri(config, tmp_path / "runs")
    assert resolved.train.tracking == f"sqlite:///{tmp_path}/sub/rel.db"
    assert resolve_uri("http://host:5000", tmp_path) == "http://host:5000"


def test_a_new_store_prints_nothing_of_mlflows_own(tmp_path):
    # MLflow announces creating its tables (INFO, on stderr) the first time it is imported and
    # opens a store: a quiet run prints nothing but trainways' own warnings.
    code = (
        "import sys\n"
        "from trainways.tracking import TrackedRun\n"
        "run = TrackedRun(sys.argv[1])\n"
        "assert run.open() is not None\n"
        "run.end('FINISHED')\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, sqlite(tmp_path / "new.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert (child.stdout, child.stderr) == ("", ""), child.stderr


def test_tracking_a_run_again_logs_its_evaluation_once(tmp_path, capsys):
    figures = {"loss": 0.75, "accuracy": 0.625, "macro_f1": 0.5}
    run_dir = _finished_run(tmp_path / "run", figures=figures)
    store = sqlite(tmp_path / "mlflow.db")
    for _ in range(3):
        assert main(["track", str(run_dir), "--mlflow", store]) == 0
    client, mlflow_run = run_of(run_dir)
    assert steps(client, mlflow_run.info.run_id, "test_accuracy") == [(0, 0.625)]
    assert steps(client, mlflow_run.info.run_id, "test_macro_f1") == [(0, 0.5)]
    assert len(steps(client, mlflow_run.info.run_id, "loss")) == 2
    # A new evaluation (other figures) is logged, once.
    rundir.write_json(run_dir / rundir.EVALUATION, {**figures, "accuracy": 0.75})
    for _ in range(2):
        log_evaluation(run_dir, {**figures, "accuracy": 0.75})
    assert steps(client, mlflow_run.info.run_id, "test_accuracy") == [(0, 0.625), (0, 0.75)]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("record", ["{", "[]", '{"tracking_uri": 5}', '{"run_id": "abc"}'])
def test_a_broken_tracking_record_is_one_warning_and_track_refuses_it(record, tmp_path, capsys):
    run_dir = _finished_run(tmp_path / "run", figures={"accuracy": 0.5})
    (run_dir / rundir.TRACKING).write_text(record)
    store = sqlite(tmp_path / "mlflow.db")
    warnings: list[str] = []
    run = TrackedRun.of_run_dir(run_dir, store, warn=warnings.append)
    assert run.open() is None
    [warning] = warnings
    assert str(run_dir / rundir.TRACKING) in warning and "untracked" in warning, warning
    assert f"delete {run_dir / rundir.TRACKING}" in warning
    log_evaluation(run_dir, {"accuracy": 0.5})  # trainways evaluate: a warning, no error
    assert main(["track", str(run_dir), "--mlflow", store]) == 2
    [line] = capsys.readouterr().err.splitlines()[-1:]
    assert line.startswith("trainways track: error: ") and str(run_dir / rundir.TRACKING) in line
    assert (run_dir / rundir.TRACKING).read_text() == record  # nothing changed


def test_a_loop_resumed_over_a_broken_tracking_record_trains_on_untracked(store, tmp_path):
    x, y = toy_problem(n=64)
    out = tmp_path / "own"

    def train(stop_after: int | None) -> None:
        model = _toy_model(x.shape[1])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        loop = trainways.Loop(model, x, y, epochs=2, seed=0, out=out, verbose=False, tracking=store)
        for epoch in loop.epochs():
            for xb, yb in loop.batches():
                loop.log(model.train_on_batch(xb, yb, return_dict=True))
            if stop_after is not None and epoch + 1 == stop_after:
                break

    train(stop_after=2)
    (out / rundir.TRACKING).write_text("{")  # the disk filled up as it was written
    train(stop_after=None)
    assert read_status(out)["state"] == "completed"
    log = (out / rundir.LOG).read_text().splitlines()
    warnings = [line for line in log if str(out / rundir.TRACKING) in line]
    assert len(warnings) == 1 and "training goes on untracked" in warnings[0], warnings
