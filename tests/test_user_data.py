"""``--data FILE.py:FUNCTION``: the command line trains the user's own data, with the user's own
(two-input, compiled) model, in every method; ``agree``, ``--resume`` and ``config.json`` work
with it; what reads Reuters refuses it in one line.

Tiny synthetic data (96 samples of two named inputs, three classes) keeps each run a second or
two; the runs are in this process, through ``trainways.cli.main``.
"""

from __future__ import annotations

import json
import signal
import textwrap

import keras
import pytest

from trainways import rundir
from trainways.callbacks import Interrupted
from trainways.cli import main
from trainways.lifecycle import RunLife

from helpers import assert_same_run, read_history, read_status

EPOCHS = 2

DATA = """
import numpy as np
import keras


def _arrays(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = {"a": rng.normal(size=(n, 4)).astype("float32"),
         "b": rng.normal(size=(n, 3)).astype("float32")}
    y = (np.digitize(x["a"][:, 0] + x["b"][:, 0], [-0.5, 0.5])).astype("int32")
    return x, y


def load():
    x, y = _arrays()
    head = {k: v[:64] for k, v in x.items()}
    tail = {k: v[64:] for k, v in x.items()}
    return (head, y[:64]), (tail, y[64:])


def without_validation():
    return load()[0], None


def weighted():
    # Validation weighted too: the TensorFlow loop's test step takes the training batches'
    # structure (an unweighted validation set beside weighted training fails there today).
    (x, y), (vx, vy) = load()
    return (x, y, np.linspace(0.5, 1.5, len(y)).astype("float32")), (vx, vy, np.ones(len(vy)))


class Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.x, self.y = _arrays(64)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        part = slice(16 * i, 16 * (i + 1))
        return {k: v[part] for k, v in self.x.items()}, self.y[part]


def pydataset():
    return Batches(), load()[1]


def pair():
    return load()[0]


def generator():
    return (batch for batch in [load()[0]]), None


def broken():
    raise RuntimeError("no such table")
"""

MODEL = """
import keras


def _model():
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(3, activation="softmax")(hidden))


def build():
    model = _model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def uncompiled():
    return _model()


def needs_reuters(vocab_size, num_classes):
    return _model()
"""


@pytest.fixture(scope="module")
def code(tmp_path_factory):
    """``(data, model)``: the user's files, as ``FILE.py:`` prefixes of their functions."""
    root = tmp_path_factory.mktemp("code")
    (root / "tiny_data.py").write_text(textwrap.dedent(DATA))
    (root / "tiny_model.py").write_text(textwrap.dedent(MODEL))
    return f"{root / 'tiny_data.py'}:", f"{root / 'tiny_model.py'}:"


def _argv(code, out, method="fit", data="load", model="build", *extra):
    data_file, model_file = code
    return [
        "train",
        "--data",
        data_file + data,
        "--model",
        model_file + model,
        "--method",
        method,
        "--epochs",
        str(EPOCHS),
        "--seed",
        "7",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(code, tmp_path_factory):
    """Each method's completed run on the user's data."""
    root = tmp_path_factory.mktemp("runs")
    for method in ("fit", "batch", "loop"):
        assert main(_argv(code, root / method, method)) == 0
    return {method: root / method for method in ("fit", "batch", "loop")}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert ": error: " in err
    return err


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_each_method_trains_the_users_data_with_the_users_compile(runs, method):
    run = runs[method]
    assert read_status(run)["state"] == "completed"
    history = read_history(run)
    assert len(history) == EPOCHS
    # The builder's compile: its metric, no top-5 (which the run's own compile would add).
    assert set(history[0]) == {"epoch", "accuracy", "loss", "val_accuracy", "val_loss"}
    assert not (run / rundir.ENCODER).exists()  # no Reuters encoder for the user's data
    metrics = json.loads((run / rundir.METRICS).read_text())
    assert metrics["train_samples"] == 64 and metrics["epochs"] == EPOCHS
    assert (run / rundir.BEST).is_file()


def test_the_three_methods_agree_on_the_users_data(runs):
    assert read_history(runs["batch"]) == read_history(runs["fit"])
    assert read_history(runs["loop"]) == read_history(runs["fit"])


def test_config_json_records_the_data_function_and_the_builder(runs, code):
    config = json.loads((runs["fit"] / rundir.CONFIG).read_text())
    assert config["data"]["source"] == code[0] + "load"
    assert config["model"]["preset"] == code[1] + "build"
    assert config["data"]["fingerprint"] is None


def test_a_run_stopped_after_epoch_1_resumes_to_the_unbroken_run(code, runs, tmp_path, monkeypatch):
    real = RunLife.callbacks

    class StopInEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupted(signal.SIGTERM)

    def with_stop(life, *args, **kwargs):
        return [StopInEpoch2(), *real(life, *args, **kwargs)]

    out = tmp_path / "loop"
    monkeypatch.setattr(RunLife, "callbacks", with_stop)
    assert main(_argv(code, out, "loop")) == 143
    assert read_status(out)["epochs_completed"] == 1
    monkeypatch.setattr(RunLife, "callbacks", real)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, runs["loop"])


