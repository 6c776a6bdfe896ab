"""Level 3: the user's own loop driving a ``trainways.Loop``.

The contract on a toy problem in this process (callbacks in ``fit``'s order, true epoch means,
agreement with trainways' own methods, misuse refused); the examples on the synthetic corpus (the
run directory, SIGKILL then resume, SIGINT); two replicas and the multi-worker refusal in a child
process that splits the CPU (``tests/own_loop_child.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainways
from trainways import rundir
from trainways.config import ConfigError
from trainways.own_loop import LoopError

from helpers import (
    CHILD_TIMEOUT,
    Children,
    Spy,
    assert_same_run,
    checkpoint_epochs,
    largest_difference,
    read_status,
    toy_problem,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHILD = Path(__file__).with_name("own_loop_child.py")
sys.path.insert(0, str(EXAMPLES))

X, Y = toy_problem(n=200)
VALIDATION = (X[:48], Y[:48])
LOSS = keras.losses.SparseCategoricalCrossentropy()


def _model(optimizer="nadam", **compile_args):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(40, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )
    model.compile(optimizer=optimizer, **compile_args)
    return model


def _accuracy():
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def _tape_loop(model, loop):
    """The tutorial's GradientTape step, run under ``loop`` as a user writes it."""

    @loop.step
    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = LOSS(y, y_pred)
        gradients = tape.gradient(loss, model.trainable_weights)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
        return {"loss": loss, "y_pred": y_pred}

    @loop.step
    def test_step(x, y):
        y_pred = model(x, training=False)
        return {"loss": LOSS(y, y_pred), "y_pred": y_pred}

    for _ in loop.epochs():
        for x, y in loop.batches():
            loop.log(train_step(x, y))
        loop.validate(test_step)
    return loop


def _own(model, **options):
    settings = {
        "validation_data": VALIDATION,
        "epochs": 2,
        "batch_size": 16,
        "seed": 3,
        "verbose": False,
        **options,
    }
    return trainways.Loop(model, X, Y, **settings)


# --------------------------------------------------------------- the contract


def test_callbacks_run_in_fits_order_with_fits_indices():
    fit_spy, loop_spy = Spy(), Spy()
    (built := _model()).compile(loss=LOSS, metrics=[_accuracy()], optimizer="nadam")
    trainways.fit(
        built, X, Y, validation_data=VALIDATION, epochs=2, batch_size=16, seed=3,
        callbacks=[fit_spy], verbose=0,
    )  # fmt: skip
    _tape_loop(model := _model(), _own(model, metrics=[_accuracy()], callbacks=[loop_spy]))
    assert loop_spy.calls == fit_spy.calls
    assert len(loop_spy.batch_logs) == 2 * 13


def test_the_tutorial_gradient_tape_loop_equals_the_built_in_loop_method():
    built_in = _model()
    built_in.compile(loss=LOSS, metrics=[_accuracy()], optimizer="nadam")
    expected = trainways.fit(
        built_in, X, Y, validation_data=VALIDATION, epochs=2, batch_size=16, seed=3,
        method="loop", verbose=0,
    )  # fmt: skip
    model = _model()
    loop = _tape_loop(model, _own(model, metrics=[_accuracy()]))
    assert largest_difference(model.get_weights(), built_in.get_weights()) == 0.0
    assert loop.history.keys() == expected.history.keys()
    for key, values in expected.history.items():
        np.testing.assert_allclose(loop.history[key], values, rtol=1e-6, err_msg=key)


