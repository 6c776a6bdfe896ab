"""``trainways agree``: train the methods, or one method on several backends, and compare them.

:func:`measure` trains the three methods in this process from the same seed, with op
determinism, and compares them (:func:`trainways.agreement.compare`). :func:`measure_backends`
trains one method on each backend in a child process (:mod:`trainways.children`), every backend
from the same initial weights (:func:`save_initial_weights`, :func:`backend_config`, which
``trainways compare --backends`` uses too), and compares their first step and their validation
accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainways import callbacks as tw_callbacks
from trainways import rundir
from trainways.agreement import Agreement, BackendAgreement, compare
from trainways.backends import current
from trainways.checkpoint import named_weights
from trainways.children import child_argv, run_child
from trainways.config import RunConfig
from trainways.lifecycle import LOG
from trainways.trainers import get_trainer
from trainways.training import (
    build_model_for,
    build_training,
    schedule_callbacks,
    seed_everything,
)


def agreement_config(config: RunConfig) -> RunConfig:
    """``config`` as :func:`measure` trains it: with op determinism, whatever it said."""
    return replace(config, train=replace(config.train, deterministic=True))


def measure(
    config: RunConfig, reuters: Any, *, methods: Sequence[str] = ("fit", "batch", "loop")
) -> tuple[Agreement, dict[str, dict[str, list[float]]]]:
    """Train each method from the same seed, with op determinism, and compare them.

    Args:
        config: The configuration every method trains (``train.seed`` set; ``deterministic``
            is turned on whatever it says).
        reuters: The loaded data.
        methods: The methods to train, in order.

    Returns:
        The agreement and each method's History.
    """
    config = agreement_config(config)
    backend = current()
    first, final, histories = {}, {}, {}
    for method in methods:
        # Fresh layer-name counters, so each model's variables have the same paths.
        keras.backend.clear_session()
        # A user's step goes to the loop method only: fit and batch run their own.
        method_config = replace(config, train=config.train.for_method(method))
        seed_everything(method_config, backend)
        training = build_training(method_config, reuters, backend=backend)
        capture = _FirstEpochWeights()
        timer = tw_callbacks.EpochLogger(LOG.getChild(f"agree.{method}"))
        history = get_trainer(method, backend)(
            training.model,
            training.data,
            training.spec,
            [*schedule_callbacks(method_config), capture, timer],
        )
        LOG.info(
            "%s: %d epoch(s) in %.1f s", method, len(timer.epoch_seconds), sum(timer.epoch_seconds)
        )
        first[method] = capture.weights
        final[method] = named_weights(training.model)
        histories[method] = history.history
    return compare(first, final, histories), histories


class _FirstEpochWeights(keras.callbacks.Callback):
    """Keeps a copy of the model's variables at the end of the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[tuple[str, np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.weights:
            self.weights = named_weights(self.model)


# --------------------------------------------------------------------------- across backends


class BackendFailed(RuntimeError):
    """A backend's child run did not complete; the message says where its log is."""


def save_initial_weights(config: RunConfig, reuters: Any, path: Path) -> None:
    """The model ``config`` builds from its seed, its weights saved to ``path``
    (``.weights.h5``: backend-independent, so every backend can start from them)."""
    seed_everything(config)
    build_model_for(config, reuters).save_weights(path)
    keras.backend.clear_session()


def backend_config(config: RunConfig, backend: str, initial_weights: Path) -> RunConfig:
    """``config`` on ``backend``, starting from ``initial_weights``, with dense gradients (the
    update every backend computes alike, see :class:`trainways.config.TrainConfig`) and one step
    per call (the first step's loss is read after the first step)."""
    return replace(
        config,
        device=replace(config.device, backend=backend),
        model=replace(config.model, initial_weights=str(initial_weights)),
        train=replace(
            config.train, dense_gradients=True, xla_optimizer=False, steps_per_execution=1
        ),
    )


def measure_backends(
    config: RunConfig, reuters: Any, backends: Sequence[str], work: Path, log: Any
) -> BackendAgreement:
    """Train ``config`` on each backend, from the same initial weights and batches, and compare.

    Each backend trains in its own child process (``trainways train``; a process runs Keras on
    one backend), one after another, into ``work/<backend>``.

    Raises:
        BackendFailed: A backend's run did not complete.
    """
    weights = work / rundir.INITIAL_WEIGHTS
    save_initial_weights(config, reuters, weights)
    losses, accuracies, seconds = {}, {}, {}
    for backend in backends:
        out = work / backend
        config_file = work / f"{backend}.json"
        rundir.write_json(config_file, backend_config(config, backend, weights).to_dict())
        log(f"{backend}: training {config.train.method} into {out}")
        code, _ = run_child(child_argv(config_file, out))
        if code != 0:
            log_file = out / rundir.LOG
            where = f"its log: {log_file}" if log_file.is_file() else "its error is above"
            raise BackendFailed(f"{backend}: the run stopped with exit status {code}; {where}")
        metrics = rundir.read_json(out / rundir.METRICS)
        losses[backend] = float(metrics["first_step_loss"])
        accuracies[backend] = [float(v) for v in rundir.read_history(out)["val_accuracy"]]
        seconds[backend] = float(metrics["mean_seconds_per_epoch"])
    return BackendAgreement(tuple(backends), losses, accuracies, seconds)
