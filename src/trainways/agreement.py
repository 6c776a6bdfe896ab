"""How far apart results are: the methods' weights and metrics, and the backends'.

Pure NumPy on results that training already produced; nothing here trains or starts a process.
:func:`compare` measures the methods' differences (the ``compare`` report uses it on finished
runs, :mod:`trainways.measure` on the methods it trains for ``trainways agree``);
:class:`BackendAgreement` holds the backends' (``trainways agree --backends``). Each has its
tolerances and a plain-text report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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


# --------------------------------------------------------------------------- across backends

#: Largest difference allowed between backends in the first step's loss.
FIRST_STEP_TOLERANCE = 1e-5
#: Largest difference allowed between backends in the last epoch's validation accuracy.
BACKEND_ACCURACY_TOLERANCE = 0.01


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
