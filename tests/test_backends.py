"""Keras backends other than TensorFlow: choosing one, and everything trainways does on JAX and
PyTorch.

This pytest process runs Keras on TensorFlow, so every JAX or PyTorch run is a child process
(started together: most of their time is starting Python). On the synthetic corpus, per backend:
each method trains and records its backend; the three agree after one epoch; the loop method runs a
model's own train_step as fit does (level 1); the backend's example step (level 2) and its own-loop
example (level 3) give the built-in loop's weights; a run stopped by
SIGKILL in epoch 2 resumes — on that backend, because the run recorded it — to exactly the unbroken
run; the model a backend saved evaluates, predicts and exports here, on TensorFlow; the
``tfidf_mlp`` preset with dropout and every regulariser trains alike in fit and loop. Refusals
and device planning: test_backend_choice.py; backends side by side: test_backend_agreement.py.
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

from helpers import (
    Children,
    assert_same_run,
    checkpoint_epochs,
    largest_difference,
    load_weights,
    read_history,
    read_status,
    train_args,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
METHODS = ("fit", "batch", "loop")
EPOCHS = 3
BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name) is None,
            reason=f"{name} is not installed: pip install -e '.[{name}]'",
        ),
    )
    for name in ("jax", "torch")
]


TFIDF = (
    "--model", "tfidf_mlp", "--validation-split", "0.2", "--loss", "hinge",
    "--weight-decay", "0.01",
)  # fmt: skip


def options(backend: str) -> tuple[str, ...]:
    return ("--max-len", "60", "--backend", backend)


@pytest.fixture(scope="module", params=BACKENDS)
def runs(request, corpus, tmp_path_factory) -> dict[str, Path]:
    """On one backend: each method, unbroken; loop with the backend's example step; the
    backend's own-loop example; and loop again, stopped by SIGKILL in epoch 2."""
    backend = request.param
    root = tmp_path_factory.mktemp(backend)
    children = Children(root / "cache")
    example = EXAMPLES / f"tutorial_step_{backend}.py"
    steps = ("--step", f"{example}:train_step", "--test-step", f"{example}:test_step")
    try:
        # The loop method and the user's own loop (below) log to MLflow, each to a store of its
        # own (the children run at once); fit and batch log through the same callback on TF.
        tracked = {"loop": ("--mlflow", f"sqlite:///{root / 'loop'}.db")}
        unbroken = {
            method: children.spawn(
                *train_args(corpus, root / method, method, EPOCHS, *options(backend)),
                *tracked.get(method, ()),
            )
            for method in METHODS
        }
        unbroken["step"] = children.spawn(
            *train_args(corpus, root / "step", "loop", EPOCHS, *options(backend), *steps)
        )
        clipped = ("--model", f"{Path(__file__).with_name('tight_clip.py')}:build")
        for method in ("fit", "loop"):
            unbroken[f"clipped_{method}"] = children.spawn(
                *train_args(
                    corpus, root / f"clipped_{method}", method, 1, *options(backend), *clipped
                )
            )
        # A preset with its in-model encoding, dropout and every regulariser, by two methods.
        for method in ("fit", "loop"):
            unbroken[f"tfidf_{method}"] = children.spawn(
                *train_args(corpus, root / f"tfidf_{method}", method, 2, *options(backend), *TFIDF)
            )
        if backend == "jax":  # PyTorch runs one step per call
            # 6 steps per epoch as calls of 4 + 2: the last call of an epoch runs what remains.
            unbroken["fit_by_4"] = children.spawn(
                *train_args(corpus, root / "fit_by_4", "fit", EPOCHS, *options(backend)),
                *("--steps-per-execution", "4"),
            )
        unbroken["own_loop"] = children.spawn(
            *("--data", str(corpus), "--epochs", str(EPOCHS), "--seed", "5", "--max-len", "60"),
            *("--out", str(root / "own_loop"), "--mlflow", f"sqlite:///{root / 'own_loop'}.db"),
            script=EXAMPLES / f"own_loop_{backend}.py",
            env={"KERAS_BACKEND": backend},
        )
        marker = root / "killed.paused"
        # JAX: calls of 4 + 2 steps, so that the pause (at the call from batch 4) falls inside
        # epoch 2 and the resumed epoch ends with the short call.
        split = ("--steps-per-execution", "4") if backend == "jax" else ()
        killed = children.spawn(
            *train_args(corpus, root / "killed", "loop", EPOCHS, *options(backend), *split),
            pause_at="2:3",
            marker=marker,
            env={"KERAS_BACKEND": backend},  # the paused child's script imports Keras first
        )
        children.wait_for(marker, killed)
        assert checkpoint_epochs(root / "killed") == [1]
        killed.send_signal(signal.SIGKILL)
        assert children.wait(killed) == -signal.SIGKILL
        for name, process in unbroken.items():
            assert children.wait(process) == 0, f"{name}: {process.stderr_text[-3000:]}"
    finally:
        children.kill_all()
    names = [*unbroken, "killed"]
    return {"backend": backend, **{name: root / name for name in names}}


def test_each_method_trains_on_the_backend_and_records_it(runs):
    backend = runs["backend"]
    for method in METHODS:
        run = runs[method]
        assert json.loads((run / rundir.STATUS).read_text())["state"] == "completed"
        assert json.loads((run / rundir.CONFIG).read_text())["device"]["backend"] == backend
        assert {"jax": "JAX", "torch": "PyTorch"}[backend] in (run / rundir.LOG).read_text()
        assert len(read_history(run)) == EPOCHS


