"""``trainways`` command line: parse, call the library, print. Nothing else.

The training options come from the option table in :mod:`trainways.config`; a run's life cycle
is :mod:`trainways.run`'s, inference :mod:`trainways.inference`'s, the comparison
:mod:`trainways.compare`'s. TensorFlow is imported only by the commands that train or run a
model, so ``--help`` and ``trainways data info`` answer quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from trainways import __version__, rundir
from trainways.config import (
    METHODS,
    ConfigError,
    DataConfig,
    DeviceConfig,
    RunConfig,
    apply_options,
    flags_of,
    options,
)
from trainways.stops import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE

_GROUPS = {
    "data": "data",
    "model": "model",
    "training": "training",
    "speed": "speed (each acts on all three methods alike)",
    "output": "output",
    "devices": "devices",
    "distribution": "distribution (tf.distribute; --batch-size stays the global batch)",
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr rather than usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _argparse_type(parse: Any) -> Any:
    """A table parser as an argparse ``type``: its ValueError becomes argparse's one-line error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _add_config_options(
    parser: argparse.ArgumentParser, *, groups: Sequence[str], skip: Sequence[str] = ()
) -> None:
    """Add the table's options of ``groups`` (every one but ``skip``), grouped for ``--help``."""
    sections = {name: parser.add_argument_group(_GROUPS[name]) for name in groups}
    for opt in options():
        if opt.group not in sections or opt.path in skip:
            continue
        kwargs: dict[str, Any] = {"dest": opt.dest, "help": opt.help, "default": None}
        if opt.parse is None:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=_argparse_type(opt.parse), metavar=opt.metavar)
            if opt.choices:
                kwargs["choices"] = opt.choices
                kwargs.pop("metavar")
            if opt.const is not None:
                kwargs.update(nargs="?", const=opt.const)
        sections[opt.group].add_argument(opt.flag, **kwargs)


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """``"section.key"`` → value of every table option given on the command line."""
    return {
        opt.path: getattr(args, opt.dest)
        for opt in options()
        if getattr(args, opt.dest, None) is not None
    }


def _add_last_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--last", action="store_true", help="the last epoch's model instead of the best one"
    )


def _add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors (a run's train.log still gets it all)",
    )
    _add_verbose_option(parser)


def _add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show TensorFlow's start-up messages (hidden by default; real errors always "
        "show)",
    )


