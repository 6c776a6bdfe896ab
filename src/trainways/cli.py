"""``trainways`` command line: config → data → model → trainer → run directory.

TensorFlow is imported only by the commands that train or run a model, so ``--help`` and
``trainways data info`` answer quickly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from trainways import __version__, rundir
from trainways.config import (
    METHODS,
    PRECISIONS,
    STRATEGIES,
    ConfigError,
    DataConfig,
    DeviceConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    resolve_steps_per_execution,
)

LOG = logging.getLogger("trainways")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr rather than usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(
    convert: type,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> Any:
    """An argparse ``type`` that parses with ``convert`` and checks the bounds."""
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {text}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {below}, got {text}")
        return value

    return parse


_positive_int = _number(int, above=0)
_positive_float = _number(float, above=0)
_non_negative_int = _number(int, at_least=0)
_seed = _number(int, at_least=0, below=2**31)


def _steps_per_execution(text: str) -> int | str:
    if text == "epoch":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number > 0 or 'epoch', got {text!r}"
        ) from None


def _method_list(text: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(
            f"expected distinct methods from {', '.join(METHODS)}, got {text!r}"
        )
    return methods


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="Reuters-21578 directory (reut2-*.sgm) or a Keras reuters.npz; default: "
        "$TRAINWAYS_DATA, then the trainways cache, then Keras's reuters.npz",
    )
    parser.add_argument(
        "--num-words",
        type=_positive_int,
        metavar="N",
        help="keep the N most frequent word ids (default: all)",
    )
    parser.add_argument(
        "--skip-top",
        type=_non_negative_int,
        metavar="N",
        help="map the N most frequent ids to OOV (default: 0)",
    )


# Options that define the training; with --resume they come from the run's config.json.
_TRAINING_OPTIONS = (
    "method", "epochs", "batch_size", "max_len", "lr", "lr_halve_at", "seed", "deterministic",
    "patience", "tensorboard", "xla", "model", "num_words", "skip_top", "steps_per_execution",
    "precision", "xla_optimizer",
)  # fmt: skip


def _add_training_options(parser: argparse.ArgumentParser, *, epochs_default: int = 10) -> None:
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=_positive_int, help=f"default: {epochs_default}")
    parser.set_defaults(epochs_default=epochs_default)
    parser.add_argument("--batch-size", type=_positive_int, help=f"default: {defaults.batch_size}")
    parser.add_argument(
        "--max-len",
        type=_positive_int,
        help=f"pad/truncate wires to this many ids (default: {DataConfig().max_len})",
    )
    parser.add_argument(
        "--lr",
        type=_positive_float,
        help=f"Nadam learning rate (default: {defaults.learning_rate})",
    )
    parser.add_argument(
        "--lr-halve-at",
        type=_positive_int,
        metavar="EPOCH",
        help="halve the learning rate once, at the start of this 1-based epoch "
        "(the tutorial's batch method used 5; default: never)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        help="seed Python, NumPy, TensorFlow and the shuffle (default: random, "
        "recorded in config.json)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="also turn on TensorFlow op determinism: with --seed, runs repeat bit for bit",
    )
    parser.add_argument(
        "--patience",
        type=_positive_int,
        metavar="N",
        help="stop early after N epochs without a better val_loss (default: never)",
    )
    parser.add_argument(
        "--xla",
        action="store_true",
        default=None,
        help="compile the training steps with XLA (every method alike)",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=_steps_per_execution,
        metavar="N|epoch",
        help="run N training steps per call, as fit's steps_per_execution (the GradientTape "
        "loop runs them in one graph; train_on_batch still calls once per batch): less Python "
        "per step, but progress, batch callbacks and Ctrl-C act every N steps. N must divide "
        "the steps of an epoch; 'epoch' = whole epochs "
        f"(default: {defaults.steps_per_execution})",
    )
    parser.add_argument(
        "--xla-optimizer",
        action="store_true",
        default=None,
        help="run Nadam's update as one XLA-compiled function instead of ~175 small ops per "
        "step (every method alike; the model's own ops stay on TensorFlow's kernels)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="float32, or mixed_bfloat16: bfloat16 arithmetic with float32 weights, faster on "
        "CPUs with AMX/AVX512-BF16 and Ampere+ GPUs, slower elsewhere "
        f"(default: {defaults.precision})",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard logs to RUN_DIR/tensorboard (view: tensorboard --logdir RUN_DIR)",
    )
    parser.add_argument("--model", help="model preset (default: cnn)")
    _add_data_options(parser)


def _add_last_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--last", action="store_true", help="the last epoch's model instead of the best one"
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors (a run's train.log still gets it all)",
    )
    devices = parser.add_mutually_exclusive_group()
    devices.add_argument(
        "--gpu",
        type=int,
        metavar="N",
        help="train on GPU N only, with memory growth (default: first GPU)",
    )
    devices.add_argument("--cpu", action="store_true", help="hide all GPUs")
    parser.add_argument(
        "--gpu-memory-limit",
        type=_positive_int,
        metavar="MB",
        help="cap the GPU's memory at MB instead of memory growth",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=_non_negative_int,
        metavar="N",
        help="threads one TensorFlow op may use (default: 0 = TensorFlow's choice)",
    )
    parser.add_argument(
        "--inter-op-threads",
        type=_non_negative_int,
        metavar="N",
        help="TensorFlow ops that may run at once (default: 0 = TensorFlow's choice)",
    )


def _index_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU indices like 0,1, got {text!r}") from None


def _worker_list(text: str) -> tuple[str, ...]:
    workers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not workers or any(not w.rpartition(":")[2].isdigit() or ":" not in w for w in workers):
        raise argparse.ArgumentTypeError(f"expected host:port,host:port,..., got {text!r}")
    return workers


def _add_distribute_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "distribution (tf.distribute; --batch-size stays the global batch)"
    )
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="default: one device; mirrored: MirroredStrategy over this machine's --gpus (or "
        "--cpu-devices); multiworker: MultiWorkerMirroredStrategy over --workers "
        "(or $TF_CONFIG), worker 0 writes the run directory",
    )
    group.add_argument(
        "--gpus",
        type=_index_list,
        metavar="I,J",
        help="GPUs to mirror over, with memory growth (default: all)",
    )
    group.add_argument(
        "--cpu-devices",
        type=_positive_int,
        metavar="N",
        help="mirror over N logical CPU devices (splits the CPU: for testing without GPUs)",
    )
    group.add_argument(
        "--workers",
        type=_worker_list,
        metavar="HOST:PORT,...",
        help="every worker's address, worker 0 (the chief) first; the same list on each worker",
    )
    group.add_argument(
        "--task-index",
        type=_non_negative_int,
        metavar="I",
        help="this worker's position in --workers",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``trainways`` argument parser."""
    parser = _Parser(
        prog="trainways",
        description="Train a Keras Reuters topic classifier with Model.fit, a train_on_batch "
        "loop or a GradientTape loop, behind one configuration.",
    )
    parser.add_argument("--version", action="version", version=f"trainways {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a model and write a run directory")
    train.add_argument(
        "--method",
        choices=METHODS,
        help="fit: Model.fit; batch: train_on_batch loop; loop: GradientTape loop (default: fit)",
    )
    _add_training_options(train)
    train.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory (default: runs/<time>-<method>)"
    )
    train.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out directory")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run from its last complete epoch, with its own config",
    )
    _add_run_options(train)
    _add_distribute_options(train)

    agree = commands.add_parser(
        "agree",
        help="train the three methods under one config and compare them",
        description="Train fit, batch and loop from the same seed with op determinism; print "
        "the largest weight difference per variable after epoch 1 and the per-epoch metric "
        "differences; exit 1 when they exceed 1e-5 (weights) or 0.005 (val_accuracy).",
    )
    _add_training_options(agree, epochs_default=1)
    agree.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    _add_run_options(agree)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's model on the test split")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--data", metavar="PATH", help="where to read the data now (default: as the run did)"
    )
    _add_last_option(evaluate)

    predict = commands.add_parser("predict", help="most likely topics of a newswire text")
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    predict.add_argument("text", nargs="*", metavar="TEXT", help="the text (quote it)")
    predict.add_argument(
        "--file", type=Path, metavar="FILE", help="one wire per line; - reads standard input"
    )
    predict.add_argument("--top-k", type=_positive_int, default=5, help="default: 5")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _add_last_option(predict)

    compare = commands.add_parser(
        "compare",
        help="train the methods one after another and write a side-by-side report",
        description="Train each method under one config and seed into DIR/<method>, then write "
        "DIR/report.md and a self-contained DIR/report.html with a table, curves and the "
        "agreement figures.",
    )
    compare.add_argument(
        "--methods",
        type=_method_list,
        help="comma-separated subset, e.g. fit,loop (default: fit,batch,loop)",
    )
    _add_training_options(compare)
    compare.add_argument(
        "--tutorial",
        action="store_true",
        help="the tutorial chapter's settings: 10 epochs, LR halved at epoch 5 for batch only",
    )
    compare.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="comparison directory (default: runs/<time>-compare)",
    )
    compare.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out")
    compare.add_argument(
        "--resume", type=Path, metavar="DIR", help="continue an interrupted comparison"
    )
    _add_run_options(compare)

    export = commands.add_parser(
        "export", help="write a SavedModel that classifies raw text (for TensorFlow Serving)"
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("out", type=Path, metavar="OUT", help="directory to create")
    _add_last_option(export)

    data = commands.add_parser("data", help="the Reuters data")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    info = data_commands.add_parser("info", help="where the data comes from and its statistics")
    _add_data_options(info)
    return parser


def _given(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _given_training_options(args: argparse.Namespace) -> list[str]:
    """The training options given on the command line (refused with ``--resume``)."""
    return [f"--{n.replace('_', '-')}" for n in _TRAINING_OPTIONS if _given(args, n) is not None]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Turn ``train`` / ``agree`` arguments into a validated configuration (seed resolved).

    Options left out take the dataclasses' defaults, so those stay the one source of truth.
    """

    def pick(name: str, default: Any) -> Any:
        value = _given(args, name)
        return default if value is None else value

    data, train = DataConfig(), TrainConfig()
    source = _given(args, "data")
    return RunConfig(
        data=DataConfig(
            # Absolute, so that evaluate and --resume find it from any directory.
            source=str(Path(source).expanduser().resolve()) if source else None,
            num_words=pick("num_words", data.num_words),
            skip_top=pick("skip_top", data.skip_top),
            max_len=pick("max_len", data.max_len),
        ),
        model=ModelConfig(preset=pick("model", ModelConfig().preset)),
        train=TrainConfig(
            method=pick("method", train.method),
            epochs=pick("epochs", args.epochs_default),
            batch_size=pick("batch_size", train.batch_size),
            learning_rate=pick("lr", train.learning_rate),
            lr_halve_at=pick("lr_halve_at", train.lr_halve_at),
            seed=pick("seed", secrets.randbelow(2**31)),
            deterministic=pick("deterministic", train.deterministic),
            patience=pick("patience", train.patience),
            tensorboard=pick("tensorboard", train.tensorboard),
            jit_compile=pick("xla", train.jit_compile),
            steps_per_execution=pick("steps_per_execution", train.steps_per_execution),
            precision=pick("precision", train.precision),
            xla_optimizer=pick("xla_optimizer", train.xla_optimizer),
        ),
        device=_device_config(args),
    )


def _device_config(args: argparse.Namespace, base: DeviceConfig | None = None) -> DeviceConfig:
    """The device options given, over ``base`` (a resumed run's saved ones) or the defaults."""
    base = base or DeviceConfig()
    if args.cpu or any(_given(args, n) is not None for n in ("gpu", "gpu_memory_limit")):
        # A new single-device choice replaces the old one rather than mixing with it.
        base = replace(base, gpu=None, gpu_memory_limit=None, cpu=False)
    changes = {name: _given(args, name) for name in _DEVICE_OPTIONS}
    changes = {name: value for name, value in changes.items() if value is not None}
    if args.cpu:
        changes["cpu"] = True
    return replace(base, **changes)


def _quiet_tensorflow() -> None:
    # Hides TensorFlow's C++ info and warning lines while training (tf.data's partial-cache
    # warning when fit builds the model, for one). The few lines TF prints before its logging
    # is initialised cannot be silenced this way.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _setup_logging(log_file: Path | None, *, quiet: bool) -> None:
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    for handler in list(LOG.handlers):
        LOG.removeHandler(handler)
        handler.close()
    if not quiet:
        LOG.addHandler(logging.StreamHandler(sys.stdout))
    if log_file is not None:
        LOG.addHandler(logging.FileHandler(log_file, encoding="utf-8"))


def _load_data(config: DataConfig) -> Any:
    from trainways.data import load_reuters

    return load_reuters(config.source, num_words=config.num_words, skip_top=config.skip_top)


def _check_against_data(config: RunConfig, reuters: Any) -> None:
    """Settings that depend on the data's size, checked before anything is written."""
    from trainways.data import steps_per_epoch

    steps = steps_per_epoch(len(reuters.y_train), config.train.batch_size)
    resolve_steps_per_execution(config.train.steps_per_execution, steps)


def cmd_train(args: argparse.Namespace) -> int:
    """``trainways train``: train one method (or resume a run) and write its run directory."""
    if args.resume is not None:
        return _resume(args)
    config = config_from_args(args)
    # Data first: a bad --data fails before any run directory exists.
    reuters = _load_data(config.data)
    _check_against_data(config, reuters)
    if not _chief(config):
        return _run_as_worker(config, reuters, args)
    out = rundir.prepare(
        args.out or rundir.default_run_dir(config.train.method), overwrite=args.overwrite
    )
    rundir.write_json(out / rundir.CONFIG, config.to_dict())
    rundir.set_status(out, rundir.RUNNING)
    _setup_logging(out / rundir.LOG, quiet=args.quiet)
    return _run(out, config, reuters, args)


def _chief(config: RunConfig) -> bool:
    from trainways.devices import is_chief

    return is_chief(config.device)


_DEVICE_OPTIONS = (
    "gpu", "gpu_memory_limit", "intra_op_threads", "inter_op_threads", "strategy", "gpus",
    "cpu_devices", "workers", "task_index",
)  # fmt: skip


def _resume(args: argparse.Namespace) -> int:
    given = _given_training_options(args)
    if args.out is not None or args.overwrite:
        given.append("--out/--overwrite")
    if given:
        raise UsageError(f"--resume continues with the run's own config: drop {', '.join(given)}")
    run = args.resume
    status = rundir.require_resumable(run)
    config = RunConfig.from_dict(rundir.read_json(run / rundir.CONFIG))
    if args.data:  # the same data, moved: only its location may change
        config = replace(config, data=replace(config.data, source=str(Path(args.data).resolve())))
    if args.cpu or any(_given(args, name) is not None for name in _DEVICE_OPTIONS):
        config = replace(config, device=_device_config(args, base=config.device))
    if (
        config.device.strategy == "multiworker"
        and _given(args, "task_index") is None
        and "TF_CONFIG" not in os.environ
    ):
        raise UsageError(
            "resuming a multiworker run: pass this worker's --workers and --task-index "
            "(or set $TF_CONFIG), on every worker"
        )
    reuters = _load_data(config.data)
    from trainways.checkpoint import load_checkpoint

    if not _chief(config):
        # Reads the chief's checkpoint (the run directory must be visible to every worker);
        # writes only to its own scratch directory.
        latest = load_checkpoint(run, warn=lambda message: print(message, file=sys.stderr))
        return _run_as_worker(config, reuters, args, resume_from=latest)
    _setup_logging(run / rundir.LOG, quiet=args.quiet)
    latest = load_checkpoint(run, warn=LOG.warning)
    if latest is None:
        LOG.info("no complete epoch in %s (it was %s): starting over", run, status["state"])
    return _run(run, config, reuters, args, resume_from=latest)


def _run_as_worker(
    config: RunConfig, reuters: Any, args: argparse.Namespace, resume_from: Any = None
) -> int:
    """Train as a non-chief worker: in step with the chief, writing only to a scratch directory.

    Every worker must run the same callbacks (they read metrics, which are collective under
    MultiWorkerMirroredStrategy), so a worker writes what the chief writes, but to a
    temporary directory that is removed when it exits.
    """
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="trainways-worker-"))
    try:
        rundir.write_json(scratch / rundir.CONFIG, config.to_dict())
        rundir.set_status(scratch, rundir.RUNNING)
        _setup_logging(scratch / rundir.LOG, quiet=args.quiet)
        LOG.info("not the chief: the run directory is the chief's; scratch files in %s", scratch)
        return _run(scratch, config, reuters, args, resume_from=resume_from)
    finally:
        _setup_logging(None, quiet=args.quiet)  # closes the log file before it is removed
        shutil.rmtree(scratch, ignore_errors=True)


def _run(
    out: Path, config: RunConfig, reuters: Any, args: argparse.Namespace, resume_from: Any = None
) -> int:
    try:
        from trainways.devices import make_strategy
        from trainways.run import run_training

        devices = make_strategy(config.device)
        return run_training(
            out, config, reuters, devices, quiet=args.quiet, resume_from=resume_from
        )
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        rundir.set_status(out, rundir.INTERRUPTED, resume=rundir.resume_command(out))
        LOG.info("interrupted; resume with: %s", rundir.resume_command(out))
        return EXIT_INTERRUPTED
    except BaseException as error:
        rundir.set_status(out, rundir.FAILED, error=f"{type(error).__name__}: {error}")
        raise


def cmd_agree(args: argparse.Namespace) -> int:
    """``trainways agree``: train the three methods under one config and compare them."""
    config = config_from_args(args)
    reuters = _load_data(config.data)
    _check_against_data(config, reuters)
    _setup_logging(None, quiet=args.quiet)
    from trainways.agreement import format_agreement
    from trainways.devices import configure_devices
    from trainways.run import measure_agreement

    LOG.info("device: %s", configure_devices(config.device))
    LOG.info("data:   %s", reuters.source)
    agreement, histories = measure_agreement(config, reuters)
    print(format_agreement(agreement))
    if args.json:
        rundir.write_json(
            args.json,
            {"config": config.to_dict(), **agreement.to_dict(), "histories": histories},
        )
    return 0 if agreement.ok else 1


def _load_run_model(run_dir: Path, *, last: bool) -> tuple[Any, Path]:
    """The run's best-epoch model (or its last with ``last``), compiled as it was trained."""
    rundir.require_completed(run_dir)
    _quiet_tensorflow()
    import keras

    path = run_dir / (
        rundir.MODEL if last or not (run_dir / rundir.BEST).is_file() else rundir.BEST
    )
    try:
        return keras.models.load_model(path), path
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot load the model {path}: {error}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``trainways evaluate RUN_DIR``: the model's test-split metrics, overall and by topic."""
    model, model_path = _load_run_model(args.run_dir, last=args.last)
    config = RunConfig.from_dict(rundir.read_json(args.run_dir / rundir.CONFIG))
    data_config = config.data
    if args.data:
        data_config = replace(data_config, source=str(Path(args.data).resolve()))
    reuters = _load_data(data_config)
    from trainways.data import make_dataset, pad
    from trainways.report import classification_summary, plot_confusion_matrix

    test = make_dataset(
        pad(reuters.x_test, data_config.max_len),
        reuters.y_test,
        batch_size=config.train.batch_size,
        shuffle=False,
    )
    loss = float(model.evaluate(test, return_dict=True, verbose=0)["loss"])
    probabilities = model.predict(test, verbose=0)
    summary = classification_summary(reuters.y_test, probabilities, reuters.topics)
    payload = {
        "model": str(model_path),
        "data": reuters.source,
        "test_wires": len(reuters.y_test),
        "loss": loss,
        **summary,
    }
    rundir.write_json(args.run_dir / rundir.EVALUATION, payload)
    for suffix in ("png", "svg"):
        plot_confusion_matrix(
            summary["confusion_matrix"],
            reuters.topics,
            args.run_dir / f"{rundir.CONFUSION}.{suffix}",
        )
    print(f"{model_path.name} on the test split of {reuters.source}: {len(reuters.y_test)} wires")
    for key in ("loss", "accuracy", "top5_accuracy", "macro_f1", "weighted_f1"):
        print(f"  {key:14s} {payload[key]:.4f}")
    print(f"  {'topic':<16s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}")
    by_support = sorted(summary["per_topic"].items(), key=lambda item: -item[1]["support"])
    for topic, figures in by_support:
        print(
            f"  {topic:<16s} {figures['precision']:>9.3f} {figures['recall']:>7.3f} "
            f"{figures['f1']:>7.3f} {figures['support']:>8d}"
        )
    print(f"written: {rundir.EVALUATION}, {rundir.CONFUSION}.png/.svg in {args.run_dir}")
    return 0


def _texts(args: argparse.Namespace) -> list[str]:
    if args.file is not None and args.text:
        raise UsageError("give the text either as arguments or with --file, not both")
    if args.file is None:
        texts = [" ".join(args.text)]
    else:
        try:
            handle = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
            with handle:
                texts = [line.rstrip("\n") for line in handle if line.strip()]
        except OSError as error:
            raise UsageError(f"cannot read --file {args.file}: {error.strerror or error}") from None
    if not any(text.strip() for text in texts):
        raise UsageError("no text to classify: give a newswire text or --file FILE")
    return texts


def cmd_predict(args: argparse.Namespace) -> int:
    """``trainways predict RUN_DIR TEXT...``: the top-k topics of each text, with probabilities."""
    from trainways.data import Reuters, pad

    texts = _texts(args)
    model, _ = _load_run_model(args.run_dir, last=args.last)
    state = rundir.read_json(args.run_dir / rundir.ENCODER)
    encoder = Reuters.from_encoder_state(state, source=str(args.run_dir))
    specials = (state["start_char"], state["oov_char"])
    encoded = [encoder.encode(text) for text in texts]
    for text, ids in zip(texts, encoded, strict=True):
        if not any(i not in specials for i in ids):
            raise UsageError(
                f"no word of {text[:60]!r} is in the model's vocabulary: give English newswire text"
            )
    probabilities = model.predict(pad(encoded, state["max_len"]), verbose=0)
    results = []
    for text, row in zip(texts, probabilities, strict=True):
        order = np.argsort(row)[::-1][: args.top_k]
        results.append(
            {
                "text": text,
                "topics": [
                    {"topic": encoder.topics[i], "probability": float(row[i])} for i in order
                ],
            }
        )
    if args.json:
        print(json.dumps(results if args.file is not None else results[0], indent=2))
        return 0
    for number, result in enumerate(results):
        if len(results) > 1:
            print(f"{'' if number == 0 else chr(10)}[{number + 1}] {result['text'][:70]}")
        for rank, topic in enumerate(result["topics"], 1):
            print(f"{rank}. {topic['topic']:<16s} {topic['probability']:.4f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``trainways compare``: the methods side by side, with a report."""
    from trainways.compare import load_comparison_state, run_comparison

    if args.resume is not None:
        given = _given_training_options(args)
        if args.methods or args.tutorial or args.out is not None:
            given.append("--methods/--tutorial/--out")
        if given:
            raise UsageError(
                "--resume continues with the comparison's own settings: drop " + ", ".join(given)
            )
        out = args.resume
        state = load_comparison_state(out)
        config = RunConfig.from_dict(state["config"])
        methods, tutorial = tuple(state["methods"]), bool(state["tutorial"])
    else:
        config = config_from_args(args)
        methods, tutorial = args.methods or METHODS, args.tutorial
        _load_data(config.data)  # a bad --data fails here, before any directory exists
        out = rundir.prepare(
            args.out or rundir.default_run_dir("compare"), overwrite=args.overwrite
        )
    _setup_logging(None, quiet=args.quiet)
    return run_comparison(out, config, methods, tutorial=tutorial, log=LOG.info, quiet=args.quiet)


def cmd_export(args: argparse.Namespace) -> int:
    """``trainways export RUN_DIR OUT``: a SavedModel serving raw text → topic probabilities."""
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise UsageError(f"{args.out} exists and is not empty: choose a new directory")
    model, model_path = _load_run_model(args.run_dir, last=args.last)
    state = rundir.read_json(args.run_dir / rundir.ENCODER)
    from trainways.export import SIGNATURE, export_text_model

    export_text_model(model, state, args.out)
    print(
        f"exported {model_path} to {args.out} (signature '{SIGNATURE}': strings -> "
        f"{len(state['topics'])} topic probabilities)"
    )
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    """``trainways data info``: where the data comes from and its statistics."""
    from trainways.data import describe

    config = DataConfig(source=args.data, num_words=args.num_words, skip_top=args.skip_top or 0)
    stats = describe(_load_data(config))
    print(f"source:      {stats['source']}")
    print(f"wires:       {stats['wires']:,} ({stats['train']:,} train / {stats['test']:,} test)")
    print(f"topics:      {stats['num_topics']}")
    print(
        f"vocabulary:  {stats['vocabulary']:,} words; embedding input size {stats['vocab_size']:,}"
    )
    print(
        f"length:      min {stats['length_min']}, median {stats['length_median']:.0f}, "
        f"mean {stats['length_mean']:.1f}, max {stats['length_max']}"
    )
    print("top topics:  label topic            train  test")
    for topic in stats["top_topics"]:
        print(
            f"             {topic['label']:>5} {topic['topic']:<16s} {topic['train']:>5} "
            f"{topic['test']:>5}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainways`` console script; returns the exit status."""
    from trainways.data import DataError

    _quiet_tensorflow()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return int(stop.code or 0)
    handlers = {
        "train": cmd_train,
        "agree": cmd_agree,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "export": cmd_export,
        "compare": cmd_compare,
        "data": cmd_data_info,
    }
    try:
        return handlers[args.command](args)
    except (UsageError, ConfigError, DataError, rundir.RunDirError) as error:
        print(f"trainways: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("trainways: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
