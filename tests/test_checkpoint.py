"""Per-epoch checkpoints: atomic, pruned, verified on load, and resuming bit for bit."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainways.backends import current
from trainways.callbacks import HalveLearningRate
from trainways.checkpoint import (
    ARRAYS,
    CHECKPOINTS,
    STATE,
    EpochCheckpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from trainways.config import METHODS, ModelConfig
from trainways.model import build_loss, build_metrics, build_model, build_optimizer
from trainways.trainers import TrainData, TrainSpec, compile_model, get_trainer

from helpers import toy_problem

# No enable_op_determinism(): on CPU these runs are already bit-identical, and the switch is
# process-wide, so it would change every test module that runs after this one.

MAX_LEN, VOCAB, CLASSES = 20, 40, 6
STEPS_PER_EPOCH = 4  # 128 samples in batches of 32


def _data() -> TrainData:
    # Not shuffled: the resumed run must see the batches the uninterrupted one saw.
    x, y = toy_problem(n=128, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=0)
    xv, yv = toy_problem(n=40, max_len=MAX_LEN, vocab=VOCAB, classes=CLASSES, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    return TrainData(train, tf.data.Dataset.from_tensor_slices((xv, yv)).batch(40))


def _model(seed: int = 0, embedding_dim: int = 8) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(
        ModelConfig(embedding_dim=embedding_dim),
        vocab_size=VOCAB,
        num_classes=CLASSES,
        max_len=MAX_LEN,
    )


def _spec(epochs: int, initial_epoch: int = 0) -> TrainSpec:
    # A fresh Nadam every time: resuming must not lean on a live optimizer object.
    return TrainSpec(
        epochs=epochs,
        initial_epoch=initial_epoch,
        loss=build_loss(),
        optimizer=build_optimizer(3e-3),
        metrics=build_metrics,
    )


def _no_warning(line: str) -> None:
    raise AssertionError(f"unexpected warning: {line}")


class IterationsAtStart(keras.callbacks.Callback):
    """Records the optimizer's step count when the first training batch begins."""

    def __init__(self) -> None:
        super().__init__()
        self.value: int | None = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.value is None:
            self.value = int(self.model.optimizer.iterations)


def _assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    for ours, theirs in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method", METHODS)
def test_resumed_training_is_bit_identical(method, tmp_path):
    # The rate is halved before the second epoch: the resumed run must take it from the checkpoint,
    # not from its fresh optimizer.
    train = get_trainer(method, current())
    straight = _model(seed=0)
    straight_history = train(straight, _data(), _spec(4), [HalveLearningRate(2)]).history

    first = _model(seed=0)
    train(first, _data(), _spec(2), [HalveLearningRate(2), EpochCheckpoint(tmp_path)])
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    assert checkpoint is not None and checkpoint.epoch == 2
    # Nadam: iterations, learning rate, a momentum and a velocity per variable, and u_product.
    assert len(checkpoint.optimizer_variables) == 2 + 2 * len(first.trainable_variables) + 1
    assert len(checkpoint.optimizer_variables) == len(first.optimizer.variables)

    resumed = _model(seed=1)  # Different initial weights: everything must come from the file.
    start = IterationsAtStart()
    saver = EpochCheckpoint(tmp_path, restore_from=checkpoint)
    callbacks = [HalveLearningRate(2), start, saver]
    resumed_history = train(resumed, _data(), _spec(4, initial_epoch=2), callbacks).history

    _assert_same_weights(resumed, straight)
    assert start.value == 2 * STEPS_PER_EPOCH
    assert int(resumed.optimizer.iterations) == 4 * STEPS_PER_EPOCH
    assert resumed_history == {key: values[2:] for key, values in straight_history.items()}
    assert saver.history == straight_history
    final = load_checkpoint(tmp_path, warn=_no_warning)
    assert final is not None and final.epoch == 4 and final.history == straight_history
    assert final.learning_rate == pytest.approx(1.5e-3)
    assert straight_history["learning_rate"] == pytest.approx([3e-3, 1.5e-3, 1.5e-3, 1.5e-3])


