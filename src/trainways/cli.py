"""``trainways`` command line: config → data → model → trainer → run directory.

TensorFlow is imported only by the commands that train or run a model, so ``--help`` and
``trainways data info`` answer quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from trainways import __version__, rundir
from trainways.config import (
    METHODS,
    ConfigError,
    DataConfig,
    DeviceConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


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
        type=int,
        default=0,
        metavar="N",
        help="map the N most frequent ids to OOV (default: 0)",
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
        default="fit",
        help="fit: Model.fit; batch: train_on_batch loop; loop: GradientTape loop (default: fit)",
    )
    train.add_argument("--epochs", type=_positive_int, default=10, help="default: 10")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    train.add_argument(
        "--max-len",
        type=_positive_int,
        default=300,
        help="pad/truncate wires to this many ids (default: 300)",
    )
    train.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="Nadam learning rate (default: 0.001)"
    )
    train.add_argument(
        "--lr-halve-at",
        type=_positive_int,
        metavar="EPOCH",
        help="halve the learning rate once, at the start of this 1-based epoch "
        "(the tutorial's batch method used 5; default: never)",
    )
    train.add_argument(
        "--seed",
        type=int,
        help="seed Python, NumPy, TensorFlow and the shuffle (default: random, "
        "recorded in config.json)",
    )
    train.add_argument(
        "--xla",
        action="store_true",
        help="compile the training steps with XLA (every method alike)",
    )
    train.add_argument("--model", default="cnn", help="model preset (default: cnn)")
    _add_data_options(train)
    train.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory (default: runs/<time>-<method>)"
    )
    train.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out directory")
    train.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors (the run's train.log still gets it all)",
    )
    devices = train.add_mutually_exclusive_group()
    devices.add_argument(
        "--gpu",
        type=int,
        metavar="N",
        help="train on GPU N only, with memory growth (default: first GPU)",
    )
    devices.add_argument("--cpu", action="store_true", help="hide all GPUs")
    train.add_argument(
        "--gpu-memory-limit",
        type=_positive_int,
        metavar="MB",
        help="cap the GPU's memory at MB instead of memory growth",
    )

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's model on the test split")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--data", metavar="PATH", help="where to read the data now (default: as the run did)"
    )

    predict = commands.add_parser("predict", help="most likely topics of a newswire text")
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    predict.add_argument("text", nargs="+", metavar="TEXT", help="the text (quote it)")
    predict.add_argument("--top-k", type=_positive_int, default=5, help="default: 5")

    data = commands.add_parser("data", help="the Reuters data")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    info = data_commands.add_parser("info", help="where the data comes from and its statistics")
    _add_data_options(info)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Turn ``trainways train`` arguments into a validated configuration (seed resolved)."""
    return RunConfig(
        data=DataConfig(
            source=args.data, num_words=args.num_words, skip_top=args.skip_top, max_len=args.max_len
        ),
        model=ModelConfig(preset=args.model),
        train=TrainConfig(
            method=args.method,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            lr_halve_at=args.lr_halve_at,
            seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
            jit_compile=args.xla,
        ),
        device=DeviceConfig(gpu=args.gpu, gpu_memory_limit=args.gpu_memory_limit, cpu=args.cpu),
    )


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise for a CLI user.
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


def cmd_train(args: argparse.Namespace) -> int:
    """``trainways train``: train one method and write its run directory."""
    config = config_from_args(args)
    # Data first: a bad --data fails before any run directory exists.
    reuters = _load_data(config.data)
    out = rundir.prepare(
        args.out or rundir.default_run_dir(config.train.method), overwrite=args.overwrite
    )
    _setup_logging(out / rundir.LOG, quiet=args.quiet)
    rundir.set_status(out, rundir.RUNNING)
    rundir.write_json(out / rundir.CONFIG, config.to_dict())
    try:
        return _train_into(out, config, reuters, quiet=args.quiet)
    except KeyboardInterrupt:
        rundir.set_status(out, rundir.INTERRUPTED)
        LOG.info("interrupted; the epochs finished so far are in %s", out / rundir.HISTORY)
        return EXIT_INTERRUPTED
    except BaseException as error:
        rundir.set_status(out, rundir.FAILED, error=f"{type(error).__name__}: {error}")
        raise


