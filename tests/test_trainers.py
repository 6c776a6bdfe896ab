"""The three methods behind one contract: same keys, same callback order, same numbers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainways.callbacks import HalveLearningRate
from trainways.config import METHODS, ModelConfig
from trainways.model import build_loss, build_metrics, build_model, build_optimizer
from trainways.trainers import TrainData, TrainSpec, get_trainer

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
    history = get_trainer(method)(model, _datasets(), _spec(epochs, lr), list(callbacks))
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
    history = get_trainer(method)(model, data, _spec(epochs=1, lr=0.0), [])
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
        get_trainer(method)(model, _datasets(), _spec(epochs=1), [])
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
