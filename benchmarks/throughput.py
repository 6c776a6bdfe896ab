"""Training throughput of trainways against the tutorial's code, side by side, in one run.

For each method it alternates child processes — the reference (``reference_tutorial.py``) and
trainways — each training the same data for ``--epochs`` epochs; the first epoch (tracing,
warm-up) is left out of the figures. Prints per method and implementation: training samples/s
(median over the timed epochs, an epoch timed with its validation pass), seconds per epoch, peak
resident memory of the child, best validation accuracy, and the trainways / reference ratio; plus
the achieved GFLOP/s, taking the issue's estimate of ~10 MFLOP per training wire.

    python benchmarks/throughput.py --data ../shared/data/reuters21578 [--epochs 4] \
        [--backend jax|torch] \
        [--set train.steps_per_execution=epoch --set device.inter_op_threads=2 ...]

``hook s``: the median / longest seconds between two progress updates (batch hooks) of
trainways' rows, after the first epoch.

``--backend`` trains trainways' rows on that Keras backend; the reference stays the TensorFlow
tutorial, so the ratio says how the backend compares with it. ``--set SECTION.KEY=VALUE`` changes
trainways' configuration (the ``config.json`` keys; VALUE is read as JSON, else as a string);
without it trainways runs with its defaults, which is what ``trainways train`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRAIN_WIRES = 8_982
FLOP_PER_WIRE = 10e6  # the estimate for one training wire (forward + backward)
PEAK_GFLOPS = 166.0  # the estimate of this machine's CPU peak


def _config(method: str, epochs: int, settings: list[str], backend: str) -> dict:
    config: dict = {
        "train": {"method": method, "epochs": epochs, "seed": 1},
        "device": {"backend": backend},
    }
    for setting in settings:
        key, _, raw = setting.partition("=")
        section, _, name = key.partition(".")
        if not name or not raw:
            raise SystemExit(f"--set {setting!r}: write SECTION.KEY=VALUE (train.precision=...)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        config.setdefault(section, {})[name] = value
    return config


def _worker(config_json: str, data: str) -> None:
    """Train with trainways in this process; print the same JSON line as the reference."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from trainways.backends import select
    from trainways.config import RunConfig

    config = RunConfig.from_dict(json.loads(config_json))
    select(config.device.backend, config.device)  # before Keras is imported
    import logging

    from trainways.backends import current
    from trainways.callbacks import EpochLogger
    from trainways.data import load_reuters
    from trainways.trainers import get_trainer
    from trainways.training import build_training, seed_everything

    method = config.train.method
    backend = current()
    backend.devices.make_strategy(config.device)
    seed_everything(config)
    training = build_training(config, load_reuters(data))
    timer = EpochLogger(logging.getLogger("benchmark.quiet"))
    hooks = _hook_gaps()
    history = get_trainer(method, backend)(
        training.model, training.data, training.spec, [timer, hooks]
    )
    print(
        json.dumps(
            {
                "epoch_seconds": timer.epoch_seconds,
                "val_accuracy": history.history["val_accuracy"],
                "hook_gaps": hooks.gaps,
            }
        )
    )


def _hook_gaps() -> Any:
    """A callback keeping the seconds between training batch hooks (the progress bar's updates)
    after the first epoch: how often a user sees the run move. Defined here, after the backend
    is chosen, because it imports Keras."""
    import keras

    class HookGaps(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.gaps: list[float] = []
            self._last: float | None = None
            self._timed = False

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._timed, self._last = epoch > 0, time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            if self._timed and self._last is not None:
                self.gaps.append(now - self._last)
            self._last = now

    return HookGaps()


def _child(argv: list[str]) -> dict:
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark child failed: {' '.join(argv)}")
    result = json.loads(process.stdout.read().strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def _summary(results: list[dict]) -> dict:
    """Pooled over repeated runs: median epoch time, largest peak memory, median best accuracy."""
    timed = [
        t for result in results for t in (result["epoch_seconds"][1:] or result["epoch_seconds"])
    ]
    seconds = statistics.median(timed)
    return {
        "samples_per_s": TRAIN_WIRES / seconds,
        "seconds_per_epoch": seconds,
        "peak_mb": max(result["peak_mb"] for result in results),
        "best_val_accuracy": statistics.median(max(r["val_accuracy"]) for r in results),
        "rounds": [TRAIN_WIRES / statistics.median(r["epoch_seconds"][1:]) for r in results],
        # Seconds between progress updates (trainways rows only: the reference has no hooks).
        "hook_gaps": [gap for result in results for gap in result.get("hook_gaps", [])],
    }


def _gaps(gaps: list[float]) -> str:
    return f"{statistics.median(gaps):.2f}/{max(gaps):.2f}" if gaps else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Reuters-21578 directory or reuters.npz")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run, first untimed")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of alternating runs")
    parser.add_argument("--methods", default="fit,batch,loop")
    parser.add_argument(
        "--backend",
        default="tensorflow",
        choices=("tensorflow", "jax", "torch"),
        help="the Keras backend of trainways' rows (the reference is TensorFlow's tutorial)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="trainways settings for an extra 'tuned' row, e.g. train.steps_per_execution=epoch",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.data)
        return
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is not timed")
    print(f"trainways backend: {args.backend}; reference: the TensorFlow tutorial", flush=True)
    print("tuned settings:", " ".join(args.set) or "(none)", flush=True)
    impls = {
        "reference": lambda m: [
            str(HERE / "reference_tutorial.py"),
            m,
            "--epochs",
            str(args.epochs),
        ],
        "trainways": lambda m: [
            __file__,
            "--worker",
            json.dumps(_config(m, args.epochs, [], args.backend)),
        ],
    }
    if args.set:
        impls["tuned"] = lambda m: [
            __file__,
            "--worker",
            json.dumps(_config(m, args.epochs, args.set, args.backend)),
        ]
    runs: dict[tuple[str, str], list[dict]] = {}
    for method in args.methods.split(","):
        # Alternate implementations within each round, so slow phases of a shared machine hit
        # them all alike.
        for round_ in range(args.repeats):
            for name, argv in impls.items():
                result = _child([*argv(method), "--data", args.data])
                runs.setdefault((method, name), []).append(result)
                print(f"  {method} {name} round {round_ + 1}: done", file=sys.stderr, flush=True)
    print(
        f"{'method':<6} {'impl':<10} {'samples/s':>10} {'s/epoch':>8} {'peak MB':>8} "
        f"{'best val':>9} {'GFLOP/s':>8} {'% peak':>7} {'hook s':>10} {'ratio':>6}  "
        "ratio per round"
    )
    for method in args.methods.split(","):
        reference = _summary(runs[method, "reference"])
        for name in impls:
            figures = _summary(runs[method, name])
            ratio = figures["samples_per_s"] / reference["samples_per_s"]
            per_round = ", ".join(
                f"{ours / theirs:.2f}"
                for ours, theirs in zip(figures["rounds"], reference["rounds"], strict=True)
            )
            gflops = figures["samples_per_s"] * FLOP_PER_WIRE / 1e9
            print(
                f"{method:<6} {name:<10} {figures['samples_per_s']:>10.0f} "
                f"{figures['seconds_per_epoch']:>8.2f} {figures['peak_mb']:>8.0f} "
                f"{figures['best_val_accuracy']:>9.4f} {gflops:>8.1f} "
                f"{100 * gflops / PEAK_GFLOPS:>6.0f}% {_gaps(figures['hook_gaps']):>10} "
                f"{ratio:>6.2f}  {per_round}"
            )


if __name__ == "__main__":
    main()