def test_the_tutorial_train_on_batch_loop_equals_the_built_in_batch_method():
    metrics = lambda: [_accuracy()]  # noqa: E731
    built_in = _model()
    built_in.compile(loss=LOSS, metrics=metrics(), optimizer="nadam")
    expected = trainways.fit(
        built_in, X, Y, validation_data=VALIDATION, epochs=2, batch_size=16, seed=3,
        method="batch", verbose=0,
    )  # fmt: skip
    model = _model(loss=LOSS, metrics=metrics())
    loop = _own(model)
    for _ in loop.epochs():
        for x, y in loop.batches():
            loop.log(model.train_on_batch(x, y, return_dict=True))
        loop.validate(lambda x, y: model.test_on_batch(x, y, return_dict=True))
    assert largest_difference(model.get_weights(), built_in.get_weights()) == 0.0
    for key, values in expected.history.items():
        np.testing.assert_allclose(loop.history[key], values, rtol=1e-6, err_msg=key)


def test_logged_scalars_are_batch_weighted_epoch_means_and_early_stopping_stops():
    model = _model()
    stop = keras.callbacks.EarlyStopping(monitor="size", patience=0, mode="max")
    loop = _own(model, epochs=5, callbacks=[stop])
    for _ in loop.epochs():
        for _x, y in loop.batches():
            loop.log({"loss": 1.0, "size": float(len(y))})
    # Twelve batches of 16 and one of 8: a mean weighted by batch size, not 15.38 per batch.
    assert loop.history["size"][0] == pytest.approx((12 * 16 * 16 + 8 * 8) / 200)
    assert len(loop.history["size"]) == 2  # no improvement in epoch 2: EarlyStopping stopped it


def test_leaving_an_epoch_early_does_not_shift_the_next_epochs_batches():
    def second_epochs_labels(leave_after):
        loop = _own(_model(), validation_data=None)
        for epoch in loop.epochs():
            for index, (_x, y) in enumerate(loop.batches()):
                loop.log({"loss": 1.0})
                if epoch == 1:
                    return np.asarray(y)
                if index == leave_after:
                    break

    np.testing.assert_array_equal(second_epochs_labels(3), second_epochs_labels(None))


def test_misuse_is_a_one_line_error_not_a_wrong_answer():
    model = _model()
    with pytest.raises(ConfigError, match="compiled with its optimizer"):
        trainways.Loop(keras.Sequential([keras.layers.Dense(2)]), X, Y)
    loop = _own(model)
    with pytest.raises(LoopError, match="inside an epoch"):
        next(loop.batches())
    with pytest.raises(LoopError, match=r"inside for x, y in loop\.batches"):
        loop.log({"loss": 1.0})
    epochs = loop.epochs()
    next(epochs)
    batches = loop.batches()
    next(batches)
    with pytest.raises(ConfigError, match=r"returned no loss \(keys: accuracy\)"):
        loop.log({"accuracy": 1.0})
    with pytest.raises(LoopError, match="batch 0 of epoch 1 was not logged"):
        next(batches)
    no_validation = _own(_model(), validation_data=None)
    running = no_validation.epochs()
    next(running)
    with pytest.raises(LoopError, match=r"needs Loop\(\.\.\., validation_data"):
        no_validation.validate(lambda x, y: {"loss": 0.0})


# --------------------------------------------------------------- the examples, a run directory


def _example_args(corpus, out, epochs=3):
    return ["--data", str(corpus), "--epochs", str(epochs), "--max-len", "60", "--seed", "5",
            "--out", str(out), "--deterministic"]  # fmt: skip


@pytest.fixture(scope="module")
def unbroken(corpus, tmp_path_factory):
    """The GradientTape example trained three epochs into a run directory, uninterrupted."""
    import tutorial_gradient_tape

    out = tmp_path_factory.mktemp("own") / "unbroken"
    tutorial_gradient_tape.main(_example_args(corpus, out))
    return out