def test_the_loop_method_and_the_users_loop_log_the_same_mlflow_keys_on_the_backend(runs):
    from mlflow import MlflowClient

    keys = {
        "loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy",
        "learning_rate", "epoch_seconds",
    }  # fmt: skip
    for name in ("loop", "own_loop"):
        record = rundir.read_tracking(runs[name])
        client = MlflowClient(record["tracking_uri"])
        logged = client.get_run(record["run_id"])
        assert logged.info.status == "FINISHED", name
        assert logged.data.params["backend"] == runs["backend"], name
        assert set(logged.data.metrics) == keys, name
        losses = [m.value for m in client.get_metric_history(record["run_id"], "loss")]
        assert losses == [float(row["loss"]) for row in read_history(runs[name])], name


def test_the_three_methods_agree_on_the_backend_after_one_epoch(runs):
    weights = {method: first_epoch_weights(runs[method]) for method in METHODS}
    for method in ("batch", "loop"):
        for (name, ours), (other, theirs) in zip(weights[method], weights["fit"], strict=True):
            assert name == other
            assert np.max(np.abs(ours - theirs)) <= 1e-5, (method, name)
    histories = {method: read_history(runs[method]) for method in METHODS}
    for method in ("batch", "loop"):
        for ours, theirs in zip(histories[method], histories["fit"], strict=True):
            assert abs(float(ours["val_accuracy"]) - float(theirs["val_accuracy"])) <= 0.005


def test_a_preset_with_dropout_trains_alike_in_fit_and_loop_and_serves_on_tensorflow(runs):
    from trainways import inference

    fit, loop = runs["tfidf_fit"], runs["tfidf_loop"]
    assert len(read_history(fit)) == 2
    assert largest_difference(load_weights(fit), load_weights(loop)) <= 1e-5
    # Its TfidfBag layer (IDF weights included) loads here, on TensorFlow.
    [prediction] = inference.predict(fit, ["copper mine output of copper tonnes"], last=True)
    assert prediction.problem is None and len(prediction.topics) == 5


def test_calls_of_several_steps_that_split_an_epoch_train_as_whole_epoch_calls(runs):
    if "fit_by_4" not in runs:
        pytest.skip(f"{runs['backend']} runs one step per call")
    assert len(read_history(runs["fit_by_4"])) == EPOCHS
    assert largest_difference(load_weights(runs["fit_by_4"]), load_weights(runs["fit"])) <= 1e-5


def test_the_backends_example_step_trains_as_the_built_in_loop(runs):
    assert_same_run(runs["step"], runs["loop"])


def test_the_loop_method_runs_the_models_own_train_step_as_fit_does(runs):
    # examples/clipped_model_<backend>.py with a clip of 1e-9: the model barely moves. (Its
    # model.keras needs the example's class, which this TensorFlow process cannot import: the
    # one epoch's weights are compared from the checkpoint files.)
    assert read_history(runs["clipped_loop"]) == read_history(runs["clipped_fit"])
    clipped = first_epoch_weights(runs["clipped_loop"])
    for (name, ours), (other, theirs) in zip(
        clipped, first_epoch_weights(runs["clipped_fit"]), strict=True
    ):
        assert name == other
        np.testing.assert_array_equal(ours, theirs)
    plain = first_epoch_weights(runs["loop"])
    assert max(np.max(np.abs(a - b)) for (_, a), (_, b) in zip(clipped, plain, strict=True)) > 1e-4


def test_the_backends_own_loop_example_trains_as_the_built_in_loop(runs):
    assert read_status(runs["own_loop"])["state"] == "completed"
    assert largest_difference(load_weights(runs["own_loop"]), load_weights(runs["loop"])) == 0.0
    for ours, theirs in zip(
        read_history(runs["own_loop"]), read_history(runs["loop"]), strict=True
    ):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            # The Loop averages in float64 in Python, the loop method in float32 variables.
            assert float(ours[key]) == pytest.approx(float(theirs[key]), abs=1e-5), key


def test_a_killed_run_resumes_on_its_backend_to_the_unbroken_run(runs):
    # In a child: this process's Keras runs on TensorFlow, and --resume must pick the run's own
    # backend from its config.json with no --backend given.
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", "train", "--resume", str(runs["killed"])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(runs["killed"], runs["loop"])


def test_a_model_trained_on_the_backend_evaluates_predicts_and_exports_here_on_tensorflow(
    runs, tmp_path
):
    # A .keras file is backend-independent: this process runs Keras on TensorFlow.
    from trainways import inference
    from trainways.export import export_run

    figures = inference.evaluate(runs["fit"], last=True)
    history = read_history(runs["fit"])[-1]
    assert figures["accuracy"] == pytest.approx(float(history["val_accuracy"]), abs=1e-6)
    assert figures["loss"] == pytest.approx(float(history["val_loss"]), rel=1e-5)
    text = "the copper mine said output of copper and smelter tonnes rose in the year"
    [prediction] = inference.predict(runs["fit"], [text], last=True)
    assert prediction.problem is None and len(prediction.topics) == 5
    export_run(runs["fit"], tmp_path / "exported", last=True)
    assert (tmp_path / "exported" / "saved_model.pb").is_file()