def _method_list(text: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(
            f"expected distinct methods from {', '.join(METHODS)}, got {text!r}"
        )
    return methods


_TRAINING_GROUPS = ("data", "model", "training", "speed", "output", "devices")


def build_parser() -> argparse.ArgumentParser:
    """The ``trainways`` argument parser."""
    parser = _Parser(
        prog="trainways",
        description="Train a Keras Reuters topic classifier with Model.fit, a train_on_batch "
        "loop or a GradientTape loop, behind one configuration.",
    )
    parser.add_argument("--version", action="version", version=f"trainways {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )

    train = commands.add_parser("train", help="train a model and write a run directory")
    train.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="start from this configuration (a run's config.json); options given beside it "
        "override it",
    )
    _add_config_options(train, groups=(*_TRAINING_GROUPS, "distribution"))
    run = train.add_argument_group("run directory")
    run.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory (default: runs/<time>-<method>)"
    )
    run.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out directory")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run from its last complete epoch, with its own config "
        "(only --data, device and distribution options may change)",
    )
    _add_quiet_option(train)

    agree = commands.add_parser(
        "agree",
        help="train the three methods under one config and compare them",
        description="Train fit, batch and loop from the same seed with op determinism; print "
        "the largest weight difference per variable after epoch 1 and the per-epoch metric "
        "differences; exit 1 when they exceed 1e-5 (weights) or 0.005 (val_accuracy).",
    )
    # Not "output": agree writes no run directory, so --tensorboard has nowhere to go.
    _add_config_options(
        agree, groups=("data", "model", "training", "speed", "devices"), skip=("train.method",)
    )
    agree.set_defaults(epochs_default=1)
    agree.add_argument(
        "--backends",
        type=_backend_list,
        metavar="B,C,...",
        help="instead of the methods, compare Keras backends (tensorflow, jax, torch): fit on "
        "each, from the same initial weights and batches; the first step's loss must agree "
        "within 1e-5 and the last epoch's val_accuracy within 1 point",
    )
    agree.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    _add_quiet_option(agree)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's model on the test split")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--data", metavar="PATH", help="where to read the data now (default: as the run did)"
    )
    _add_last_option(evaluate)
    _add_verbose_option(evaluate)

    predict = commands.add_parser("predict", help="most likely topics of a newswire text")
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    predict.add_argument("text", nargs="*", metavar="TEXT", help="the text (quote it)")
    predict.add_argument(
        "--file", type=Path, metavar="FILE", help="one wire per line; - reads standard input"
    )
    predict.add_argument("--top-k", type=int, default=5, help="default: 5")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _add_last_option(predict)
    _add_verbose_option(predict)
    parser.predict_parser = predict  # type: ignore[attr-defined]  # for main's intermixed parse

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
    compare.add_argument(
        "--backends",
        type=_backend_list,
        metavar="B,C,...",
        help="instead of the methods, put Keras backends side by side (tensorflow, jax, torch), "
        "each training one method (--methods, default fit) from the same initial weights",
    )
    _add_config_options(compare, groups=_TRAINING_GROUPS, skip=("train.method",))
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
    _add_quiet_option(compare)

    export = commands.add_parser(
        "export", help="write a SavedModel that classifies raw text (for TensorFlow Serving)"
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("out", type=Path, metavar="OUT", help="directory to create")
    _add_last_option(export)
    _add_verbose_option(export)

    track = commands.add_parser(
        "track",
        help="log a finished run to MLflow (one trained untracked, or while MLflow was down)",
        description="Log RUN_DIR to MLflow as --mlflow would have: params, per-epoch metrics, "
        "artifacts, status. A run already logged there gets only the epochs it lacks.",
    )
    track.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    track.add_argument(
        "--mlflow",
        metavar="TRACKING_URI",
        help="where to log (default: the URI the run recorded, else $MLFLOW_TRACKING_URI, "
        "else sqlite:///<RUN_DIR's parent>/mlflow.db)",
    )

    baseline = commands.add_parser(
        "baseline", help="the bar to beat: TF-IDF + LinearSVC on the same split, scored"
    )
    _add_config_options(baseline, groups=("data",))
    baseline.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON"
    )

    data = commands.add_parser("data", help="the Reuters data")
    data_commands = data.add_subparsers(
        dest="data_command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    info = data_commands.add_parser("info", help="where the data comes from and its statistics")
    _add_config_options(info, groups=("data",), skip=("data.max_len",))
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The configuration the arguments describe: ``--config FILE`` (or the defaults), then the
    options given. The seed stays unset if not given: the run draws and records one."""
    config_file = getattr(args, "config", None)
    base = RunConfig.from_dict(rundir.read_json(config_file)) if config_file else RunConfig()
    given = _given_options(args)
    if "train.epochs" not in given and not config_file and hasattr(args, "epochs_default"):
        given["train.epochs"] = args.epochs_default
    if args.command in ("agree", "compare") and {"train.step", "train.test_step"} & set(given):
        # The step is the loop method's; agree and compare train fit and batch beside it.
        given["train.method"] = "loop"
    return apply_options(base, given)


def _refuse_with_resume(
    args: argparse.Namespace,
    others: Sequence[tuple[str, bool]],
    *,
    whose: str = "the run's own config",
    devices_may_change: bool = True,
) -> None:
    """Refuse options that ``--resume`` cannot honour: it continues with saved settings."""
    given = _given_options(args)
    fixed = [
        o.flag for o in options() if o.path in given and not (devices_may_change and o.resumable)
    ]
    fixed += [flag for flag, was_given in others if was_given]
    if fixed:
        raise UsageError(f"--resume continues with {whose}: drop {', '.join(fixed)}")


def cmd_train(args: argparse.Namespace) -> int:
    """``trainways train``: train one method (or resume a run) and write its run directory."""
    from trainways import run

    if args.resume is not None:
        others = [
            ("--out/--overwrite", args.out is not None or args.overwrite),
            ("--config", args.config is not None),
        ]
        _refuse_with_resume(args, others)
        return run.resume(args.resume, options=_given_options(args), quiet=args.quiet)
    return run.train(
        config_from_args(args), out=args.out, overwrite=args.overwrite, quiet=args.quiet
    )


def _backend_list(text: str) -> tuple[str, ...]:
    from trainways.backends import SUPPORTED

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SUPPORTED]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two or more of {', '.join(SUPPORTED)}, comma-separated, each once"
        )
    return names


def cmd_agree(args: argparse.Namespace) -> int:
    """``trainways agree``: train the three methods under one config and compare them."""
    from trainways import run
    from trainways.agreement import format_agreement
    from trainways.measure import agreement_config, measure

    config = agreement_config(run.with_backend(run.with_seed(config_from_args(args))))
    reuters = run.load_data(config.data)
    run.check(config, reuters)
    if args.json is not None:
        _require_writable(args.json)
    if args.backends:
        return _agree_backends(args, config, reuters)
    devices = run.make_devices(config)
    run.check_model(config, reuters, devices)
    run.configure_logging(None, quiet=args.quiet)
    run.LOG.info("device: %s", devices.description)
    run.LOG.info("data:   %s", reuters.source)
    agreement, histories = measure(config, reuters)
    print(f"seed: {config.train.seed} (op determinism on)")
    for role in ("step", "test_step"):
        if getattr(config.train, role):
            print(f"loop runs your {role.replace('_', ' ')} {getattr(config.train, role)}")
    print(format_agreement(agreement))
    if args.json:
        # What was trained: every method, deterministic; the config's method field means nothing.
        trained = config.to_dict()
        del trained["train"]["method"]
        rundir.write_json(
            args.json,
            {"config": trained, **agreement.to_dict(), "histories": histories},
        )
    return 0 if agreement.ok else 1


def _agree_backends(args: argparse.Namespace, config: RunConfig, reuters: Any) -> int:
    """``trainways agree --backends``: fit on each backend, from the same initial weights."""
    from trainways import run
    from trainways.agreement import format_backend_agreement
    from trainways.measure import BackendFailed, measure_backends

    if config.train.step or config.train.test_step:
        raise UsageError("--backends compares fit on each backend: drop --step / --test-step")
    config = replace(config, train=replace(config.train, method="fit"))
    run.check_model(config, reuters)
    run.configure_logging(None, quiet=args.quiet)
    work = Path(tempfile.mkdtemp(prefix="trainways-agree-"))
    try:
        agreement = measure_backends(config, reuters, args.backends, work, log=run.LOG.info)
    except BackendFailed as error:
        raise UsageError(str(error)) from None  # its log stays, in work
    shutil.rmtree(work)
    print(f"seed: {config.train.seed} (op determinism on)")
    print(format_backend_agreement(agreement, "fit"))
    if args.json:
        rundir.write_json(args.json, {"config": config.to_dict(), **agreement.to_dict()})
    return 0 if agreement.ok else 1


def _require_writable(path: Path) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: {parent} is not a writable directory")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``trainways evaluate RUN_DIR``: the model's test-split metrics, overall and by topic."""
    from trainways import inference

    figures = inference.evaluate(args.run_dir, data=args.data, last=args.last)
    print(f"{Path(figures['model']).name} on the test split of {figures['data']}: "
          f"{figures['test_wires']} wires")  # fmt: skip
    for key in ("loss", "accuracy", "top5_accuracy", "macro_f1", "weighted_f1"):
        print(f"  {key:14s} {figures[key]:.4f}")
    print(f"  {'topic':<16s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}")
    by_support = sorted(figures["per_topic"].items(), key=lambda item: -item[1]["support"])
    for topic, row in by_support:
        print(
            f"  {topic:<16s} {row['precision']:>9.3f} {row['recall']:>7.3f} "
            f"{row['f1']:>7.3f} {row['support']:>8d}"
        )
    print(f"written: {rundir.EVALUATION}, {rundir.CONFUSION}.png/.svg in {args.run_dir}")
    return 0


def _texts(args: argparse.Namespace) -> list[tuple[int | None, str]]:
    """``(line number or None, text)`` of each text to classify."""
    if args.file is not None and args.text:
        raise UsageError("give the text either as arguments or with --file, not both")
    if args.file is None:
        texts: list[tuple[int | None, str]] = [(None, " ".join(args.text))]
    else:
        try:
            handle = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
            with handle:
                texts = [
                    (number, line.rstrip("\n"))
                    for number, line in enumerate(handle, 1)
                    if line.strip()
                ]
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise UsageError(f"cannot read --file {args.file}: {reason}") from None
    if not any(text.strip() for _, text in texts):
        raise UsageError("no text to classify: give a newswire text or --file FILE")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    return texts


def cmd_predict(args: argparse.Namespace) -> int:
    """``trainways predict RUN_DIR TEXT...``: the top-k topics of each text, with probabilities.

    Exit status: 0 when every text was classified; 1 when some lines of ``--file`` had no known
    word (each is named on stderr, the others are classified); 2 when nothing could be.
    """
    from trainways import inference

    numbered = _texts(args)
    predictions = inference.predict(
        args.run_dir, [text for _, text in numbered], top_k=args.top_k, last=args.last
    )
    skipped = [(n, p) for (n, _), p in zip(numbered, predictions, strict=True) if p.problem]
    if len(skipped) == len(predictions):
        where = f"line {skipped[0][0]}: " if skipped[0][0] is not None else ""
        raise UsageError(where + skipped[0][1].problem + (
            f" (and {len(skipped) - 1} more line(s))" if len(skipped) > 1 else ""
        ))  # fmt: skip
    for number, prediction in skipped:
        print(f"trainways predict: line {number}: {prediction.problem}; skipped", file=sys.stderr)
    if args.json:
        results = [p.to_dict() for p in predictions]
        print(json.dumps(results if args.file is not None else results[0], indent=2))
        return 1 if skipped else 0
    for number, ((line, _), prediction) in enumerate(zip(numbered, predictions, strict=True)):
        if prediction.problem:
            continue
        if len(predictions) > 1:
            label = line if line is not None else number + 1  # a --file's line number
            print(f"{'' if number == 0 else chr(10)}[{label}] {prediction.text[:70]}")
        for rank, (topic, probability) in enumerate(prediction.topics, 1):
            print(f"{rank}. {topic:<16s} {probability:.4f}")
    return 1 if skipped else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``trainways compare``: the methods side by side, with a report."""
    from trainways import run, tracking
    from trainways.compare import load_comparison_state, run_comparison

    if args.resume is not None:
        given = bool(args.methods or args.backends or args.tutorial or args.out)
        others = [("--methods/--backends/--tutorial/--out", given)]
        _refuse_with_resume(
            args, others, whose="the comparison's own settings", devices_may_change=False
        )
        out = args.resume
        state = load_comparison_state(out)
        config = RunConfig.from_dict(state["config"])
        methods, tutorial = tuple(state["methods"]), bool(state["tutorial"])
        backends = tuple(state.get("backends") or ())
    else:
        config = run.with_backend(run.with_seed(config_from_args(args)))
        methods, tutorial = args.methods or METHODS, args.tutorial
        backends = args.backends or ()
        if backends:
            if (args.methods and len(args.methods) > 1) or tutorial:
                raise UsageError(
                    "--backends trains one method on each backend: give one --methods, "
                    "without --tutorial"
                )
            methods = args.methods or ("fit",)
        reuters = run.load_data(config.data)  # a bad --data fails here, before any directory
        run.check(config, reuters)
        run.check_model(config, reuters)  # in this process only: the children set devices
        out = Path(args.out or rundir.default_run_dir("compare"))
        # One store for the comparison and its children, beside the comparison directory.
        config = tracking.with_resolved_uri(config, out.parent)
        out = rundir.prepare(out, overwrite=args.overwrite)
    run.configure_logging(None, quiet=args.quiet)
    return run_comparison(
        out,
        config,
        methods,
        tutorial=tutorial,
        log=run.LOG.info,
        quiet=args.quiet,
        backends=backends,
    )


def cmd_track(args: argparse.Namespace) -> int:
    """``trainways track RUN_DIR``: log a finished run to MLflow after the fact."""
    from trainways import tracking

    uri, run_id, epochs = tracking.upload(args.run_dir, args.mlflow)
    print(f"{args.run_dir}: MLflow run {run_id} at {uri} ({epochs} epoch(s) logged now)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``trainways export RUN_DIR OUT``: a SavedModel serving raw text → topic probabilities."""
    from trainways import inference
    from trainways.export import SIGNATURE, export_run

    model_path = export_run(args.run_dir, args.out, last=args.last)
    topics = len(inference.encoder_state(args.run_dir)["topics"])
    print(
        f"exported {model_path} to {args.out} (signature '{SIGNATURE}': strings -> "
        f"{topics} topic probabilities)"
    )
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """``trainways baseline``: TF-IDF + LinearSVC fitted on the wires a run trains on, scored on
    those it validates on (the test split, or the carved validation wires), on the models'
    inputs."""
    from trainways.baseline import tfidf_svm

    config, reuters = _checked_data(args)
    if args.json is not None:
        _require_writable(args.json)
    result = tfidf_svm(reuters, max_len=config.max_len, validation_split=config.validation_split)
    figures = result.to_dict()
    print(
        f"{figures['model']}: accuracy {result.accuracy:.4f}, macro-F1 {result.macro_f1:.4f} on "
        f"{result.scored_wires:,} {result.scored_on} wires; fitted on "
        f"{result.train_wires:,} in {result.fit_seconds:.1f} s"
    )
    if args.json is not None:
        rundir.write_json(args.json, {"data": str(reuters.source), **figures})
        print(f"written: {args.json}")
    return 0


# Commands that never start Keras (nor TensorFlow): no backend to choose, answers at once.
_KERAS_FREE_COMMANDS = ("data", "baseline", "track")


def _checked_data(args: argparse.Namespace) -> tuple[DataConfig, Any]:
    """The data options given, and the data they load, refused as ``train`` refuses it (data
    that is not Keras's without ``--allow-other-data``). The data package alone: no TensorFlow."""
    from trainways.data import check_identity, load_reuters

    config = DataConfig(**{k.partition(".")[2]: v for k, v in _given_options(args).items()})
    reuters = load_reuters(config.source, num_words=config.num_words, skip_top=config.skip_top)
    check_identity(
        reuters.fingerprint, config.source or reuters.source, allow_other=config.allow_other_data
    )
    return config, reuters


def cmd_data_info(args: argparse.Namespace) -> int:
    """``trainways data info``: where the data comes from and its statistics."""
    from trainways.data import Fingerprint, describe

    # Refused like train refuses it, so that info never shows data a run would not take.
    _, reuters = _checked_data(args)
    stats = describe(reuters)
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
    if stats["fingerprint"] is not None:
        keras = stats["keras_dataset"]
        what = "the Keras Reuters dataset" if keras else "not the Keras Reuters dataset; allowed"
        print(f"fingerprint: {Fingerprint.from_dict(stats['fingerprint'])} ({what})")
    print("top topics:  label topic            train  test")
    for topic in stats["top_topics"]:
        print(
            f"             {topic['label']:>5} {topic['topic']:<16s} {topic['train']:>5} "
            f"{topic['test']:>5}"
        )
    return 0


def _quiet_tensorflow() -> None:
    # Hides TensorFlow's C++ info and warning lines while training (tf.data's partial-cache
    # warning when fit builds the model, for one). The lines TF prints before its logging is
    # initialised are caught by _start_backend_quietly.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# What TensorFlow and its CUDA probe print on every start, error or not, on a machine like this
# one: absl's preamble, info lines, the CPU-instruction note, a failed cuInit without a GPU.
_STARTUP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog|^I\d{4} |cpu_feature_guard|"
    r"^To enable the following instructions|cuInit|cuda drivers|cudart_stub|TensorRT|oneDNN"
)


