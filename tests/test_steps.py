"""The user's code in the training: a model's own ``train_step`` (level 1) and step functions
(level 2), in the library and on the command line.

Logic on a toy problem in this process; the command line on the synthetic corpus. Resuming a
level-2 run after SIGKILL is in test_resume.py, a level-2 step under ``mirrored`` in
test_distribute.py, the user's own loop (level 3) in test_own_loop.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainways
from trainways import rundir
from trainways.cli import main
from trainways.config import ConfigError, RunConfig
from trainways.steps import keeps

from helpers import CHILD_TIMEOUT, toy_problem, train_args

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TUTORIAL_STEP = f"{EXAMPLES / 'tutorial_step.py'}:train_step"
TUTORIAL_TEST_STEP = f"{EXAMPLES / 'tutorial_step.py'}:test_step"
TWO_RATES = f"{EXAMPLES / 'two_learning_rates.py'}:train_step"
CLIPPED = f"{EXAMPLES / 'clipped_model.py'}:build"

X, Y = toy_problem(n=200)
VALIDATION = (X[:48], Y[:48])
LOSS = keras.losses.SparseCategoricalCrossentropy()
CLIP = 1e-3


def _accuracy():
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def _model(cls=keras.Sequential):
    keras.utils.set_random_seed(1)
    return cls(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(40, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )


def _train(model, *, optimizer="adam", learning_rate=None, **options):
    """``trainways.fit`` on the toy problem. The model is compiled with ``optimizer`` (at
    ``learning_rate``), the loss and accuracy, unless ``steps_per_execution`` is given: a
    trainways value of it (``"epoch"``) is for a model trainways compiles, with its defaults."""
    if "steps_per_execution" not in options:
        chosen = keras.optimizers.get(optimizer)
        if learning_rate is not None:
            chosen.learning_rate = learning_rate
        model.compile(optimizer=chosen, loss=LOSS, metrics=[_accuracy()])
    settings = {"validation_data": VALIDATION, "epochs": 2, "seed": 3, "batch_size": 16, **options}
    return trainways.fit(model, X, Y, verbose=0, **settings)


def _largest_difference(a, b) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))


# --------------------------------------------------------------- level 1: the model's own step


class Clipped(keras.Sequential):
    """Gradients clipped to a global norm of ``CLIP``: with SGD at rate 1, no step can move the
    weights further than ``CLIP``."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        # Dense: the norm of an embedding's IndexedSlices counts a repeated word once per use.
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, self.trainable_variables)]
        gradients, _ = tf.clip_by_global_norm(gradients, CLIP)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


@pytest.fixture(scope="module")
def clipped_runs():
    """The clipping model trained by each method, and the plain model by ``loop``, from the same
    initial weights; ``initial`` is those weights."""
    runs = {"initial": _model(Clipped).get_weights()}
    for method in ("fit", "batch", "loop"):
        model = _model(Clipped)
        _train(model, method=method, optimizer="sgd", learning_rate=1.0)
        runs[method] = model.get_weights()
    plain = _model()
    _train(plain, method="loop", optimizer="sgd", learning_rate=1.0)
    runs["plain"] = plain.get_weights()
    return runs


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_every_method_runs_the_models_own_train_step(method, clipped_runs):
    steps = 2 * 13  # two epochs of 200 samples in batches of 16
    moved = np.sqrt(
        sum(
            float(np.sum((a - b) ** 2))
            for a, b in zip(clipped_runs[method], clipped_runs["initial"], strict=True)
        )
    )
    assert 0 < moved <= steps * CLIP * (1 + 1e-4)
    # The plain model, same rate and batches, moves a hundred times further.
    plain = np.sqrt(
        sum(
            float(np.sum((a - b) ** 2))
            for a, b in zip(clipped_runs["plain"], clipped_runs["initial"], strict=True)
        )
    )
    assert plain > 100 * moved


def test_the_loop_method_runs_the_models_own_step_exactly_as_fit(clipped_runs):
    assert _largest_difference(clipped_runs["loop"], clipped_runs["fit"]) == 0.0
    assert _largest_difference(clipped_runs["batch"], clipped_runs["fit"]) <= 1e-6


def test_the_models_own_step_on_two_replicas_runs_in_loop_as_in_fit(tmp_path):
    # Two logical CPU devices exist only in a process that splits the CPU before TensorFlow
    # starts: tests/own_loop_child.py.
    child = Path(__file__).with_name("own_loop_child.py")
    env = {**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, str(child), "own-step"],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Measured 6e-8: the same step, summed over replicas in another order than fit's.
    assert json.loads(result.stdout.strip().splitlines()[-1])["difference"] <= 1e-6


