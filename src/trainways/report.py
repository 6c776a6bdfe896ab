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


def classification_summary(
    y_true: Sequence[int], probabilities: Any, topics: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, top-5 accuracy, macro / weighted F1 and per-topic figures, by scikit-learn.

    Args:
        y_true: True label ids.
        probabilities: ``(n, len(topics))`` predicted probabilities.
        topics: Topic name of each label id.

    Returns:
        JSON-ready figures; ``per_topic`` maps each topic name to precision, recall, F1 and
        support (topics absent from ``y_true`` have support 0).
    """
    import numpy as np
    from sklearn import metrics

    probabilities = np.asarray(probabilities)
    labels = list(range(len(topics)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "top5_accuracy": float(
            metrics.top_k_accuracy_score(y_true, probabilities, k=5, labels=labels)
        ),
        "macro_f1": float(
            metrics.f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "weighted_f1": float(
            metrics.f1_score(y_true, predicted, labels=labels, average="weighted", zero_division=0)
        ),
        "per_topic": {
            topic: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, topic in enumerate(topics)
        },
        "confusion_matrix": metrics.confusion_matrix(y_true, predicted, labels=labels).tolist(),
    }


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], topics: Sequence[str], path: Path
) -> None:
    """Save a confusion matrix with topic names on both axes (format from ``path``'s suffix)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none assumed
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix)
    size = max(6.0, 0.22 * len(topics) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    # Log colour scale: "earn" and "acq" would otherwise wash every other cell out.
    image = axes.imshow(np.log1p(counts), cmap="Blues")
    axes.set_xticks(range(len(topics)), topics, rotation=90, fontsize=7)
    axes.set_yticks(range(len(topics)), topics, fontsize=7)
    axes.set_xlabel("predicted topic")
    axes.set_ylabel("true topic")
    axes.set_title("Confusion matrix (test split, log colour scale)")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="log(1 + wires)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
