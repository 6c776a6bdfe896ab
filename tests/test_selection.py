"""Honest selection (issue 15): validation wires carved from the training split, early stopping
on ``val_loss`` or ``val_accuracy``, and the options' checks."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from trainways import rundir
from trainways.cli import main
from trainways.config import ConfigError, DataConfig, RunConfig, TrainConfig
from trainways.data import DataError, held_out_wires, load_reuters, model_inputs
from trainways.training import schedule_callbacks

from helpers import read_history, train_args


def test_a_validation_split_holds_out_the_last_training_wires(corpus):
    reuters = load_reuters(str(corpus))
    inputs = model_inputs(reuters, max_len=30, validation_split=0.2)
    # Keras's fit(validation_split=0.2) takes the same 38 of 192: the last ones.
    assert (len(inputs.x_train), len(inputs.x_val)) == (154, 38) and inputs.held_out
    everything = model_inputs(reuters, max_len=30)
    np.testing.assert_array_equal(
        np.concatenate([inputs.x_train, inputs.x_val]), everything.x_train
    )
    np.testing.assert_array_equal(inputs.y_val, np.asarray(reuters.y_train)[-38:])
    assert not everything.held_out and len(everything.x_val) == len(reuters.y_test)


@pytest.mark.parametrize("split", [0.001, 0.005])
def test_a_split_that_leaves_nothing_to_validate_is_refused(split):
    with pytest.raises(DataError, match=f"validation_split {split} of 192 training wires"):
        held_out_wires(192, split)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: DataConfig(validation_split=0.0), r"validation_split must be in \(0, 1\)"),
        (lambda: DataConfig(validation_split=1.5), r"validation_split must be in \(0, 1\)"),
        (lambda: TrainConfig(label_smoothing=1.0), r"label_smoothing must be in \[0, 1\)"),
        (lambda: TrainConfig(weight_decay=-1.0), "weight_decay must be positive"),
        (lambda: TrainConfig(stop_on="accuracy"), "unknown stop_on 'accuracy': choose one of"),
    ],
)
def test_bad_selection_and_regularisation_values_are_refused(make, needle):
    with pytest.raises(ConfigError, match=needle):
        make()


@pytest.mark.parametrize(("metric", "stopped_after"), [("val_loss", 3), ("val_accuracy", None)])
def test_patience_watches_the_stop_on_metric(metric, stopped_after):
    # A model that gets more accurate and less sure: its val_loss rises after epoch 1.
    epochs = [{"val_loss": 1.0 + e / 10, "val_accuracy": 0.5 + e / 10} for e in range(5)]
    [stopper] = schedule_callbacks(RunConfig(train=TrainConfig(patience=2, stop_on=metric)))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopper.set_model(model)
    stopper.on_train_begin()
    stopped = None
    for epoch, logs in enumerate(epochs, start=1):
        stopper.on_epoch_end(epoch - 1, logs)
        if getattr(model, "stop_training", False):
            stopped = epoch
            break
    assert stopped == stopped_after


def test_a_run_with_a_validation_split_never_validates_on_the_test_split(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    argv = train_args(corpus, out, "loop", 2, "--max-len", "30", "--validation-split", "0.2")
    assert main([a for a in argv if a != "--quiet"]) == 0  # the log says what validates
    log = capsys.readouterr().out
    assert "validation: the last 38 training wires (--validation-split 0.2)" in log
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["train_samples"] == 154
    # The best epoch's val_accuracy is the best model's accuracy on the carved wires.
    inputs = model_inputs(load_reuters(str(corpus)), max_len=30, validation_split=0.2)
    best = keras.models.load_model(out / rundir.BEST, compile=False)
    predicted = best.predict(inputs.x_val, verbose=0).argmax(axis=1)
    val_accuracy = max(float(row["val_accuracy"]) for row in read_history(out))
    assert np.mean(predicted == inputs.y_val) == pytest.approx(val_accuracy, abs=1e-6)
    # evaluate scores the test split, which the run never saw.
    assert main(["evaluate", str(out)]) == 0
    assert json.loads((out / rundir.EVALUATION).read_text())["test_wires"] == 48


def test_a_split_that_leaves_nothing_to_validate_is_refused_before_the_run_exists(
    corpus, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(train_args(corpus, out, "fit", 1, "--validation-split", "0.001")) == 2
    err = capsys.readouterr().err
    assert "validation_split 0.001 of 192 training wires leaves 0 to validate" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
