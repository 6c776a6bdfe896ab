"""The three methods behind one contract: same keys, same callback order, same numbers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainways.backends import current
from trainways.callbacks import HalveLearningRate
from trainways.config import METHODS, ConfigError, ModelConfig
from trainways.model import build_loss, build_metrics, build_model, build_optimizer
from trainways.trainers import (
    TrainData,
    TrainSpec,
    get_trainer,
    prepare,
    resolve_steps_per_execution,
)

from helpers import Spy, toy_problem

MAX_LEN, VOCAB, CLASSES = 20, 40, 6


def _datasets(batch_size: int = 32, shuffle_seed: int | None = None) -> TrainData:
    x, y = toy_problem(n=200, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=0)
    xv, yv = toy_problem(n=70, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle_seed is not None:
        train = train.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(batch_size)
    return TrainData(train.batch(batch_size), val)


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(
        ModelConfig(embedding_dim=8), vocab_size=VOCAB, num_classes=CLASSES, max_len=MAX_LEN
    )


def _spec(epochs: int = 3, lr: float = 1e-2) -> TrainSpec:
    return TrainSpec(
        epochs=epochs, loss=build_loss(), optimizer=build_optimizer(lr), metrics=build_metrics
    )


def _train(method: str, *, epochs: int = 3, lr: float = 1e-2, callbacks=(), model=None):
    model = model or _model()
    history = get_trainer(method, current())(model, _datasets(), _spec(epochs, lr), list(callbacks))
    return model, history


@pytest.mark.parametrize("method", METHODS)
def test_loss_falls_and_keys_are_the_contract(method):
    _, history = _train(method, epochs=4)
    assert set(history.history) == {
        "loss",
        "accuracy",
        "top5_accuracy",
        "val_loss",
        "val_accuracy",
        "val_top5_accuracy",
    }
    losses = history.history["loss"]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0]
    assert history.history["val_accuracy"][-1] > history.history["val_accuracy"][0]


def test_callbacks_fire_in_the_same_order_for_every_method():
    sequences = {}
    for method in METHODS:
        spy = Spy()
        _train(method, epochs=2, callbacks=[spy])
        sequences[method] = spy.calls
    assert sequences["batch"] == sequences["fit"]
    assert sequences["loop"] == sequences["fit"]
    # And that order is fit's: 7 train batches then 3 validation batches per epoch.
    epoch = (
        [("on_epoch_begin", 0)]
        + [c for s in range(7) for c in (("on_train_batch_begin", s), ("on_train_batch_end", s))]
        + [("on_test_begin", None)]
        + [c for s in range(3) for c in (("on_test_batch_begin", s), ("on_test_batch_end", s))]
        + [("on_test_end", None), ("on_epoch_end", 0)]
    )
    assert sequences["fit"][: 1 + len(epoch)] == [("on_train_begin", None), *epoch]
    assert sequences["fit"][-1] == ("on_train_end", None)


@pytest.mark.parametrize("method", METHODS)
def test_epoch_metrics_are_true_epoch_means(method):
    # With a zero learning rate the weights never move, so the epoch's training figures must
    # equal one evaluation over the whole training split: a last-batch value would not.
    model = _model()
    data = _datasets()
    history = get_trainer(method, current())(model, data, _spec(epochs=1, lr=0.0), [])
    expected = model.evaluate(data.train, return_dict=True, verbose=0)
    for key in ("loss", "accuracy", "top5_accuracy"):
        assert history.history[key][0] == pytest.approx(expected[key], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_validation_metrics_match_evaluate(method):
    model, history = _train(method, epochs=2)
    expected = model.evaluate(_datasets().validation, return_dict=True, verbose=0)
    for key in ("loss", "accuracy", "top5_accuracy"):
        assert history.history[f"val_{key}"][-1] == pytest.approx(expected[key], rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_stop_training_halts_every_method(method):
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    spy = Spy()
    _, history = _train(method, epochs=5, callbacks=[StopAt(), spy])
    assert len(history.history["loss"]) == 1
    train_batches = [c for c in spy.calls if c[0] == "on_train_batch_end"]
    assert len(train_batches) == 3


@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_halts_every_method(method):
    # A validation loss that cannot improve by 10 stops after patience + 1 epochs.
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1)
    _, history = _train(method, epochs=6, callbacks=[stop])
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("method", METHODS)
def test_learning_rate_halving_applies_to_every_method(method):
    model, history = _train(method, epochs=3, lr=0.01, callbacks=[HalveLearningRate(at_epoch=2)])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.005])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_three_methods_compute_the_same_training():
    weights = {}
    for method in METHODS:
        model = _model(seed=3)
        get_trainer(method, current())(model, _datasets(), _spec(epochs=1), [])
        weights[method] = model.get_weights()
    for method in ("batch", "loop"):
        for a, b in zip(weights["fit"], weights[method], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_batch_logs_are_running_epoch_means():
    spy = Spy()
    _train("batch", epochs=1, lr=0.0, callbacks=[spy])
    spy_fit = Spy()
    _train("fit", epochs=1, lr=0.0, callbacks=[spy_fit])
    for ours, theirs in zip(spy.batch_logs, spy_fit.batch_logs, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_keras_file_callbacks_work_with_every_method(method, tmp_path):
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.keras"), monitor="val_accuracy", save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(tmp_path / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb")),
    ]
    model, _ = _train(method, epochs=2, callbacks=callbacks)
    assert (tmp_path / "best.keras").is_file()
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,accuracy,loss")
    event_files = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert {path.parent.name for path in event_files} >= {"train", "validation"}
    restored = keras.models.load_model(tmp_path / "best.keras")
    assert len(restored.get_weights()) == len(model.get_weights())


def test_an_endless_stream_without_steps_per_epoch_is_refused():
    from trainways.data import make_dataset

    x, y = toy_problem()
    stream = make_dataset(x, y, batch_size=32, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="endless stream of epochs"):
        TrainData(stream)


def _stream(n: int = 192, batch_size: int = 32) -> TrainData:
    from trainways.data import make_dataset, steps_per_epoch

    x, y = toy_problem(n=n, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=0)
    xv, yv = toy_problem(n=70, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=1)
    return TrainData(
        make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=5),
        make_dataset(xv, yv, batch_size=batch_size, shuffle=False),
        steps_per_epoch(n, batch_size),
    )


def _fast_spec(epochs: int = 2, *, steps_per_execution: int = 1, xla: bool = False) -> TrainSpec:
    return TrainSpec(
        epochs=epochs,
        loss=build_loss(),
        optimizer=build_optimizer(1e-2, xla=xla, backend=current()),
        metrics=build_metrics,
        steps_per_execution=steps_per_execution,
    )


def _hooks(calls, name):
    return [index for hook, index in calls if hook == name]


@pytest.mark.parametrize("steps", [2, 3])
def test_steps_per_execution_keeps_fits_hooks_and_the_numbers(steps):
    # One pass per epoch: 7 training and 3 validation batches, so the last execution is short.
    calls, weights = {}, {}
    for method in METHODS:
        spy, model = Spy(), _model(seed=3)
        get_trainer(method, current())(
            model, _datasets(), _fast_spec(steps_per_execution=steps), [spy]
        )
        calls[method], weights[method] = spy.calls, model.get_weights()
    assert calls["batch"] == calls["fit"] and calls["loop"] == calls["fit"]
    begins = list(range(0, 7, steps))
    assert _hooks(calls["fit"], "on_train_batch_begin") == begins * 2
    assert _hooks(calls["fit"], "on_train_batch_end") == [b + steps - 1 for b in begins] * 2
    assert _hooks(calls["fit"], "on_test_batch_begin") == list(range(0, 3, steps)) * 2
    reference = _model(seed=3)
    get_trainer("fit", current())(reference, _datasets(), _fast_spec(), [])
    for method in METHODS:
        for ours, theirs in zip(weights[method], reference.get_weights(), strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_whole_epoch_executions_of_a_stream_take_exactly_each_epochs_batches():
    weights = {}
    for method, steps in [("fit", 1), ("fit", 6), ("batch", 3), ("loop", 6)]:
        model = _model(seed=4)
        get_trainer(method, current())(
            model, _stream(), _fast_spec(3, steps_per_execution=steps), []
        )
        weights[method, steps] = model.get_weights()
    reference = weights["fit", 1]
    for key, values in weights.items():
        for ours, theirs in zip(values, reference, strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-6, err_msg=str(key))


def _clocked(n: int = 200, batch_size: int = 32) -> TrainData:
    from trainways.data import EpochClock, make_dataset

    x, y = toy_problem(n=n, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=0)
    xv, yv = toy_problem(n=70, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=1)
    clock = EpochClock()
    return TrainData(
        make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=5, clock=clock),
        make_dataset(xv, yv, batch_size=batch_size, shuffle=False),
        clock=clock,
    )


@pytest.mark.parametrize("method", METHODS)
def test_an_execution_that_would_cross_an_epoch_ends_with_it_on_clocked_data(method):
    # 200 wires, batch 32: 7 steps per epoch, run as 3 + 3 + 1. The reference is the endless
    # stream of the same epochs, one step per call.
    spy, model = Spy(), _model(seed=4)
    get_trainer(method, current())(model, _clocked(), _fast_spec(3, steps_per_execution=3), [spy])
    assert _hooks(spy.calls, "on_train_batch_begin") == [0, 3, 6] * 3
    assert _hooks(spy.calls, "on_train_batch_end") == [2, 5, 8] * 3  # fit's indices
    assert _hooks(spy.calls, "on_test_batch_begin") == [0] * 3  # 3 validation steps, 1 call
    reference = _model(seed=4)
    get_trainer("fit", current())(reference, _stream(n=200), _fast_spec(3), [])
    for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)  # the same steps: not a bit apart


@pytest.mark.parametrize("method", METHODS)
def test_steps_per_execution_that_splits_an_epoch_is_refused(method):
    # 6 steps per epoch of an endless stream: 4 would make fit's second execution run into the
    # next epoch (data that ends with each epoch takes any number: see above).
    with pytest.raises(ValueError, match=r"4 does not divide the 6 steps of an epoch.*1, 2, 3, 6"):
        get_trainer(method, current())(_model(), _stream(), _fast_spec(steps_per_execution=4), [])


def test_xla_optimizer_is_nadam_to_rounding_and_the_same_in_every_method():
    weights = {}
    for method in METHODS:
        model = _model(seed=3)
        get_trainer(method, current())(model, _datasets(), _fast_spec(2, xla=True), [])
        weights[method] = model.get_weights()
    plain = _model(seed=3)
    get_trainer("fit", current())(plain, _datasets(), _fast_spec(2), [])
    for method in METHODS:
        for ours, theirs in zip(weights[method], weights["fit"], strict=True):
            np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(weights["fit"], plain.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_a_model_trained_with_the_xla_optimizer_saves_and_loads(tmp_path):
    model = _model()
    get_trainer("loop", current())(model, _datasets(), _fast_spec(1, xla=True), [])
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert type(restored.optimizer).__name__ == "XlaNadam"
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations)


def test_mixed_bfloat16_computes_in_bfloat16_and_the_methods_agree():
    def bf16_model():
        keras.utils.set_random_seed(3)
        return build_model(
            ModelConfig(embedding_dim=8),
            vocab_size=VOCAB,
            num_classes=CLASSES,
            max_len=MAX_LEN,
            precision="mixed_bfloat16",
        )

    probe = bf16_model()
    conv = probe.layers[1]
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert probe.layers[-1].compute_dtype == "float32"  # softmax and loss in full precision
    assert keras.config.dtype_policy().name == "float32"  # the process default is untouched
    weights, losses = {}, {}
    for method in METHODS:
        model = bf16_model()
        history = get_trainer(method, current())(model, _datasets(), _fast_spec(3), [])
        weights[method], losses[method] = model.get_weights(), history.history["loss"]
    for method in METHODS:
        assert losses[method][-1] < 0.8 * losses[method][0]
    # fit and the loop run the same graph (batch dimension unknown): equal to the bit.
    for ours, theirs in zip(weights["loop"], weights["fit"], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # train_on_batch traces its first graph for the concrete batch of 32, whose bfloat16
    # kernels round differently; Nadam's early, sign-like steps amplify that, so batch agrees
    # with the others only as a different bfloat16 run does.
    assert losses["batch"][0] == pytest.approx(losses["fit"][0], rel=1e-3)


def test_a_strategy_over_one_device_is_the_distributed_path_for_every_method(monkeypatch):
    # MirroredStrategy over one device is what --strategy mirrored gives a machine without GPUs:
    # every method must see the same strategy, build once, and compute the same training.
    from trainways.backends.tensorflow import placement as distribute

    builds = []
    real_build = distribute.build_for_training
    monkeypatch.setattr(
        distribute,
        "build_for_training",
        lambda *args, **kwargs: (builds.append(1), real_build(*args, **kwargs))[1],
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    weights = {}
    for method in METHODS:
        builds.clear()
        with strategy.scope():
            model = _model()
            setup = prepare(model, _datasets(), _spec(epochs=2), current())
            assert setup.placement.strategy is strategy, method
            get_trainer(method, current())(model, _datasets(), _spec(epochs=2))
        assert len(builds) == 2, method  # one per prepare() above, one per training
        weights[method] = model.get_weights()
    for method in ("batch", "loop"):
        for a, b in zip(weights["fit"], weights[method], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=method)


@pytest.mark.parametrize(
    ("value", "steps", "stream", "expected"),
    [
        ("auto", 281, False, 16),  # the backend's number; the epoch's last call runs 9
        (16, 281, False, 16),
        (500, 281, False, 281),  # more than an epoch is an epoch
        ("epoch", 281, False, 281),
        ("auto", 6, False, 6),
        ("auto", 281, True, 1),  # a stream needs a divisor: 281 is prime
        ("auto", 280, True, 14),  # the largest divisor of 280 up to 16
        (4, 8, True, 4),
        (3, None, False, 3),  # data that does not say its length
    ],
)
def test_steps_per_execution_resolves_against_the_data(value, steps, stream, expected):
    assert resolve_steps_per_execution(value, steps, stream=stream, auto=16) == expected


def test_steps_per_execution_epoch_needs_data_that_knows_its_epoch():
    with pytest.raises(ConfigError, match="'epoch' needs a dataset that knows its epoch"):
        resolve_steps_per_execution("epoch", None)