@pytest.fixture(scope="module")
def stopped(corpus, tmp_path_factory):
    """The same example in child processes stopped in epoch 2 by SIGKILL and by SIGINT."""
    root = tmp_path_factory.mktemp("own-stopped")
    children = Children(root / "cache")
    stops = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
    try:
        spawned = {
            name: children.spawn(
                "pause",
                "2:3",
                str(root / f"{name}.paused"),
                "tutorial_gradient_tape",
                *_example_args(corpus, root / name),
                script=CHILD,
            )
            for name in stops
        }
        for name, child in spawned.items():
            children.wait_for(root / f"{name}.paused", child)
            child.send_signal(stops[name])
        codes = {name: children.wait(child) for name, child in spawned.items()}
    finally:
        children.kill_all()
    return {name: (root / name, codes[name], spawned[name].stderr_text) for name in stops}


def test_the_run_directory_is_trainways(unbroken):
    for name in (rundir.CONFIG, rundir.STATUS, rundir.LOG, rundir.HISTORY, rundir.METRICS):
        assert (unbroken / name).is_file(), name
    assert read_status(unbroken)["state"] == "completed"
    assert checkpoint_epochs(unbroken) == [2, 3]
    state = json.loads((unbroken / "checkpoints" / "epoch-0003" / "state.json").read_text())
    assert state["optimizer"]["class"] == "Nadam" and state["optimizer"]["variables"] > 2
    assert "epoch 3/3" in (unbroken / rundir.LOG).read_text()
    keras.models.load_model(unbroken / rundir.MODEL)


def test_a_completed_run_directory_is_refused(unbroken, corpus):
    import tutorial_gradient_tape

    with pytest.raises(rundir.RunDirError, match="already completed; pass a new out"):
        tutorial_gradient_tape.main(_example_args(corpus, unbroken))


def test_sigkill_mid_epoch_then_running_the_script_again_equals_an_unbroken_run(
    stopped, unbroken, corpus, capsys
):
    import tutorial_gradient_tape

    from trainways.cli import main

    run, code, _ = stopped["SIGKILL"]
    assert code == -signal.SIGKILL
    assert read_status(run)["state"] == "running"
    assert checkpoint_epochs(run) == [1]
    assert main(["train", "--resume", str(run)]) == 2  # the CLI cannot rerun a script
    assert "made by trainways.Loop" in capsys.readouterr().err
    tutorial_gradient_tape.main(_example_args(corpus, run))
    assert read_status(run)["state"] == "completed"
    assert_same_run(run, unbroken)


def test_sigint_stops_at_the_batch_end_says_how_to_resume_and_resumes(stopped, unbroken, corpus):
    import tutorial_gradient_tape

    run, code, stderr = stopped["SIGINT"]
    assert code == 130, stderr[-2000:]
    status = read_status(run)
    assert status["state"] == "interrupted" and status["signal"] == "SIGINT"
    assert status["epochs_completed"] == 1
    assert "Loop resumes" in status["resume"]
    assert "SIGINT: stopped after 1 complete epoch(s)" in (run / rundir.LOG).read_text()
    tutorial_gradient_tape.main(_example_args(corpus, run))
    assert_same_run(run, unbroken)


