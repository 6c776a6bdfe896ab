"""Read a finished History into summaries; no training logic lives here."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
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


def write_history_csv(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Write a History as ``keras.callbacks.CSVLogger`` writes it, atomically.

    Same columns (``epoch`` then the keys sorted) and the same text for each value, so that a
    resumed run's ``CSVLogger(append=True)`` continues the file seamlessly.
    """
    keys = sorted(history)
    epochs = len(history[keys[0]]) if keys else 0
    path = Path(path)
    if not epochs:
        # A header alone would make CSVLogger(append=True) skip writing its own, with the keys.
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", *keys])
        writer.writeheader()
        for epoch in range(epochs):
            writer.writerow({"epoch": epoch, **{key: history[key][epoch] for key in keys}})
    os.replace(tmp, path)
