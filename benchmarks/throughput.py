"""Training throughput of trainways against the tutorial's code, side by side, in one run.

For each method it alternates child processes — the reference (``reference_tutorial.py``) and
trainways — each training the same data for ``--epochs`` epochs; the first epoch (tracing,
warm-up) is left out of the figures. Prints per method and implementation: training samples/s
(median over the timed epochs, an epoch timed with its validation pass), seconds per epoch, peak
resident memory of the child, best validation accuracy, and the trainways / reference ratio; plus
the achieved GFLOP/s, taking the issue's estimate of ~10 MFLOP per training wire.

    python benchmarks/throughput.py --data ../shared/data/reuters21578 [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_WIRES = 8_982
FLOP_PER_WIRE = 10e6  # the estimate for one training wire (forward + backward)


def _worker(method: str, epochs: int, data: str) -> None:
    """Train with trainways in this process; print the same JSON line as the reference."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging

    from trainways.callbacks import EpochLogger
    from trainways.config import RunConfig, TrainConfig
    from trainways.data import load_reuters
    from trainways.run import build_training, seed_everything
    from trainways.trainers import get_trainer

    config = RunConfig(train=TrainConfig(method=method, epochs=epochs, seed=1))
    seed_everything(config)
    training = build_training(config, load_reuters(data))
    timer = EpochLogger(logging.getLogger("benchmark.quiet"))
    history = get_trainer(method)(training.model, training.data, training.spec, [timer])
    print(
        json.dumps(
            {"epoch_seconds": timer.epoch_seconds, "val_accuracy": history.history["val_accuracy"]}
        )
    )


def _child(argv: list[str]) -> dict:
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark child failed: {' '.join(argv)}")
    result = json.loads(process.stdout.read().strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def _summary(result: dict) -> dict:
    timed = result["epoch_seconds"][1:] or result["epoch_seconds"]
    seconds = statistics.median(timed)
    return {
        "samples_per_s": TRAIN_WIRES / seconds,
        "seconds_per_epoch": seconds,
        "peak_mb": result["peak_mb"],
        "best_val_accuracy": max(result["val_accuracy"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Reuters-21578 directory or reuters.npz")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run, first untimed")
    parser.add_argument("--methods", default="fit,batch,loop")
    parser.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], args.epochs, args.data)
        return
    rows = []
    for method in args.methods.split(","):
        reference = _child(
            [
                str(HERE / "reference_tutorial.py"),
                method,
                "--epochs",
                str(args.epochs),
                "--data",
                args.data,
            ]
        )
        ours = _child(
            [__file__, "--worker", method, "--epochs", str(args.epochs), "--data", args.data]
        )
        rows.append((method, _summary(reference), _summary(ours)))
    print(
        f"{'method':<6} {'impl':<10} {'samples/s':>10} {'s/epoch':>8} {'peak MB':>8} "
        f"{'best val':>9} {'GFLOP/s':>8} {'ratio':>6}"
    )
    for method, reference, ours in rows:
        for name, figures in (("reference", reference), ("trainways", ours)):
            ratio = figures["samples_per_s"] / reference["samples_per_s"]
            gflops = figures["samples_per_s"] * FLOP_PER_WIRE / 1e9
            print(
                f"{method:<6} {name:<10} {figures['samples_per_s']:>10.0f} "
                f"{figures['seconds_per_epoch']:>8.2f} {figures['peak_mb']:>8.0f} "
                f"{figures['best_val_accuracy']:>9.4f} {gflops:>8.1f} {ratio:>6.2f}"
            )


if __name__ == "__main__":
    main()