@pytest.mark.parametrize("example", ["tutorial_train_on_batch", "custom_loss_term"])
def test_the_other_examples_train_and_log_what_they_say(example, corpus, tmp_path):
    module = __import__(example)
    loop = module.main(_example_args(corpus, tmp_path / "run", epochs=2))
    history = loop.history
    assert {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy"} <= set(history)
    if example == "custom_loss_term":
        # loss = cross-entropy - 0.1 * entropy, epoch means of each: the identity holds for means.
        expected = np.array(history["cross_entropy"]) - 0.1 * np.array(history["entropy"])
        np.testing.assert_allclose(history["loss"], expected, rtol=1e-5)
    assert read_status(tmp_path / "run")["state"] == "completed"


# --------------------------------------------------------------- two replicas, several workers


def test_two_replicas_match_one_device_and_several_workers_are_refused(corpus, tmp_path):
    env = {**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, str(CHILD), "mirrored", str(corpus)],
        capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["difference"] <= 1e-5
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(report["two"][key], report["one"][key], atol=1e-5, err_msg=key)
    assert "Loop runs on one machine" in report["refused"]


# --------------------------------------------------------------- how a Loop run ends


def test_an_error_in_the_script_is_recorded_as_failed_with_its_checkpointed_epochs(tmp_path):
    out = tmp_path / "run"
    loop = _own(_model(), epochs=3, out=out)
    with pytest.raises(ZeroDivisionError):
        for epoch in loop.epochs():
            for _x, _y in loop.batches():
                loop.log({"loss": 1.0})
                if epoch == 1:
                    1 / 0  # noqa: B018
    status = read_status(out)
    assert status["state"] == "failed" and status["epochs_completed"] == 1
    assert "left loop.epochs() in epoch 2 of 3" in status["error"]
    # A script's uncaught error reaches sys.excepthook, which names it.
    error = ZeroDivisionError("division by zero")
    sys.excepthook(ZeroDivisionError, error, None)
    status = read_status(out)
    assert status["error"] == "ZeroDivisionError: division by zero"
    assert "failed: ZeroDivisionError: division by zero" in (out / rundir.LOG).read_text()
    assert status["resume"].startswith("python ") and "(Loop resumes" in status["resume"]


def test_an_error_inside_the_loop_is_recorded_as_failed(tmp_path):
    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("boom")

    out = tmp_path / "run"
    loop = _own(_model(), epochs=3, out=out, callbacks=[Boom()])
    with pytest.raises(RuntimeError):
        for _ in loop.epochs():
            for _x, _y in loop.batches():
                loop.log({"loss": 1.0})
    status = read_status(out)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: boom"
    assert status["epochs_completed"] == 1


def test_a_changed_epochs_is_refused_and_the_hint_is_the_whole_command(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train.py", "--out", "my run", "--epochs", "4"])
    loop = _own(_model(), epochs=4, out=out)
    with pytest.raises(SystemExit):
        for epoch in loop.epochs():
            for _x, _y in loop.batches():
                if epoch == 2:
                    os.kill(os.getpid(), signal.SIGINT)  # stops at this batch's end, as Ctrl-C
                loop.log({"loss": 1.0})
    status = read_status(out)
    assert status["state"] == "interrupted" and status["epochs_completed"] == 2
    assert status["resume"] == f"python train.py --out 'my run' --epochs 4 (Loop resumes {out})"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="resumes a run of epochs=4, not 1: pass epochs=4"):
        _own(_model(), epochs=1, out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --------------------------------------------------------------- every input fit takes


class _Batches(keras.utils.PyDataset):
    """Batches of 16 of the toy problem, by index."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return -(-len(self.x) // 16)

    def __getitem__(self, index):
        rows = slice(16 * index, 16 * (index + 1))
        return self.x[rows], self.y[rows]


def _endless(x, y, size=16):
    """A generator of batches that starts over at the end of the data, as a stream does."""
    while True:
        for start in range(0, len(x), size):
            yield x[start : start + size], y[start : start + size]


def _train_on_batch(loop, model):
    """The tutorial's train_on_batch loop, whatever parts the batches have."""
    for _ in loop.epochs():
        for batch in loop.batches():
            x, y, weights = keras.utils.unpack_x_y_sample_weight(batch)
            loop.log(model.train_on_batch(x, y, sample_weight=weights, return_dict=True))
        if loop._validation is not None:
            loop.validate(
                lambda x, y, w=None: model.test_on_batch(x, y, sample_weight=w, return_dict=True)
            )
    return loop


def _assert_same_history(mine, theirs):
    assert mine.keys() == theirs.keys()
    for key, values in theirs.items():
        np.testing.assert_allclose(mine[key], values, rtol=1e-6, err_msg=key)


def _two_headed():
    keras.utils.set_random_seed(1)
    tokens = keras.Input((20,), dtype="int32", name="tokens")
    extra = keras.Input((3,), name="extra")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(40, 8)(tokens))
    joined = keras.layers.Concatenate()([pooled, extra])
    model = keras.Model(
        {"tokens": tokens, "extra": extra},
        {
            "topic": keras.layers.Dense(6, activation="softmax", name="topic")(joined),
            "score": keras.layers.Dense(1, name="score")(joined),
        },
    )
    model.compile(optimizer="nadam", loss={"topic": LOSS, "score": "mse"})
    return model


def test_dict_inputs_and_a_multi_output_model_get_dict_batches_and_train_as_fit():
    extra = np.random.default_rng(2).random((200, 3)).astype("float32")
    x = {"tokens": X, "extra": extra}
    y = {"topic": Y, "score": extra.sum(axis=1, keepdims=True)}
    # Batches of one size: fit's per-output losses are means over batches, unweighted (Keras
    # weighs them by a batch dimension its compiled step does not know), a Loop's over examples.
    settings = {"epochs": 2, "batch_size": 20, "seed": 3, "validation_split": 0.2}
    built_in = _two_headed()
    trainways.fit(built_in, x, y, method="batch", verbose=0, **settings)
    expected = trainways.fit(_two_headed(), x, y, verbose=0, **settings)
    model = _two_headed()
    loop = trainways.Loop(model, x, y, verbose=False, **settings)
    seen = []
    for _ in loop.epochs():
        for x_batch, y_batch in loop.batches():
            seen.append((sorted(x_batch), sorted(y_batch), len(x_batch["tokens"])))
            loop.log(model.train_on_batch(x_batch, y_batch, return_dict=True))
        loop.validate(lambda x, y: model.test_on_batch(x, y, return_dict=True))
    assert seen[0] == (["extra", "tokens"], ["score", "topic"], 20)
    assert len(seen) == 2 * 8  # 160 training rows, 40 kept for validation
    assert largest_difference(model.get_weights(), built_in.get_weights()) == 0.0
    _assert_same_history(loop.history, expected.history)


def test_sample_weights_make_three_part_batches_and_weighted_means_as_fit():
    weights = np.random.default_rng(4).random(200).astype("float32") * 2
    settings = {"epochs": 2, "batch_size": 16, "seed": 3, "validation_split": 0.25}

    def compiled():
        return _model(loss=LOSS, weighted_metrics=[_accuracy()])

    histories = {}
    for method in ("fit", "loop"):
        histories[method] = trainways.fit(
            compiled(), X, Y, sample_weight=weights, method=method, verbose=0, **settings
        ).history
    model = compiled()
    by_batch = _train_on_batch(
        trainways.Loop(model, X, Y, sample_weight=weights, verbose=False, **settings), model
    )
    # train_on_batch's metrics are the batch's: only its loss is a mean over the epoch.
    for key in ("loss", "val_loss"):
        for method, history in histories.items():
            mine = by_batch.history[key]
            np.testing.assert_allclose(mine, history[key], rtol=1e-6, err_msg=method)
    # A GradientTape step with the weights, y_pred updating metrics= with them, as fit's.
    model = _model()
    loop = trainways.Loop(
        model, X, Y, sample_weight=weights, metrics=[_accuracy()], verbose=False, **settings
    )

    @loop.step
    def train_step(x, y, w):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = LOSS(y, y_pred, sample_weight=w)
        gradients = tape.gradient(loss, model.trainable_weights)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
        return {"loss": loss, "y_pred": y_pred}

    @loop.step
    def test_step(x, y, w):
        y_pred = model(x, training=False)
        return {"loss": LOSS(y, y_pred, sample_weight=w), "y_pred": y_pred}

    for _ in loop.epochs():
        for x, y, w in loop.batches():
            loop.log(train_step(x, y, w))
        loop.validate(test_step)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(loop.history[key], histories["fit"][key], rtol=1e-5, err_msg=key)


def _kinds():
    import tensorflow as tf

    return {
        "tf.data": lambda: {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)},
        "pydataset": lambda: {"x": _Batches(X, Y)},
        "generator": lambda: {"x": _endless(X[:96], Y[:96]), "steps_per_epoch": 4},
    }


