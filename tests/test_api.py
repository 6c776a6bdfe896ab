"""The public library entry point, including the README's example run as written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainways
import trainways.rundir
from trainways.config import ConfigError

from helpers import Spy, toy_problem

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- example:library -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "README lost its library example"
    return match.group(1)


def test_readme_library_example_runs_and_learns():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    lines = out.getvalue().strip().splitlines()
    assert [line.split()[0] for line in lines] == ["fit", "batch", "loop"]
    for line in lines:
        assert float(line.split()[-1]) > 0.85, line


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(40, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )


def _regression(n: int = 96):
    rng = np.random.default_rng(1)
    x = rng.random((n, 8)).astype("float32")
    y = (x @ rng.random((8, 1)) + 0.5).astype("float32")
    return x, y


def _dense(outputs: int = 1, activation: str | None = None, compile_kwargs=None):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(outputs, activation)]
    )
    if compile_kwargs is not None:
        model.compile(**compile_kwargs)
    return model


def _same(a, b):
    """Histories and weights equal to float32 rounding (the methods' programs differ in how
    steps are grouped, not in what they compute)."""
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=2e-5, atol=1e-6, err_msg=key)


def _keras_fit(build, x, y, **kwargs):
    model = build()
    history = model.fit(x, y, shuffle=False, verbose=0, **kwargs)
    return model, history.history


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_the_users_compile_is_kept_loss_metrics_and_optimizer(method):
    x, y = _regression()

    def build():
        return _dense(compile_kwargs={"loss": "mse", "optimizer": "sgd", "metrics": ["mae"]})

    reference, expected = _keras_fit(build, x, y, epochs=2, batch_size=16)
    model = build()
    history = trainways.fit(
        model, x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, method=method
    )
    assert type(model.optimizer).__name__ == "SGD"
    assert list(history.history) == ["loss", "mae"]
    assert history.history["loss"][0] > 0.01  # the user's MSE, not a cross-entropy of floats
    _same(history.history, expected)
    for mine, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_metric_strings_resolve_as_compile_resolves_them(method):
    x, labels = toy_problem(96)
    one_hot = keras.utils.to_categorical(labels, 6)

    def build():
        model = _model()
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    _, expected = _keras_fit(build, x, one_hot, epochs=2, batch_size=32)
    history = trainways.fit(
        build(), x, one_hot, epochs=2, batch_size=32, shuffle=False, verbose=0, method=method
    )
    assert list(history.history) == ["accuracy", "loss"]
    assert history.history["accuracy"][-1] > 0.2  # Keras's categorical accuracy, not exact match
    _same(history.history, expected)


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_callbacks_monitor_metrics_by_the_names_compile_gives(method):
    x, y = _regression()
    model = _dense(compile_kwargs={"loss": "mse", "optimizer": "adam", "metrics": ["mae"]})
    stop = keras.callbacks.EarlyStopping(monitor="val_mae", patience=0, min_delta=10.0)
    history = trainways.fit(
        model, x, y, epochs=5, validation_split=0.25, callbacks=[stop], verbose=0, method=method
    )
    assert "val_mae" in history.history
    assert len(history.history["loss"]) == 2  # no improvement of 10: stopped after patience 0


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_counting_metrics_report_keras_own_result_after_the_epoch(method):
    x, y = _regression(100)
    labels = (y > np.median(y)).astype("float32")

    def build():
        return _dense(
            activation="sigmoid",
            compile_kwargs={
                "loss": "binary_crossentropy",
                "optimizer": "adam",
                "metrics": [
                    keras.metrics.TrueNegatives(name="tn"),
                    keras.metrics.Precision(name="precision"),
                ],
            },
        )

    _, expected = _keras_fit(build, x, labels, epochs=2, batch_size=16)
    history = trainways.fit(
        build(), x, labels, epochs=2, batch_size=16, shuffle=False, verbose=0, method=method
    )
    assert history.history["tn"][0] > 16  # a count over the epoch, not a mean per batch
    _same(history.history, expected)


def test_a_script_seeded_the_keras_way_repeats_itself_with_shuffling():
    x, y = toy_problem(96)

    def run():
        keras.utils.set_random_seed(7)
        model = _model()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return trainways.fit(model, x, y, epochs=2, batch_size=16, verbose=0).history

    assert run() == run()


def test_sample_weights_and_class_weights_weigh_as_in_fit():
    x, y = toy_problem(96)
    weights = np.linspace(0.1, 2.0, len(y)).astype("float32")

    def build():
        model = _model()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model

    for kwargs in ({"sample_weight": weights}, {"class_weight": {0: 3.0, 1: 0.5}}):
        _, expected = _keras_fit(build, x, y, epochs=1, batch_size=32, **kwargs)
        for method in ("fit", "batch", "loop"):
            history = trainways.fit(
                build(),
                x,
                y,
                epochs=1,
                batch_size=32,
                shuffle=False,
                verbose=0,
                method=method,
                **kwargs,
            )
            _same(history.history, expected)


def test_an_uncompiled_model_is_compiled_with_the_documented_defaults():
    x, y = toy_problem()
    model = _model()
    history = trainways.fit(model, x, y, epochs=2, verbose=0)
    assert type(model.optimizer).__name__ == "Adam"
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_train_on_a_dataset_with_validation_and_callbacks(method):
    x, y = toy_problem()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    model = _model()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    spy = Spy()
    history = trainways.fit(
        model,
        dataset,
        epochs=3,
        validation_data=dataset,
        callbacks=[spy],
        verbose=0,
        method=method,
    )
    assert set(history.history) == {
        "loss",
        "sparse_categorical_accuracy",
        "val_loss",
        "val_sparse_categorical_accuracy",
    }
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert spy.calls[0] == ("on_train_begin", None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "adamw"}, "unknown method 'adamw'"),
        ({"epochs": 0}, "epochs must be positive, got 0"),
        ({"batch_size": -1}, "batch_size must be positive, got -1"),
        ({"epochz": 3}, "unknown option.s. epochz for TrainConfig"),
        ({"precision": "mixed_bfloat16"}, "precision applies to models trainways builds"),
        ({"backend": "jax"}, "backend jax: Keras already runs on tensorflow in this process"),
        (
            {"learning_rate": 0.1, "compiled": True},
            "learning_rate=0.1 conflicts with the model's compile",
        ),
        ({"jit_compile": True, "compiled": True}, "jit_compile=True conflicts"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message):
    x, y = toy_problem()
    model = _model()
    if kwargs.pop("compiled", False):
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    arguments = {"y": y, **kwargs}
    with pytest.raises(ConfigError, match=message):
        trainways.fit(model, x, verbose=0, **arguments)


def test_the_clis_training_options_act_in_the_library_too():
    x, y = toy_problem()  # 200 samples: 4 steps of 50
    spy = Spy()
    model = _model()
    history = trainways.fit(
        model,
        x,
        y,
        method="loop",
        epochs=3,
        batch_size=50,
        seed=1,
        verbose=0,
        learning_rate=0.01,
        lr_halve_at=2,
        steps_per_execution=2,
        xla_optimizer=True,
        callbacks=[spy],
    )
    assert type(model.optimizer).__name__ == "XlaNadam"
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.005])
    # Two executions of two steps per epoch: fit's batch indices 0-1 and 2-3.
    ends = [index for hook, index in spy.calls if hook == "on_train_batch_end"]
    assert ends == [1, 3] * 3


# --------------------------------------------------------------- out=: the run directory


class _SigintAt(keras.callbacks.Callback):
    """Sends this process SIGINT after training batch ``batch`` of epoch ``epoch``: trainways'
    stop records it at the end of that batch."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.at, self.epoch = (epoch, batch), -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _fit_into(out, method, callbacks=()):
    model = _model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = toy_problem()
    history = trainways.fit(
        model, x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0, seed=5,
        method=method, out=out, callbacks=list(callbacks),
    )  # fmt: skip
    return model, history


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_out_stopped_mid_epoch_resumes_by_calling_again_to_the_unbroken_run(method, tmp_path):
    unbroken, _ = _fit_into(tmp_path / "unbroken", method)
    with pytest.raises(SystemExit) as stop:
        _fit_into(tmp_path / "run", method, [_SigintAt(epoch=1, batch=2)])
    assert stop.value.code == 130
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "interrupted" and status["epochs_completed"] == 1
    assert "trainways.fit resumes" in status["resume"]
    model, history = _fit_into(tmp_path / "run", method)
    assert history.epoch == [1, 2]  # the epochs this call trained
    for mine, theirs in zip(model.get_weights(), unbroken.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    run = tmp_path / "run"
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # the header and every epoch once
    assert json.loads((run / "config.json").read_text())["fit"]["seed"] == 5


def test_out_of_a_completed_run_is_refused_in_one_line(tmp_path):
    _fit_into(tmp_path / "run", "fit")
    with pytest.raises(trainways.rundir.RunDirError, match="already completed; pass a new out"):
        _fit_into(tmp_path / "run", "fit")


def test_out_resumed_with_another_method_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        _fit_into(tmp_path / "run", "fit", [_SigintAt(epoch=1, batch=0)])
    with pytest.raises(ConfigError, match="resumes a run of method='fit', not 'loop'"):
        _fit_into(tmp_path / "run", "loop")


def test_a_generator_resumes_at_the_epoch_boundary_and_says_so(tmp_path, capsys):
    x, y = toy_problem(96)

    def batches():
        while True:
            for start in range(0, 96, 32):
                yield x[start : start + 32], y[start : start + 32]

    def run(callbacks=()):
        model = _model()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return trainways.fit(
            model, batches(), epochs=2, steps_per_epoch=3, verbose=0, out=tmp_path / "run",
            callbacks=list(callbacks), seed=1,
        )  # fmt: skip

    with pytest.raises(SystemExit):
        run([_SigintAt(epoch=1, batch=1)])
    capsys.readouterr()
    history = run()
    assert history.epoch == [1]
    said = "a generator stream cannot say where it was, so epoch 2 trains on the batches it"
    assert said in capsys.readouterr().err
    assert said in (tmp_path / "run" / "train.log").read_text()


def test_out_of_a_new_run_keeps_the_callers_initial_epoch(tmp_path):
    x, y = toy_problem(64)
    model = _model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    history = trainways.fit(
        model, x, y, epochs=3, initial_epoch=1, verbose=0, seed=1, out=tmp_path / "run"
    )
    assert history.epoch == [1, 2]
