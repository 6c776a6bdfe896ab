"""The ``trainways`` argument parser, built from the option table of :mod:`trainways.config`.

:func:`build_parser` makes the parser of every subcommand (``--help`` groups the table's options
as the table does), :func:`given_options` reads back the table's options that were given, and
:func:`config_from_args` is the configuration the arguments describe. Imports neither Keras nor
TensorFlow, so ``--help`` answers at once. ``docs/cli.md``'s usage blocks are checked against it
(``tests/test_cli_docs.py``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainways import __version__, rundir
from trainways.config import METHODS, RunConfig, apply_options, options
from trainways.stops import EXIT_USAGE

_GROUPS = {
    "data": "data",
    "model": "model",
    "training": "training",
    "speed": "speed (each acts on all three methods alike)",
    "output": "output",
    "devices": "devices",
    "distribution": "distribution (tf.distribute; --batch-size stays the global batch)",
}


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


def given_options(args: argparse.Namespace) -> dict[str, Any]:
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


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    """``--last`` and ``--trust-code``, the options of every command that loads a run's model."""
    _add_last_option(parser)
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="allow loading the model to run code the run carries (its --model builder file, a "
        "Lambda layer); refused without it, as a run directory may come from anyone",
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
    _add_inference_options(evaluate)
    _add_verbose_option(evaluate)

    predict = commands.add_parser("predict", help="most likely topics of a newswire text")
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    predict.add_argument("text", nargs="*", metavar="TEXT", help="the text (quote it)")
    predict.add_argument(
        "--file", type=Path, metavar="FILE", help="one wire per line; - reads standard input"
    )
    predict.add_argument("--top-k", type=int, default=5, help="default: 5")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _add_inference_options(predict)
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
    _add_inference_options(export)
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
    given = given_options(args)
    if "train.epochs" not in given and not config_file and hasattr(args, "epochs_default"):
        given["train.epochs"] = args.epochs_default
    if args.command in ("agree", "compare") and {"train.step", "train.test_step"} & set(given):
        # The step is the loop method's; agree and compare train fit and batch beside it.
        given["train.method"] = "loop"
    return apply_options(base, given)


def _backend_list(text: str) -> tuple[str, ...]:
    from trainways.backends import SUPPORTED

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SUPPORTED]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two or more of {', '.join(SUPPORTED)}, comma-separated, each once"
        )
    return names