def _train_into(out: Path, config: RunConfig, reuters: Any, *, quiet: bool) -> int:
    _quiet_tensorflow()
    import keras

    from trainways import callbacks as tw_callbacks
    from trainways.data import make_dataset, pad
    from trainways.devices import configure_devices
    from trainways.model import build_loss, build_metrics, build_model, build_optimizer
    from trainways.report import summarize_history
    from trainways.trainers import TrainData, TrainSpec, get_trainer

    device = configure_devices(config.device)
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(
        config.model,
        vocab_size=reuters.vocab_size,
        num_classes=reuters.num_classes,
        max_len=config.data.max_len,
    )
    model.summary(print_fn=lambda text, **_: LOG.info(text.rstrip()))
    LOG.info("device: %s", device)
    LOG.info("data:   %s", reuters.source)
    LOG.info(
        "method: %s, %d epochs, batch %d, lr %g, seed %d, run directory %s",
        config.train.method,
        config.train.epochs,
        config.train.batch_size,
        config.train.learning_rate,
        config.train.seed,
        out,
    )

    data = TrainData(
        make_dataset(
            pad(reuters.x_train, config.data.max_len),
            reuters.y_train,
            batch_size=config.train.batch_size,
            shuffle=True,
            seed=config.train.seed,
        ),
        make_dataset(
            pad(reuters.x_test, config.data.max_len),
            reuters.y_test,
            batch_size=config.train.batch_size,
            shuffle=False,
        ),
    )
    spec = TrainSpec(
        epochs=config.train.epochs,
        loss=build_loss(),
        optimizer=build_optimizer(config.train.learning_rate),
        metrics=build_metrics,
        jit_compile=config.train.jit_compile,
    )
    timer = tw_callbacks.EpochLogger()
    callbacks: list[keras.callbacks.Callback] = []
    if config.train.lr_halve_at:
        callbacks.append(tw_callbacks.HalveLearningRate(config.train.lr_halve_at))
    callbacks.append(timer)
    if not quiet and sys.stdout.isatty():
        callbacks.append(tw_callbacks.BatchProgress())
    callbacks.append(keras.callbacks.CSVLogger(str(out / rundir.HISTORY)))

    started = time.perf_counter()
    history = get_trainer(config.train.method)(model, data, spec, callbacks)
    summary = summarize_history(
        history.history, timer.epoch_seconds, train_seconds=time.perf_counter() - started
    )
    model.save(out / rundir.MODEL)
    rundir.write_json(
        out / rundir.ENCODER, {**reuters.encoder_state(), "max_len": config.data.max_len}
    )
    rundir.write_json(out / rundir.METRICS, summary)
    rundir.set_status(out, rundir.COMPLETED, device=device, data=reuters.source)
    best = summary["best"]
    LOG.info(
        "best val_accuracy %.4f at epoch %d; run saved in %s",
        best["val_accuracy"],
        best["epoch"],
        out,
    )
    return 0


def _load_run_model(run_dir: Path) -> Any:
    rundir.require_completed(run_dir)
    _quiet_tensorflow()
    import keras

    path = run_dir / rundir.MODEL
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot load the model {path}: {error}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``trainways evaluate RUN_DIR``: the saved model's metrics on the test split."""
    model = _load_run_model(args.run_dir)
    config = RunConfig.from_dict(rundir.read_json(args.run_dir / rundir.CONFIG))
    data_config = config.data
    if args.data:
        data_config = DataConfig(
            source=args.data,
            num_words=data_config.num_words,
            skip_top=data_config.skip_top,
            max_len=data_config.max_len,
        )
    reuters = _load_data(data_config)
    from trainways.data import make_dataset, pad

    test = make_dataset(
        pad(reuters.x_test, data_config.max_len),
        reuters.y_test,
        batch_size=config.train.batch_size,
        shuffle=False,
    )
    results = model.evaluate(test, return_dict=True, verbose=0)
    payload = {
        "data": reuters.source,
        "test_wires": len(reuters.y_test),
        **{k: float(v) for k, v in results.items()},
    }
    rundir.write_json(args.run_dir / "evaluation.json", payload)
    print(f"test split of {reuters.source}: {len(reuters.y_test)} wires")
    for key in ("loss", "accuracy", "top5_accuracy"):
        if key in results:
            print(f"  {key:14s} {float(results[key]):.4f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``trainways predict RUN_DIR TEXT``: the top-k topics with probabilities."""
    from trainways.data import Reuters, pad

    text = " ".join(args.text)
    model = _load_run_model(args.run_dir)
    state = rundir.read_json(args.run_dir / rundir.ENCODER)
    encoder = Reuters.from_encoder_state(state, source=str(args.run_dir))
    ids = encoder.encode(text)
    known = [i for i in ids if i not in (state["start_char"], state["oov_char"])]
    if not known:
        raise UsageError(
            f"no word of {text[:60]!r} is in the model's vocabulary: give English newswire text"
        )
    probabilities = model.predict(pad([ids], state["max_len"]), verbose=0)[0]
    order = np.argsort(probabilities)[::-1][: args.top_k]
    for rank, label in enumerate(order, 1):
        print(f"{rank}. {encoder.topics[label]:<16s} {probabilities[label]:.4f}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    """``trainways data info``: where the data comes from and its statistics."""
    from trainways.data import describe

    config = DataConfig(source=args.data, num_words=args.num_words, skip_top=args.skip_top)
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
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
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
