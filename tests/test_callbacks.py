"""Project callbacks: the epoch log lines, the progress bar and the learning-rate halving."""

from __future__ import annotations

import logging
import os
import re
import signal

import pytest

from trainways.callbacks import BatchProgress, EpochLogger, HalveLearningRate, format_logs

LOGS = {
    "val_loss": 1.5,
    "top5_accuracy": 0.9,
    "loss": 1.25,
    "accuracy": 0.5,
    "val_accuracy": 0.45,
    "val_top5_accuracy": 0.85,
    "learning_rate": 0.0005,
}


def test_format_logs_orders_metrics_then_validation_then_the_rest():
    assert format_logs(LOGS) == (
        "loss: 1.2500 - accuracy: 0.5000 - top5_accuracy: 0.9000 - val_loss: 1.5000 - "
        "val_accuracy: 0.4500 - val_top5_accuracy: 0.8500 - learning_rate: 0.0005"
    )


def test_epoch_logger_prints_a_separator_with_local_time_then_metrics(caplog):
    logger = logging.getLogger("trainways.test")
    callback = EpochLogger(logger)
    callback.set_params({"epochs": 10, "steps": 3})
    with caplog.at_level(logging.INFO, logger="trainways.test"):
        callback.on_epoch_begin(0)
        callback.on_epoch_end(0, LOGS)
    separator, metrics = caplog.messages
    # The tutorial hard-coded UTC+8; ours is the machine's local time with its UTC offset.
    assert re.fullmatch(r"-{40} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d", separator)
    assert re.match(r"epoch 1/10 - \d+\.\ds - loss: 1\.2500 - accuracy: 0\.5000", metrics)
    assert len(callback.epoch_seconds) == 1


def test_batch_progress_shows_running_values_unaveraged(capsys):
    bar = BatchProgress()
    bar.set_params({"epochs": 1, "steps": 2})
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(0, {"loss": 4.0})
    bar.on_train_batch_end(1, {"loss": 2.0})
    bar.on_epoch_end(0, {"loss": 2.0})
    out = capsys.readouterr().out
    # Progbar would print 3.0 if it averaged our already-running means again.
    assert "loss: 2.0000" in out and "loss: 3.0000" not in out


def test_halve_learning_rate_is_one_based_and_happens_once():
    halve = HalveLearningRate(at_epoch=5)
    rates = []
    lr = 1e-3
    for epoch in range(8):
        lr = halve.schedule(epoch, lr)
        rates.append(lr)
    assert rates == pytest.approx([1e-3] * 4 + [5e-4] * 4)
    with pytest.raises(ValueError, match="1-based"):
        HalveLearningRate(at_epoch=0)


def test_non_finite_loss_stops_at_once_naming_epoch_and_batch():
    from trainways.callbacks import NonFiniteLoss, StopOnNonFiniteLoss

    stop = StopOnNonFiniteLoss()
    stop.on_epoch_begin(2)
    stop.on_train_batch_end(0, {"loss": 1.5})
    with pytest.raises(NonFiniteLoss, match="non-finite loss at epoch 3 batch 5"):
        stop.on_train_batch_end(4, {"loss": float("nan")})
    with pytest.raises(NonFiniteLoss):
        stop.on_train_batch_end(5, {"loss": float("inf")})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_becomes_a_stop_at_the_next_batch_boundary(signum):
    from trainways.callbacks import Interrupted, StopOnSignal

    before = signal.getsignal(signum)
    stop = StopOnSignal()
    stop.on_train_begin()
    try:
        stop.on_train_batch_end(0, {})  # nothing received: carries on
        os.kill(os.getpid(), signum)
        with pytest.raises(Interrupted) as caught:
            stop.on_train_batch_end(1, {})
        assert caught.value.signum == signum
    finally:
        stop.restore_handlers()
    assert signal.getsignal(signum) is before


def test_a_second_signal_interrupts_at_once():
    from trainways.callbacks import StopOnSignal

    stop = StopOnSignal()
    stop.on_train_begin()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        stop.restore_handlers()