def test_an_own_step_that_returns_a_value_no_metric_tracks_is_refused():
    class Stray(keras.Sequential):
        def train_step(self, data):
            logs = super().train_step(data)
            return {**logs, "grad_norm": tf.constant(1.0)}

    with pytest.raises(ConfigError, match=r"returned 'grad_norm', not one of its metrics"):
        _train(_model(Stray), method="loop", epochs=1)


# --------------------------------------------------------------- level 2: a step function


def tutorial_step(model, x, y):
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = LOSS(y, y_pred)
    gradients = tape.gradient(loss, model.trainable_weights)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
    return {"loss": loss, "y_pred": y_pred}


@pytest.mark.parametrize("steps_per_execution", [1, "epoch"])
def test_the_tutorial_step_as_a_step_function_equals_the_built_in_loop(steps_per_execution):
    built_in = _model()
    expected = _train(built_in, method="loop", steps_per_execution=steps_per_execution)
    ours = _model()
    history = _train(
        ours, method="loop", step=tutorial_step, steps_per_execution=steps_per_execution
    )
    assert _largest_difference(ours.get_weights(), built_in.get_weights()) == 0.0
    assert history.history == expected.history


def test_extra_scalars_are_logged_as_batch_weighted_epoch_means():
    def step(model, x, y):
        logs = tutorial_step(model, x, y)
        return {**logs, "batch": tf.cast(tf.shape(y)[0], tf.float32)}

    history = _train(_model(), method="loop", step=step, epochs=1)
    # 200 samples in batches of 16: twelve of 16 and one of 8. The mean weighted by batch size
    # is (12 * 16 * 16 + 8 * 8) / 200; a plain mean of the batch values would be 15.38.
    assert history.history["batch"] == [pytest.approx((12 * 16 * 16 + 8 * 8) / 200)]
    assert set(history.history) == {
        "loss",
        "batch",
        "accuracy",
        "val_loss",
        "val_accuracy",
    }


def test_a_step_without_predictions_logs_no_metrics_and_a_test_step_validates():
    def step(model, x, y):
        return {"loss": tutorial_step(model, x, y)["loss"]}

    def test_step(model, x, y):
        y_pred = model(x, training=False)
        return {"loss": LOSS(y, y_pred), "confidence": tf.reduce_mean(tf.reduce_max(y_pred, 1))}

    history = _train(_model(), method="loop", step=step, test_step=test_step, epochs=1)
    assert set(history.history) == {"loss", "val_loss", "val_confidence"}
    assert 1 / 6 < history.history["val_confidence"][0] <= 1


def _no_loss(model, x, y):
    return {"accuracy": 1.0}


def _not_a_dict(model, x, y):
    return 0.5


def _vector_log(model, x, y):
    return {"loss": tf.zeros([3])}


def _two_arguments(model, x):
    return {"loss": 0.0}


def _raises(model, x, y):
    raise ValueError("my step is broken\nand a page of TensorFlow's context")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (_no_loss, r"step _no_loss returned no loss \(keys: accuracy\)"),
        (_not_a_dict, r"step _not_a_dict returned float, not a dict of logs"),
        (_vector_log, r"returned 'loss' of shape \(3,\): logs other than 'y_pred' must be"),
        (_two_arguments, r"step _two_arguments\(model, x\) must take \(model, x, y\)"),
        (_raises, r"^step _raises failed when traced: ValueError: my step is broken$"),
    ],
)
def test_a_broken_step_is_refused_before_any_step_runs(step, message):
    model = _model()
    before = model.get_weights()
    with pytest.raises(ConfigError, match=message):
        _train(model, method="loop", step=step)
    assert _largest_difference(model.get_weights(), before) == 0.0


@pytest.mark.parametrize("method", ["fit", "batch"])
def test_a_step_function_with_another_method_is_refused(method):
    with pytest.raises(ConfigError, match=f"a step function runs in the loop method, not {method}"):
        _train(_model(), method=method, step=tutorial_step)


