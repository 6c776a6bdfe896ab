"""The three methods on the real Reuters data: one shared training of 10 epochs each.

One module fixture trains fit, batch and loop for 10 seeded, deterministic epochs with the
tutorial's settings (as ``trainways agree`` does, plus a spy on the callbacks); every test here
asserts on that one training: the accuracy the tutorial reached, the agreement of the methods,
and the contract (History keys, callback sequence, batches per epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from trainways.agreement import METRIC_TOLERANCE, WEIGHT_TOLERANCE, Agreement, compare
from trainways.backends import current
from trainways.config import METHODS, RunConfig, TrainConfig
from trainways.trainers import get_trainer
from trainways.training import build_training, seed_everything

from helpers import Spy

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # one training of 2-3 minutes

EPOCHS = 10
KEYS = {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy"}
TRAIN_BATCHES, TEST_BATCHES = 281, 71  # 8,982 and 2,246 wires in batches of 32


class FirstEpochWeights(keras.callbacks.Callback):
    """A copy of the model's variables, by path, at the end of the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[tuple[str, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.weights = [(v.path, np.array(v.numpy())) for v in self.model.weights]


@dataclass(frozen=True)
class TenEpochs:
    histories: dict[str, dict[str, list[float]]]
    calls: dict[str, list[tuple[str, Any]]]  # the Spy's (hook, index) per method
    agreement: Agreement
    first: dict[str, list[tuple[str, np.ndarray]]]  # each method's weights after epoch 1


@pytest.fixture(scope="module")
def ten_epochs(real_reuters) -> TenEpochs:
    config = RunConfig(train=TrainConfig(epochs=EPOCHS, seed=11, deterministic=True))
    first, final, histories, calls = {}, {}, {}, {}
    for method in METHODS:
        keras.backend.clear_session()  # the same variable paths in every method's model
        seed_everything(config)
        training = build_training(config, real_reuters)
        capture, spy = FirstEpochWeights(), Spy()
        history = get_trainer(method, current())(
            training.model, training.data, training.spec, [capture, spy]
        )
        first[method] = capture.weights
        final[method] = [(v.path, np.array(v.numpy())) for v in training.model.weights]
        histories[method], calls[method] = history.history, spy.calls
    return TenEpochs(histories, calls, compare(first, final, histories), first)


@pytest.mark.parametrize("method", METHODS)
def test_three_epochs_reach_sixty_percent(ten_epochs, method):
    history = ten_epochs.histories[method]
    assert history["loss"][2] < history["loss"][0]
    assert max(history["val_accuracy"][:3]) >= 0.60, history["val_accuracy"]


def test_the_tutorial_step_as_a_users_step_equals_the_built_in_loop(ten_epochs, real_reuters):
    # examples/tutorial_step.py, loaded as --step loads it, for one epoch of the same training.
    step = str(Path(__file__).resolve().parents[1] / "examples" / "tutorial_step.py:train_step")
    config = RunConfig(
        train=TrainConfig(method="loop", epochs=1, seed=11, deterministic=True, step=step)
    )
    keras.backend.clear_session()
    seed_everything(config)
    training = build_training(config, real_reuters)
    history = get_trainer("loop", current())(training.model, training.data, training.spec, [])
    ours = [(v.path, np.array(v.numpy())) for v in training.model.weights]
    for (name, value), (expected_name, expected) in zip(
        ours, ten_epochs.first["loop"], strict=True
    ):
        assert name == expected_name
        assert np.array_equal(value, expected), name
    assert history.history["val_accuracy"] == ten_epochs.histories["loop"]["val_accuracy"][:1]


@pytest.mark.parametrize("method", METHODS)
def test_ten_epochs_reach_the_tutorials_accuracy(ten_epochs, method):
    val_accuracy = ten_epochs.histories[method]["val_accuracy"]
    assert len(val_accuracy) == EPOCHS
    assert max(val_accuracy) >= 0.62, val_accuracy


def test_the_methods_are_bitwise_identical_after_the_first_epoch(ten_epochs):
    assert ten_epochs.agreement.identical
    assert ten_epochs.agreement.weight_difference == 0.0


def test_the_methods_agree_over_ten_epochs(ten_epochs):
    agreement = ten_epochs.agreement
    assert agreement.ok
    assert agreement.weight_difference <= WEIGHT_TOLERANCE
    assert agreement.val_accuracy_difference <= METRIC_TOLERANCE
    assert len(agreement.epochs) == EPOCHS


def test_same_history_keys_and_same_callback_sequence(ten_epochs):
    for method in METHODS:
        assert set(ten_epochs.histories[method]) == KEYS, method
    # Every hook with the same batch or epoch index, in the same order.
    assert ten_epochs.calls["batch"] == ten_epochs.calls["fit"]
    assert ten_epochs.calls["loop"] == ten_epochs.calls["fit"]
    hooks = [hook for hook, _ in ten_epochs.calls["fit"]]
    # 281 training and 71 validation batches per epoch, 16 per call by default: 18 and 5 calls,
    # the last of each epoch shorter, with the indices fit gives them.
    train_calls, test_calls = -(-TRAIN_BATCHES // 16), -(-TEST_BATCHES // 16)
    assert hooks.count("on_train_batch_end") == EPOCHS * train_calls
    assert hooks.count("on_test_batch_end") == EPOCHS * test_calls
    ends = [index for hook, index in ten_epochs.calls["fit"] if hook == "on_train_batch_end"]
    assert ends[:train_calls] == [16 * call + 15 for call in range(train_calls)]
