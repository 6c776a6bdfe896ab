"""How far apart the three methods' results are, and the backends': weight and metric differences.

:func:`compare` is pure NumPy on results that training produced (the ``compare`` report uses it
on finished runs); :func:`measure` trains the methods under one configuration and compares them
(``trainways agree``); :func:`measure_backends` trains one method on several Keras backends from
the same initial weights and compares their first step and their validation accuracy
(``trainways agree --backends``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from trainways import rundir
from trainways.checkpoint import named_weights

if TYPE_CHECKING:
    from trainways.config import RunConfig

#: Largest absolute difference allowed in any weight after the first epoch.
WEIGHT_TOLERANCE = 1e-5
#: Largest difference allowed in any epoch's validation accuracy.
METRIC_TOLERANCE = 0.005


@dataclass(frozen=True)
class Agreement:
    """Differences between methods, each the largest over every pair of methods.

    Attributes:
        methods: The methods compared.
        variables: ``(name, largest |difference| after epoch 1, after the last epoch)`` per
            model variable.
        epochs: Per epoch, log key → largest |difference| of that key's value.
        identical: Whether the weights after epoch 1 were bitwise equal.
    """

    methods: tuple[str, ...]
    variables: tuple[tuple[str, float, float], ...]
    epochs: tuple[dict[str, float], ...]
    identical: bool

    @property
    def weight_difference(self) -> float:
        """Largest weight difference after the first epoch."""
        return max((first for _, first, _ in self.variables), default=0.0)

    @property
    def final_weight_difference(self) -> float:
        """Largest weight difference after the last epoch."""
        return max((last for _, _, last in self.variables), default=0.0)

    @property
    def val_accuracy_difference(self) -> float:
        """Largest per-epoch validation accuracy difference (``nan`` if not logged)."""
        values = [epoch.get("val_accuracy", math.nan) for epoch in self.epochs]
        return max(values, default=math.nan)

    @property
    def metric_difference(self) -> float:
        """Largest per-epoch difference over every logged key."""
        return max((max(e.values(), default=0.0) for e in self.epochs), default=0.0)

    @property
    def ok(self) -> bool:
        """Within :data:`WEIGHT_TOLERANCE` and :data:`METRIC_TOLERANCE`."""
        val = self.val_accuracy_difference
        return self.weight_difference <= WEIGHT_TOLERANCE and (
            math.isnan(val) or val <= METRIC_TOLERANCE
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for reports."""
        return {
            "methods": list(self.methods),
            "ok": self.ok,
            "identical_after_epoch_1": self.identical,
            "weight_difference_after_epoch_1": self.weight_difference,
            "final_weight_difference": self.final_weight_difference,
            "val_accuracy_difference": self.val_accuracy_difference,
            "metric_difference": self.metric_difference,
            "tolerances": {"weights": WEIGHT_TOLERANCE, "val_accuracy": METRIC_TOLERANCE},
            "variables": [
                {"name": name, "after_epoch_1": first, "final": last}
                for name, first, last in self.variables
            ],
            "epochs": list(self.epochs),
        }


def _largest_pairwise(arrays: Sequence[np.ndarray]) -> float:
    return max(
        (
            float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
            for a, b in itertools.combinations(arrays, 2)
        ),
        default=0.0,
    )


