"""Summaries of a run's results, as JSON-ready figures: a History's (final and best epoch, seconds
per epoch) and a classification's (accuracy, F1, per topic, the confusion matrix).

Pure: no training, no drawing, no files (``run``, ``own_loop`` and ``inference`` write what
these return). scikit-learn is imported only when a classification is summarised.
"""

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
    first_step_loss: float | None = None,
) -> dict[str, Any]:
    """Final and best-epoch figures of a run, as plain JSON-ready values.

    Args:
        history: ``History.history`` (one list per log key).
        epoch_seconds: Wall-clock seconds of each epoch.
        train_seconds: Wall-clock seconds of the whole ``train`` call.
        first_step_loss: The loss of the run's first step, if known (kept as ``first_step_loss``).

    Returns:
        ``{"epochs": n, "final": {...}, "best": {"epoch": 1-based, ...}, "seconds_per_epoch": [...],
        "mean_seconds_per_epoch": s, "train_seconds": s}``.
    """
    epochs = len(next(iter(history.values()), []))
    final = {key: float(values[-1]) for key, values in history.items() if values}
    summary: dict[str, Any] = {"epochs": epochs, "final": final}
    # A user's own loop (trainways.Loop) may log no accuracy: then no best epoch is named.
    monitor = next((m for m in ("val_accuracy", "accuracy") if m in history), None)
    if epochs and monitor:
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
    if first_step_loss is not None:
        summary["first_step_loss"] = first_step_loss
    return summary


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