@contextlib.contextmanager
def _startup_noise_filtered() -> Iterator[None]:
    """Catch what C++ code writes to file descriptor 2, then pass on all but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _STARTUP_NOISE.search(line):
                    print(line, file=sys.stderr)


def _start_backend_quietly() -> None:
    """Import the backend and let it probe its devices with the start-up noise filtered out."""
    with _startup_noise_filtered():
        from trainways.backends import current

        current().devices.probe()


def _devices_for(args: argparse.Namespace) -> DeviceConfig:
    """The device options a command asks for: those recorded in the run it resumes or the
    configuration file it reads, then the ones given (``--backend``, ``--gpu``, ``--cpu``...)."""
    given = {
        path: value for path, value in _given_options(args).items() if path.startswith("device.")
    }
    source = None
    if getattr(args, "resume", None) is not None:
        source = Path(args.resume) / rundir.CONFIG
    elif getattr(args, "config", None) is not None:
        source = Path(args.config)
    recorded = RunConfig()
    if source is not None and source.is_file():
        # A broken file: the command itself reports it.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            recorded = RunConfig.from_dict({"device": rundir.read_json(source).get("device", {})})
    return apply_options(recorded, given).device


def _config_error(error: ConfigError) -> str:
    flags = flags_of(error.keys)
    return f"{error} ({', '.join(flags)})" if flags else str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainways`` console script; returns the exit status."""
    from trainways.data import DataError
    from trainways.inference import InferenceError
    from trainways.tracking import TrackingError

    _quiet_tensorflow()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["predict"]:
            # Options anywhere, as people type them: predict RUN --top-k 3 "text".
            args = parser.predict_parser.parse_intermixed_args(
                argv[1:], namespace=argparse.Namespace(command="predict")
            )
        else:
            args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return int(stop.code or 0)
    prog = f"trainways {args.command}" + (" info" if args.command == "data" else "")
    keras_free = args.command in _KERAS_FREE_COMMANDS
    if not keras_free:
        try:
            from trainways.backends import select

            devices = _devices_for(args)
            select(devices.backend, devices)
        except ConfigError as error:
            print(f"{prog}: error: {_config_error(error)}", file=sys.stderr)
            return EXIT_USAGE
    if not keras_free and not getattr(args, "verbose", False):
        _start_backend_quietly()
    handlers = {
        "train": cmd_train,
        "agree": cmd_agree,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "export": cmd_export,
        "compare": cmd_compare,
        "data": cmd_data_info,
        "baseline": cmd_baseline,
        "track": cmd_track,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as error:
        print(f"{prog}: error: {_config_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, DataError, InferenceError, rundir.RunDirError, TrackingError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`trainways data info | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