def compare(
    first_epoch_weights: Mapping[str, Sequence[tuple[str, np.ndarray]]],
    final_weights: Mapping[str, Sequence[tuple[str, np.ndarray]]],
    histories: Mapping[str, Mapping[str, Sequence[float]]],
) -> Agreement:
    """Compare the methods' weights and Histories.

    Args:
        first_epoch_weights: Per method, ``(variable name, value)`` after the first epoch.
        final_weights: The same after the last epoch.
        histories: Per method, ``History.history``.

    Returns:
        The differences.

    Raises:
        ValueError: The methods' models or Histories do not line up (different variables, keys
            or epoch counts): they did not train the same configuration.
    """
    methods = tuple(first_epoch_weights)
    names = [[name for name, _ in first_epoch_weights[m]] for m in methods]
    if any(n != names[0] for n in names):
        raise ValueError(f"the methods' models have different variables: {methods}")
    variables = []
    identical = True
    for index, name in enumerate(names[0]):
        first = [np.asarray(first_epoch_weights[m][index][1]) for m in methods]
        last = [np.asarray(final_weights[m][index][1]) for m in methods]
        identical &= all(np.array_equal(first[0], other) for other in first[1:])
        variables.append((name, _largest_pairwise(first), _largest_pairwise(last)))
    keys = [sorted(histories[m]) for m in methods]
    lengths = {len(histories[m][k]) for m in methods for k in histories[m]}
    if any(k != keys[0] for k in keys) or len(lengths) > 1:
        raise ValueError("the methods' Histories have different keys or epoch counts")
    n_epochs = lengths.pop() if lengths else 0
    epochs = tuple(
        {
            key: _largest_pairwise([np.float64(histories[m][key][e]) for m in methods])
            for key in keys[0]
        }
        for e in range(n_epochs)
    )
    return Agreement(methods, tuple(variables), epochs, identical)