@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_state_survives_a_resume(method, tmp_path):
    def stopper() -> keras.callbacks.EarlyStopping:
        # No epoch can beat the first by 10: it stops at epoch index 2 (patience 2) and puts the
        # first epoch's weights back, unless a resume forgets where it was (it would then run
        # until epoch index 4).
        return keras.callbacks.EarlyStopping(
            monitor="val_loss", min_delta=10.0, patience=2, restore_best_weights=True
        )

    train = get_trainer(method, current())
    straight, straight_stop = _model(), stopper()
    callbacks = [straight_stop]
    callbacks.append(EpochCheckpoint(tmp_path, callbacks))
    straight_history = train(straight, _data(), _spec(6), callbacks).history
    assert len(straight_history["loss"]) == 3 and straight_stop.stopped_epoch == 2

    # As if the run had died during its third epoch: only the checkpoint of the second is left.
    shutil.rmtree(tmp_path / CHECKPOINTS / "epoch-0003")
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    assert checkpoint is not None and checkpoint.epoch == 2
    saved = checkpoint.callback_states["EarlyStopping#0"]
    assert saved["wait"] == 1 and saved["best_epoch"] == 0 and saved["stopped_epoch"] == 0
    assert saved["best"] == straight_history["val_loss"][0]
    assert len(saved["best_weights"]) == len(straight.get_weights())

    resumed, resumed_stop = _model(seed=1), stopper()
    callbacks = [resumed_stop]
    callbacks.append(EpochCheckpoint(tmp_path, callbacks, restore_from=checkpoint))
    resumed_history = train(resumed, _data(), _spec(6, initial_epoch=2), callbacks).history

    assert resumed_stop.stopped_epoch == straight_stop.stopped_epoch
    assert resumed_history == {key: values[2:] for key, values in straight_history.items()}
    assert resumed_stop.best == straight_stop.best
    # Both put the first epoch's weights back: in the resumed run, the saved best_weights.
    _assert_same_weights(resumed, straight)


# --- Files: no training needed, a compiled model with a built optimizer is enough. ---------------


@pytest.fixture
def compiled() -> keras.Model:
    model = _model()
    compile_model(model, _spec(1))
    return model


def _save_epochs(run_dir, model, epochs) -> None:
    for epoch in epochs:
        history = {"loss": [float(e) for e in range(1, epoch + 1)]}
        save_checkpoint(run_dir, model, epoch=epoch, history=history)


def _names(run_dir) -> list[str]:
    return sorted(path.name for path in (run_dir / CHECKPOINTS).iterdir())


def test_only_the_last_two_checkpoints_remain(compiled, tmp_path):
    _save_epochs(tmp_path, compiled, range(1, 6))
    assert _names(tmp_path) == ["epoch-0004", "epoch-0005"]
    state = json.loads((tmp_path / CHECKPOINTS / "epoch-0005" / STATE).read_text())
    assert state["epoch"] == 5 and state["history"] == {"loss": [1.0, 2.0, 3.0, 4.0, 5.0]}
    with np.load(tmp_path / CHECKPOINTS / "epoch-0005" / ARRAYS, allow_pickle=False) as npz:
        assert "weights.0000" in npz.files and "optimizer.0000" in npz.files


def test_rewriting_an_epoch_replaces_it_and_drops_later_ones(compiled, tmp_path):
    # Resumed from epoch 3 because epoch 4 was corrupt: the new epoch 4 replaces the bad one.
    _save_epochs(tmp_path, compiled, [3, 4])
    _truncate_arrays(tmp_path / CHECKPOINTS / "epoch-0004")
    warnings: list[str] = []
    assert load_checkpoint(tmp_path, warn=warnings.append).epoch == 3
    _save_epochs(tmp_path, compiled, [4])
    assert _names(tmp_path) == ["epoch-0003", "epoch-0004"]
    assert load_checkpoint(tmp_path, warn=_no_warning).epoch == 4
    # A checkpoint of a later epoch than the one just written belongs to an abandoned run and
    # must not pass for the latest.
    _save_epochs(tmp_path, compiled, [3])
    assert _names(tmp_path) == ["epoch-0003"]


def test_leftover_temp_dirs_are_ignored_and_cleaned(compiled, tmp_path):
    _save_epochs(tmp_path, compiled, [1, 2])
    leftover = tmp_path / CHECKPOINTS / ".tmp-epoch-0003-crashed"
    leftover.mkdir()
    (leftover / STATE).write_text("{")
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    assert checkpoint is not None and checkpoint.epoch == 2
    _save_epochs(tmp_path, compiled, [3])
    assert _names(tmp_path) == ["epoch-0002", "epoch-0003"]


