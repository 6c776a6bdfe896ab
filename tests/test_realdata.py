"""The three methods on the real Reuters data (read from ../shared/data/reuters21578)."""

from __future__ import annotations

import json

import keras
import pytest

from trainways.cli import main
from trainways.config import METHODS, ModelConfig
from trainways.data import make_dataset, pad, steps_per_epoch
from trainways.model import build_loss, build_metrics, build_model, build_optimizer
from trainways.trainers import TrainData, TrainSpec, get_trainer

from helpers import Spy

pytestmark = pytest.mark.realdata

KEYS = {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy"}


@pytest.fixture(scope="module")
def three_runs(real_reuters):
    """Each method trained 3 epochs from the same seed, with a spy on the callbacks."""
    runs = {}
    for method in METHODS:
        keras.utils.set_random_seed(7)
        data = TrainData(
            make_dataset(
                pad(real_reuters.x_train), real_reuters.y_train, batch_size=32, shuffle=True, seed=7
            ),
            make_dataset(
                pad(real_reuters.x_test), real_reuters.y_test, batch_size=32, shuffle=False
            ),
            steps_per_epoch(len(real_reuters.y_train), 32),
        )
        model = build_model(
            ModelConfig(),
            vocab_size=real_reuters.vocab_size,
            num_classes=real_reuters.num_classes,
            max_len=300,
        )
        spec = TrainSpec(
            epochs=3, loss=build_loss(), optimizer=build_optimizer(1e-3), metrics=build_metrics
        )
        spy = Spy()
        history = get_trainer(method)(model, data, spec, [spy])
        runs[method] = (history.history, spy.calls)
    return runs


@pytest.mark.parametrize("method", METHODS)
def test_three_epochs_reach_sixty_percent(three_runs, method):
    history, _ = three_runs[method]
    assert set(history) == KEYS
    assert len(history["loss"]) == 3
    assert history["loss"][2] < history["loss"][0]
    assert max(history["val_accuracy"]) >= 0.60, history["val_accuracy"]


def test_same_keys_and_same_callback_sequence(three_runs):
    keys = {method: sorted(history) for method, (history, _) in three_runs.items()}
    assert keys["batch"] == keys["fit"] == keys["loop"]
    kinds = {method: [hook for hook, _ in calls] for method, (_, calls) in three_runs.items()}
    assert kinds["batch"] == kinds["fit"]
    assert kinds["loop"] == kinds["fit"]
    # 281 training and 71 validation batches per epoch, as fit sees them.
    assert kinds["fit"].count("on_train_batch_end") == 3 * 281
    assert kinds["fit"].count("on_test_batch_end") == 3 * 71


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_ten_epochs_from_the_cli_reach_the_tutorials_accuracy(
    method, reuters_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / method
    status = main(
        [
            "train",
            "--method",
            method,
            "--epochs",
            "10",
            "--seed",
            "42",
            "--data",
            str(reuters_dir),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 10
    assert metrics["best"]["val_accuracy"] >= 0.62, metrics["best"]
    assert main(["predict", str(out), "Coffee exports fell as Brazil cut its quota"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5