def format_agreement(agreement: Agreement) -> str:
    """A plain-text report: per variable, then per epoch, then the verdict."""
    lines = [
        f"methods: {', '.join(agreement.methods)}",
        "",
        f"{'variable':<40} {'after epoch 1':>14} {'final':>14}",
    ]
    for name, first, last in agreement.variables:
        lines.append(f"{name:<40} {first:>14.3e} {last:>14.3e}")
    keys = sorted(agreement.epochs[0]) if agreement.epochs else []
    lines += [
        "",
        "largest per-epoch difference between methods:",
        "epoch " + " ".join(f"{k:>18}" for k in keys),
    ]
    for index, epoch in enumerate(agreement.epochs, 1):
        lines.append(f"{index:>5} " + " ".join(f"{epoch[k]:>18.3e}" for k in keys))
    verdict = "AGREE" if agreement.ok else "DISAGREE"
    lines += [
        "",
        f"{verdict}: weights after epoch 1 differ by at most {agreement.weight_difference:.3e} "
        f"(tolerance {WEIGHT_TOLERANCE:g}{', bitwise identical' if agreement.identical else ''});"
        f" val_accuracy by at most {agreement.val_accuracy_difference:.3e} per epoch "
        f"(tolerance {METRIC_TOLERANCE:g})",
    ]
    return "\n".join(lines)


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
    from trainways import callbacks as tw_callbacks
    from trainways import run
    from trainways.backends import current
    from trainways.trainers import get_trainer

    backend = current()
    config = agreement_config(config)
    first, final, histories = {}, {}, {}
    for method in methods:
        # Fresh layer-name counters, so each model's variables have the same paths.
        keras.backend.clear_session()
        # A user's step goes to the loop method only: fit and batch run their own.
        method_config = replace(config, train=config.train.for_method(method))
        run.seed_everything(method_config)
        training = run.build_training(method_config, reuters)
        capture = _FirstEpochWeights()
        timer = tw_callbacks.EpochLogger(run.LOG.getChild(f"agree.{method}"))
        history = get_trainer(method, backend)(
            training.model,
            training.data,
            training.spec,
            [*run.schedule_callbacks(method_config), capture, timer],
        )
        run.LOG.info(
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

#: Largest difference allowed between backends in the first step's loss.
FIRST_STEP_TOLERANCE = 1e-5
#: Largest difference allowed between backends in the last epoch's validation accuracy.
BACKEND_ACCURACY_TOLERANCE = 0.01


class BackendFailed(RuntimeError):
    """A backend's child run did not complete; the message says where its log is."""


@dataclass(frozen=True)
class BackendAgreement:
    """How far apart backends are, from the same initial weights and the same batches.

    Attributes:
        backends: The backends compared, in order.
        first_step_loss: Per backend, the loss of the first step (the first batch, from the
            initial weights).
        val_accuracy: Per backend, each epoch's validation accuracy.
        seconds_per_epoch: Per backend, the mean wall-clock seconds of an epoch.
    """

    backends: tuple[str, ...]
    first_step_loss: dict[str, float]
    val_accuracy: dict[str, list[float]]
    seconds_per_epoch: dict[str, float]

    @property
    def first_step_difference(self) -> float:
        """Largest difference between two backends' first-step losses."""
        losses = list(self.first_step_loss.values())
        return max(losses) - min(losses)

    @property
    def val_accuracy_difference(self) -> float:
        """Largest difference between two backends' last-epoch validation accuracies."""
        last = [values[-1] for values in self.val_accuracy.values()]
        return max(last) - min(last)

    @property
    def ok(self) -> bool:
        """Within :data:`FIRST_STEP_TOLERANCE` and :data:`BACKEND_ACCURACY_TOLERANCE`."""
        return (
            self.first_step_difference <= FIRST_STEP_TOLERANCE
            and self.val_accuracy_difference <= BACKEND_ACCURACY_TOLERANCE
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "backends": list(self.backends),
            "ok": self.ok,
            "first_step_loss": self.first_step_loss,
            "first_step_difference": self.first_step_difference,
            "val_accuracy": self.val_accuracy,
            "val_accuracy_difference": self.val_accuracy_difference,
            "seconds_per_epoch": self.seconds_per_epoch,
            "tolerances": {
                "first_step_loss": FIRST_STEP_TOLERANCE,
                "val_accuracy": BACKEND_ACCURACY_TOLERANCE,
            },
        }


def save_initial_weights(config: RunConfig, reuters: Any, path: Path) -> None:
    """The model ``config`` builds from its seed, its weights saved to ``path``
    (``.weights.h5``: backend-independent, so every backend can start from them)."""
    from trainways import run
    from trainways.model import build_model

    run.seed_everything(config)
    model = build_model(
        config.model,
        vocab_size=reuters.vocab_size,
        num_classes=reuters.num_classes,
        max_len=config.data.max_len,
        precision=config.train.precision,
    )
    model.save_weights(path)
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
    from trainways.compare import child_argv, run_child

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


def format_backend_agreement(agreement: BackendAgreement, method: str) -> str:
    """A plain-text table: per backend, the first step's loss and the validation accuracy."""
    first = agreement.backends[0]
    epochs = len(agreement.val_accuracy[first])
    lines = [
        f"backends: {', '.join(agreement.backends)} ({method}, {epochs} epoch(s), the same "
        "initial weights and batches)",
        "",
        f"{'backend':<12} {'first-step loss':>16} {'vs ' + first:>14} "
        f"{'val_accuracy':>13} {'vs ' + first:>14} {'s/epoch':>8}",
    ]
    for backend in agreement.backends:
        loss = agreement.first_step_loss[backend]
        accuracy = agreement.val_accuracy[backend][-1]
        lines.append(
            f"{backend:<12} {loss:>16.8f} {loss - agreement.first_step_loss[first]:>14.3e} "
            f"{accuracy:>13.4f} {accuracy - agreement.val_accuracy[first][-1]:>+14.4f} "
            f"{agreement.seconds_per_epoch[backend]:>8.2f}"
        )
    verdict = "AGREE" if agreement.ok else "DISAGREE"
    lines += [
        "",
        f"{verdict}: first-step losses differ by at most {agreement.first_step_difference:.3e} "
        f"(tolerance {FIRST_STEP_TOLERANCE:g}); last-epoch val_accuracy by at most "
        f"{agreement.val_accuracy_difference * 100:.2f} points (tolerance "
        f"{BACKEND_ACCURACY_TOLERANCE * 100:g})",
    ]
    return "\n".join(lines)