def test_a_step_keeps_its_second_optimizer_and_applies_it():
    second = keras.optimizers.SGD(learning_rate=0.0)

    @keeps(second)
    def step(model, x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = LOSS(y, y_pred)
        variables = model.trainable_variables
        pairs = list(zip(tape.gradient(loss, variables), variables, strict=True))
        second.apply_gradients([p for p in pairs if "embedding" in p[1].path])
        model.optimizer.apply_gradients([p for p in pairs if "embedding" not in p[1].path])
        return {"loss": loss}

    model = _model()
    embedding_before = model.layers[0].get_weights()[0].copy()
    _train(model, method="loop", step=step, epochs=1)
    # A rate of 0 for the embedding: it is the only layer that did not move.
    assert np.array_equal(model.layers[0].get_weights()[0], embedding_before)
    assert int(second.iterations.numpy()) == 13
    assert step.trainways_optimizers == (second,)


# --------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_runs(corpus, tmp_path_factory):
    """Two-epoch runs of the examples on the synthetic corpus, by name."""
    root = tmp_path_factory.mktemp("steps")
    runs = {
        "built-in": ("loop",),
        "tutorial": ("loop", "--step", TUTORIAL_STEP, "--test-step", TUTORIAL_TEST_STEP),
        "two rates": ("loop", "--step", TWO_RATES),
        "clipped loop": ("loop", "--model", CLIPPED),
        "clipped fit": ("fit", "--model", CLIPPED),
    }
    for name, (method, *options) in runs.items():
        out = root / name.replace(" ", "-")
        assert main(train_args(corpus, out, method, 2, "--max-len", "60", *options)) == 0, name
    return {name: root / name.replace(" ", "-") for name in runs}


def _weights(run: Path):
    return keras.models.load_model(run / rundir.MODEL, compile=False).get_weights()


def test_the_tutorial_step_from_its_file_trains_as_the_built_in_step(cli_runs):
    tutorial, built_in = cli_runs["tutorial"], cli_runs["built-in"]
    assert (tutorial / rundir.HISTORY).read_text() == (built_in / rundir.HISTORY).read_text()
    assert _largest_difference(_weights(tutorial), _weights(built_in)) == 0.0
    config = json.loads((tutorial / rundir.CONFIG).read_text())["train"]
    assert config["step"] == TUTORIAL_STEP  # absolute: --resume and compare find it anywhere
    assert config["test_step"] == TUTORIAL_TEST_STEP


def test_the_two_learning_rates_example_trains_differently_and_checkpoints_both_optimizers(
    cli_runs,
):
    run = cli_runs["two rates"]
    assert _largest_difference(_weights(run), _weights(cli_runs["built-in"])) > 1e-3
    state = json.loads((run / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert state["extra_optimizers"][0]["class"] == "Nadam"
    assert state["extra_optimizers"][0]["variables"] > 2  # built: momentums and velocities


def test_a_model_builder_with_its_own_step_trains_loads_and_evaluates(cli_runs, corpus, capsys):
    loop, fit = cli_runs["clipped loop"], cli_runs["clipped fit"]
    assert (loop / rundir.HISTORY).read_text() == (fit / rundir.HISTORY).read_text()
    assert _largest_difference(_weights(loop), _weights(fit)) == 0.0
    assert main(["evaluate", str(loop), "--data", str(corpus)]) == 0  # imports the class first
    assert "accuracy" in capsys.readouterr().out


def test_agree_includes_a_user_step(corpus, capsys):
    assert main(["agree", "--data", str(corpus), "--max-len", "60", "--step", TUTORIAL_STEP]) == 0
    out = capsys.readouterr().out
    assert f"loop runs your step {TUTORIAL_STEP}" in out
    # The tutorial's step is the built-in step: all three bitwise identical after epoch 1.
    assert "differ by at most 0.000e+00 (tolerance 1e-05, bitwise identical)" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--step", "nowhere.py:step"], "no file"),
        (["--step", f"{EXAMPLES / 'tutorial_step.py'}:missing"], "no function 'missing' in"),
        (["--step", f"{EXAMPLES / 'tutorial_step.py'}"], "expected FILE.py:FUNCTION"),
        (["--step", f"{EXAMPLES / 'two_learning_rates.py'}:_is_embedding"], "must take (model"),
        (["--method", "fit", "--step", TUTORIAL_STEP], "runs in the loop method, not fit"),
        (["--model", "nowhere.py:build"], "no file"),
    ],
)
def test_bad_user_code_on_the_command_line_is_one_line_and_exit_2(
    options, message, corpus, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = train_args(corpus, out, "loop", 1, "--max-len", "60")
    method_at = argv.index("--method")
    if "--method" in options:  # the later flag wins
        argv = argv[:method_at] + argv[method_at + 2 :]
    assert main([*argv, *options]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err
    assert not out.exists()


def test_compare_gives_the_step_to_the_loop_child_only():
    config = RunConfig.from_dict({"train": {"method": "loop", "step": TUTORIAL_STEP}})
    assert config.train.for_method("loop").step == TUTORIAL_STEP
    assert config.train.for_method("fit").step is None
    assert config.train.for_method("batch").test_step is None