@pytest.mark.parametrize("kind", ["tf.data", "pydataset", "generator"])
def test_a_dataset_pydataset_or_generator_trains_as_fit_takes_it(kind):
    data = _kinds()[kind]
    settings = {"epochs": 3, "seed": 3, "validation_data": VALIDATION}
    built_in = _model(loss=LOSS)
    expected = trainways.fit(built_in, **data(), method="batch", verbose=0, **settings)
    model = _model(loss=LOSS)
    loop = _train_on_batch(trainways.Loop(model, **data(), verbose=False, **settings), model)
    assert largest_difference(model.get_weights(), built_in.get_weights()) == 0.0
    _assert_same_history(loop.history, expected.history)


def test_batches_without_y_are_weighed_by_the_first_inputs_rows():
    loop = trainways.Loop(_model(), X, epochs=1, batch_size=16, seed=3, verbose=False)
    for _ in loop.epochs():
        for x in loop.batches():
            loop.log({"loss": 1.0, "size": float(len(x))})
    assert loop.history["size"][0] == pytest.approx((12 * 16 * 16 + 8 * 8) / 200)


def _pydataset_run(out, stop_at=None):
    model = _model(loss=LOSS)
    loop = trainways.Loop(model, _Batches(X, Y), epochs=3, seed=3, out=out, verbose=False)
    for epoch in loop.epochs():
        for index, (x, y) in enumerate(loop.batches()):
            if (epoch, index) == stop_at:
                os.kill(os.getpid(), signal.SIGINT)  # stops at this batch's end, as Ctrl-C
            loop.log(model.train_on_batch(x, y, return_dict=True))
    return model, loop


