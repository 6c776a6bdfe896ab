"""Where a training step's time goes: TensorFlow profiler op statistics for the GradientTape loop.

Runs one warm-up epoch, then profiles ``--steps`` steps (one execution, in one graph) and prints
the ops by total self time, grouped by op type, plus each type's share of the busy time. Needs
the profiler plugin: ``pip install -e '.[bench]'``.

    python benchmarks/profile_ops.py --data ../shared/data/reuters21578 [--precision ...]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Reuters-21578 directory or reuters.npz")
    parser.add_argument("--steps", type=int, default=60, help="steps to profile")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--no-xla-optimizer", action="store_true")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=15, help="op types to list")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        raise SystemExit("needs the profiler plugin: pip install -e '.[bench]'") from None
    import tensorflow as tf

    from trainways.backends import current
    from trainways.backends.tensorflow.devices import configure_devices
    from trainways.config import RunConfig
    from trainways.data import load_reuters
    from trainways.trainers import prepare
    from trainways.training import build_training, seed_everything

    config = RunConfig.from_dict(
        {
            "train": {
                "method": "loop",
                "seed": 1,
                "steps_per_execution": "epoch",
                "xla_optimizer": not args.no_xla_optimizer,
                "precision": args.precision,
            },
            "device": {
                "intra_op_threads": args.intra_op_threads,
                "inter_op_threads": args.inter_op_threads,
            },
        }
    )
    configure_devices(config.device)
    seed_everything(config)
    training = build_training(config, load_reuters(args.data))
    setup = prepare(training.model, training.data, training.spec, current())
    stepper = setup.backend.LoopStepper(
        setup.model, setup.spec, setup.data.train.element_spec, setup.placement
    )
    stream = iter(training.data.train)
    stepper.train_steps(stream, training.data.steps_per_epoch)  # warm-up: tracing, compiling
    logdir = tempfile.mkdtemp(prefix="trainways-profile-")
    tf.profiler.experimental.start(logdir)
    stepper.train_steps(stream, args.steps)
    tf.profiler.experimental.stop()
    path = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    raw, _ = raw_to_tool_data.xspace_to_tool_data([path], "framework_op_stats^", {})
    table = json.loads(raw)
    table = table[0] if isinstance(table, list) else table
    columns = {column["label"]: i for i, column in enumerate(table["cols"])}
    by_type: collections.Counter[str] = collections.Counter()
    for row in table["rows"]:
        cells = [cell.get("v") if isinstance(cell, dict) else cell for cell in row["c"]]
        kind = cells[columns["Operation Type"]]
        if kind != "IDLE":
            by_type[kind] += cells[columns["Total self-time (us)"]] / 1000
    busy = sum(by_type.values())
    print(
        f"{args.steps} steps, {args.precision}: {busy:.0f} ms busy, {busy / args.steps:.2f} ms/step"
    )
    print(f"{'op type':<36} {'ms/step':>8} {'share':>6}")
    for kind, ms in by_type.most_common(args.top):
        print(f"{kind:<36} {ms / args.steps:>8.3f} {100 * ms / busy:>5.1f}%")
    print(f"(profile kept in {logdir}; open it with: tensorboard --logdir {logdir})")


if __name__ == "__main__":
    main()
