"""Test accuracy of the model presets against the TF-IDF + LinearSVC baseline, chosen honestly.

In one run:

1. the baseline (``trainways baseline``), fitted on the training split and scored on the test
   split, and also on the carved split, for the validation comparison;
2. selection: every candidate configuration (``CANDIDATES``: preset and settings) trains with
   ``fit`` on the training wires minus a validation split (``--validation-split``), each epoch
   scored on the carved wires; the candidate and epoch count with the best validation accuracy
   win — the test split is not looked at;
3. the chosen configuration trains on the whole training split for the chosen number of epochs,
   with each method (``fit``, ``batch``, ``loop``) and the same seed, and its last epoch's
   model is scored once on the test split (``trainways evaluate --last``: accuracy and
   macro-F1), with its training time.

Every training run is a ``trainways train`` child process. Prints the selection table, the final
table, and the checks of issue 15: the chosen preset's test accuracy against the baseline's, the
three methods' spread, and each method's training time against 3 minutes.

    python benchmarks/accuracy.py --data ../shared/data/reuters21578 [--seed 1] \
        [--epochs 8] [--out DIR] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VALIDATION_SPLIT = 0.1
TIME_LIMIT_S = 180.0
SPREAD_LIMIT = 0.005

#: name -> configuration sections over trainways' defaults. The tutorial's CNN is the reference.
CANDIDATES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn (tutorial)": {"model": {"preset": "cnn"}, "train": {}},
    "text_cnn ls0.1": {"model": {"preset": "text_cnn"}, "train": {"label_smoothing": 0.1}},
    "tfidf_mlp ls0.1": {
        "model": {"preset": "tfidf_mlp"},
        "train": {"label_smoothing": 0.1, "batch_size": 64},
    },
    "tfidf_mlp hinge": {
        "model": {"preset": "tfidf_mlp"},
        "train": {"loss": "hinge", "learning_rate": 3e-4, "batch_size": 64},
    },
}


def _train(config: dict[str, Any], out: Path) -> float:
    """Train ``config`` into ``out`` in a child process; return its wall time."""
    config_file = out.parent / f"{out.name}.json"
    config_file.write_text(json.dumps(config))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "trainways.cli", "train", "--config", str(config_file),
         "--out", str(out), "--quiet"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def _config(
    candidate: dict[str, dict[str, Any]], data: str, *, seed: int, epochs: int, method: str,
    validation_split: float | None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "data": {"source": data, "validation_split": validation_split},
        "model": dict(candidate["model"]),
        "train": {**candidate["train"], "method": method, "epochs": epochs, "seed": seed},
    }


def _history(run: Path) -> list[dict[str, float]]:
    import csv

    with (run / "history.csv").open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _evaluate_last(run: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, "-m", "trainways.cli", "evaluate", str(run), "--last"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((run / "evaluation.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8, help="selection epochs per candidate")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default=None, help="comma-separated candidate names")
    args = parser.parse_args()
    data = str(Path(args.data).resolve())
    out = args.out or Path(tempfile.mkdtemp(prefix="trainways-accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    candidates = (
        {name: CANDIDATES[name] for name in args.only.split(",")} if args.only else CANDIDATES
    )

    from trainways.baseline import tfidf_svm
    from trainways.data import load_reuters

    reuters = load_reuters(data)
    on_test = tfidf_svm(reuters, max_len=300)
    on_val = tfidf_svm(reuters, max_len=300, validation_split=VALIDATION_SPLIT)
    print(
        f"baseline TF-IDF + LinearSVC: test accuracy {on_test.accuracy:.4f}, macro-F1 "
        f"{on_test.macro_f1:.4f} (fit {on_test.fit_seconds:.1f} s on {on_test.train_wires:,}); "
        f"validation accuracy {on_val.accuracy:.4f} (fit on {on_val.train_wires:,}, scored on "
        f"{on_val.scored_wires:,} carved wires)",
        flush=True,
    )

    print(f"\nselection: fit, {args.epochs} epochs, validation split {VALIDATION_SPLIT}")
    print(f"{'candidate':<20} {'best val acc':>12} {'epoch':>6} {'s/epoch':>8}")
    chosen: tuple[float, str, int] | None = None
    for name, candidate in candidates.items():
        run = out / "select" / name.replace(" ", "_")
        run.parent.mkdir(parents=True, exist_ok=True)
        config = _config(candidate, data, seed=args.seed, epochs=args.epochs, method="fit",
                         validation_split=VALIDATION_SPLIT)  # fmt: skip
        wall = _train(config, run)
        history = _history(run)
        best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -i))
        accuracy = history[best]["val_accuracy"]
        print(f"{name:<20} {accuracy:>12.4f} {best + 1:>6} {wall / len(history):>8.1f}", flush=True)
        if chosen is None or accuracy > chosen[0]:
            chosen = (accuracy, name, best + 1)
    assert chosen is not None
    _, name, epochs = chosen
    print(f"\nchosen on validation: {name}, {epochs} epoch(s); trained on all "
          f"{len(reuters.y_train):,} training wires, scored once on the test split")  # fmt: skip
    print(f"{'method':<8} {'test acc':>9} {'macro-F1':>9} {'train s':>8}")
    finals = {}
    for method in ("fit", "batch", "loop"):
        run = out / "final" / method
        run.parent.mkdir(parents=True, exist_ok=True)
        config = _config(candidates[name], data, seed=args.seed, epochs=epochs, method=method,
                         validation_split=None)  # fmt: skip
        _train(config, run)
        seconds = sum(json.loads((run / "metrics.json").read_text())["seconds_per_epoch"])
        evaluation = _evaluate_last(run)
        finals[method] = (evaluation["accuracy"], evaluation["macro_f1"], seconds)
        print(f"{method:<8} {finals[method][0]:>9.4f} {finals[method][1]:>9.4f} "
              f"{seconds:>8.1f}", flush=True)  # fmt: skip
    accuracies = [a for a, _, _ in finals.values()]
    spread = max(accuracies) - min(accuracies)
    slowest = max(s for _, _, s in finals.values())
    print(
        f"\nchecks: lowest test accuracy {min(accuracies):.4f} vs baseline "
        f"{on_test.accuracy:.4f} "
        f"({'beats' if min(accuracies) > on_test.accuracy else 'does NOT beat'}"
        f" it); methods' spread {spread * 100:.2f} points (limit {SPREAD_LIMIT * 100:.1f}: "
        f"{'met' if spread <= SPREAD_LIMIT else 'NOT met'}); slowest training {slowest:.0f} s "
        f"(limit {TIME_LIMIT_S:.0f}: {'met' if slowest <= TIME_LIMIT_S else 'NOT met'})"
    )
    summary = {
        "baseline": {"test": on_test.to_dict(), "validation": on_val.to_dict()},
        "chosen": {"candidate": name, "epochs": epochs},
        "final": {
            m: dict(zip(("accuracy", "macro_f1", "seconds"), v, strict=True))
            for m, v in finals.items()
        },
    }
    (out / "accuracy.json").write_text(json.dumps(summary, indent=1))
    print(f"written: {out / 'accuracy.json'}")


if __name__ == "__main__":
    main()