def _truncate_arrays(path) -> None:
    data = (path / ARRAYS).read_bytes()
    (path / ARRAYS).write_bytes(data[: len(data) // 2])


def _garbage_state(path) -> None:
    (path / STATE).write_text("not json at all {")


def _tampered_arrays(path) -> None:
    # A well-formed npz whose bytes are not the ones recorded: caught by the checksum.
    with np.load(path / ARRAYS) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["weights.0000"] = arrays["weights.0000"] + 1
    np.savez(path / ARRAYS, **arrays)


@pytest.mark.parametrize("corrupt", [_truncate_arrays, _garbage_state, _tampered_arrays])
def test_a_corrupt_latest_falls_back_with_one_warning(compiled, tmp_path, corrupt):
    _save_epochs(tmp_path, compiled, [1, 2])
    corrupt(tmp_path / CHECKPOINTS / "epoch-0002")
    warnings: list[str] = []
    checkpoint = load_checkpoint(tmp_path, warn=warnings.append)
    assert checkpoint is not None and checkpoint.epoch == 1
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "epoch-0002" in warnings[0] and "falling back" in warnings[0]
    assert "epoch-0001" in warnings[0]


def test_nothing_usable_gives_none(compiled, tmp_path):
    assert load_checkpoint(tmp_path / "missing", warn=_no_warning) is None
    (tmp_path / CHECKPOINTS).mkdir()
    assert load_checkpoint(tmp_path, warn=_no_warning) is None
    _save_epochs(tmp_path, compiled, [1, 2])
    _truncate_arrays(tmp_path / CHECKPOINTS / "epoch-0002")
    (tmp_path / CHECKPOINTS / "epoch-0001" / STATE).unlink()
    warnings: list[str] = []
    assert load_checkpoint(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1 and "no usable checkpoint" in warnings[0]


def test_restore_builds_the_optimizer_and_sets_every_variable(compiled, tmp_path):
    save_checkpoint(tmp_path, compiled, epoch=1, history={})
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    fresh = _model(seed=1)
    compile_model(fresh, _spec(1))
    assert not fresh.optimizer.built
    restore(checkpoint, fresh)
    assert fresh.optimizer.built
    _assert_same_weights(fresh, compiled)
    for ours, theirs in zip(fresh.optimizer.variables, compiled.optimizer.variables, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_restore_names_the_optimizer_variable_that_does_not_fit(compiled, tmp_path):
    save_checkpoint(tmp_path, compiled, epoch=1, history={})
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    wider = _model(embedding_dim=9)
    compile_model(wider, _spec(1))
    # Same number of variables, other shapes: the message must not say "17 ... the model's 17".
    with pytest.raises(
        ValueError,
        match=r"holds optimizer variable \d+ of shape \(\d+, 8\), the model's \(\d+, 9\)",
    ):
        restore(checkpoint, wider, [])


def test_restore_refuses_other_callbacks(compiled, tmp_path):
    stop = keras.callbacks.EarlyStopping()
    save_checkpoint(tmp_path, compiled, epoch=1, history={}, callbacks=[stop])
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    with pytest.raises(ValueError, match="resume with the same callbacks"):
        restore(checkpoint, compiled, [])


def _resume_batch(tmp_path, callbacks, initial_epoch):
    checkpoint = load_checkpoint(tmp_path, warn=_no_warning)
    model = _model(seed=1)
    spec = _spec(4, initial_epoch=initial_epoch)
    return get_trainer("batch", current())(model, _data(), spec, callbacks(checkpoint))


def test_resume_checks_initial_epoch_and_callback_order(compiled, tmp_path):
    stop = keras.callbacks.EarlyStopping()
    stop.on_train_begin()
    stop.wait, stop.best = 1, 0.5  # Unlike a fresh one's: a reset after restoring shows.
    save_checkpoint(tmp_path, compiled, epoch=2, history={}, callbacks=[stop])

    def in_order(checkpoint):
        fresh = keras.callbacks.EarlyStopping()
        return [fresh, EpochCheckpoint(tmp_path, [fresh], restore_from=checkpoint)]

    def checkpoint_first(checkpoint):
        fresh = keras.callbacks.EarlyStopping()
        return [EpochCheckpoint(tmp_path, [fresh], restore_from=checkpoint), fresh]

    with pytest.raises(ValueError, match="needs initial_epoch=2"):
        _resume_batch(tmp_path, in_order, initial_epoch=0)
    with pytest.raises(RuntimeError, match="put EpochCheckpoint after"):
        _resume_batch(tmp_path, checkpoint_first, initial_epoch=2)