def test_a_pydataset_run_stopped_mid_epoch_resumes_to_the_unbroken_run(tmp_path, capsys):
    unbroken, unbroken_loop = _pydataset_run(tmp_path / "unbroken")
    with pytest.raises(SystemExit) as stop:
        _pydataset_run(tmp_path / "run", stop_at=(1, 5))
    assert stop.value.code == 130
    assert read_status(tmp_path / "run")["epochs_completed"] == 1
    capsys.readouterr()
    model, loop = _pydataset_run(tmp_path / "run")
    assert "cannot say where it was" not in capsys.readouterr().err  # it resumes exactly
    assert largest_difference(model.get_weights(), unbroken.get_weights()) == 0.0
    assert loop.history == unbroken_loop.history
    config = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())["loop"]
    assert config["inputs"] == "pydataset" and config["seed"] == 3


def test_a_generator_run_resumes_at_the_epoch_boundary_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"

    def run(stop_at=None):
        model = _model(loss=LOSS)
        loop = trainways.Loop(
            model, _endless(X[:96], Y[:96], 32), steps_per_epoch=3, epochs=2, out=out,
            verbose=False,
        )  # fmt: skip
        first_rows = []
        for epoch in loop.epochs():
            for index, (x, y) in enumerate(loop.batches()):
                first_rows.append(np.asarray(x)[0])
                if (epoch, index) == stop_at:
                    os.kill(os.getpid(), signal.SIGINT)
                loop.log(model.train_on_batch(x, y, return_dict=True))
        return first_rows

    with pytest.raises(SystemExit):
        run(stop_at=(1, 1))
    capsys.readouterr()
    first_rows = run()
    assert len(first_rows) == 3  # epoch 2 only, from the new generator's first batch
    np.testing.assert_array_equal(first_rows[0], X[0])
    said = (
        f"resuming {out} after epoch 1: a generator stream cannot say where it was, so epoch 2 "
        "trains on the batches it yields from now on"
    )
    assert capsys.readouterr().err.count(said) == 1
    assert said in (out / rundir.LOG).read_text()
    assert read_status(out)["state"] == "completed"
