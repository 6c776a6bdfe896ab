"""Read a finished History into summaries; no training logic lives here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def best_epoch(history: Mapping[str, Sequence[float]], monitor: str = "val_accuracy") -> int:
    """0-based index of the epoch with the highest ``monitor`` (the first, on ties).

    Raises:
        KeyError: ``monitor`` was not logged.
    """
    values = history[monitor]
    if not values:
        raise ValueError("the history has no epochs")
    return max(range(len(values)), key=lambda i: (values[i], -i))


def summarize_history(
    history: Mapping[str, Sequence[float]],
    epoch_seconds: Sequence[float],
    *,
    train_seconds: float,
) -> dict[str, Any]:
    """Final and best-epoch figures of a run, as plain JSON-ready values.

    Args:
        history: ``History.history`` (one list per log key).
        epoch_seconds: Wall-clock seconds of each epoch.
        train_seconds: Wall-clock seconds of the whole ``train`` call.

    Returns:
        ``{"epochs": n, "final": {...}, "best": {"epoch": 1-based, ...}, "seconds_per_epoch": [...],
        "mean_seconds_per_epoch": s, "train_seconds": s}``.
    """
    epochs = len(next(iter(history.values()), []))
    final = {key: float(values[-1]) for key, values in history.items() if values}
    summary: dict[str, Any] = {"epochs": epochs, "final": final}
    monitor = "val_accuracy" if "val_accuracy" in history else "accuracy"
    if epochs:
        best = best_epoch(history, monitor)
        summary["best"] = {
            "epoch": best + 1,
            "monitor": monitor,
            **{key: float(values[best]) for key, values in history.items()},
        }
    summary["seconds_per_epoch"] = [round(s, 3) for s in epoch_seconds]
    summary["mean_seconds_per_epoch"] = (
        round(math.fsum(epoch_seconds) / len(epoch_seconds), 3) if epoch_seconds else None
    )
    summary["train_seconds"] = round(train_seconds, 3)
    return summary