def test_agree_trains_the_three_methods_on_the_users_data(code, capsys):
    data_file, model_file = code
    argv = ["agree", "--data", data_file + "load", "--model", model_file + "build"]
    assert main([*argv, "--seed", "3", "--quiet"]) == 0
    assert "AGREE" in capsys.readouterr().out


@pytest.mark.parametrize("data", ["without_validation", "weighted", "pydataset"])
def test_other_forms_of_the_users_data_train(code, tmp_path, data):
    out = tmp_path / data
    assert main(_argv(code, out, "loop", data)) == 0
    history = read_history(out)
    assert len(history) == EPOCHS
    # Without validation data Keras's CSVLogger still writes the val_ columns, as NA.
    assert (history[0]["val_loss"] == "NA") == (data == "without_validation")


def test_an_uncompiled_model_is_compiled_with_the_runs_options(code, tmp_path):
    out = tmp_path / "uncompiled"
    assert main(_argv(code, out, "batch", "load", "uncompiled", "--lr", "0.01")) == 0
    assert {"accuracy", "top5_accuracy", "val_loss"} <= set(read_history(out)[0])


def test_the_documented_digits_example_trains(tmp_path):
    out = tmp_path / "digits"
    argv = ["train", "--data", "examples/digits_data.py:load"]
    argv += ["--model", "examples/digits_model.py:build", "--method", "loop", "--epochs", "1"]
    assert main([*argv, "--seed", "1", "--out", str(out), "--quiet"]) == 0
    assert float(read_history(out)[0]["val_accuracy"]) > 0.3


@pytest.mark.parametrize(
    ("model", "data", "extra", "expected"),
    [
        ("cnn", "load", (), "is a Reuters preset: give your model's builder too"),
        ("build", "load", ("--lr", "0.1"), "learning_rate 0.1 conflicts with the compile()"),
        ("build", "load", ("--max-len", "40"), "max_len 40 shapes the Reuters data"),
        ("needs_reuters", "load", (), "describe the Reuters data, not yours"),
        ("build", "pair", (), "returned validation arrays without y"),
        ("build", "generator", (), "is a Python generator"),
        ("build", "broken", (), "failed: RuntimeError: no such table"),
        ("build", "nope", (), "no function 'nope'"),
    ],
    ids=["preset", "compile", "reuters-option", "reuters-builder", "pair", "generator",
         "broken", "missing"],
)  # fmt: skip
def test_train_refuses_in_one_line_before_any_file(
    code, tmp_path, capsys, model, data, extra, expected
):
    argv = _argv(code, tmp_path / "run", "fit", data, "x", *extra)
    argv[argv.index("--model") + 1] = model if model == "cnn" else code[1] + model
    assert main(argv) == 2
    assert expected in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["evaluate", "{run}"], "evaluate scores the Reuters test split"),
        (["predict", "{run}", "oil prices"], "predict classifies Reuters newswire text"),
        (["export", "{run}", "{tmp}/exported"], "export serves Reuters text"),
    ],
    ids=["evaluate", "predict", "export"],
)
def test_what_reads_reuters_refuses_a_run_of_the_users_data(
    runs, tmp_path, capsys, command, expected
):
    argv = [part.format(run=runs["fit"], tmp=tmp_path) for part in command]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert expected in err and "keras.models.load_model" in err
    assert not (runs["fit"] / rundir.EVALUATION).exists()


def test_baseline_data_info_and_backends_refuse_the_users_data(code, capsys):
    data = code[0] + "load"
    model = code[1] + "build"
    assert main(["baseline", "--data", data]) == 2
    assert "baseline fits TF-IDF" in _one_line_error(capsys)
    assert main(["data", "info", "--data", data]) == 2
    assert "data info describes the Reuters data" in _one_line_error(capsys)
    assert main(["agree", "--data", data, "--model", model, "--backends", "tensorflow,jax"]) == 2
    assert "--backends is not supported with --data FILE.py:FUNCTION" in _one_line_error(capsys)


def test_resume_refuses_reuters_data_for_a_run_of_the_users_data(runs, tmp_path, capsys):
    stopped = tmp_path / "run"
    stopped.mkdir()
    for name in (rundir.CONFIG, rundir.STATUS):
        (stopped / name).write_bytes((runs["fit"] / name).read_bytes())
    rundir.set_status(stopped, rundir.INTERRUPTED, epochs_completed=0)
    assert main(["train", "--resume", str(stopped), "--data", str(tmp_path)]) == 2
    assert "is another kind" in _one_line_error(capsys)
