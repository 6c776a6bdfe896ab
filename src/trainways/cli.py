"""``trainways`` command line: parse, call the library, print. Nothing else.

The parser is :mod:`trainways.parser`'s, built from the option table in :mod:`trainways.config`;
a run's life cycle is :mod:`trainways.run`'s, inference :mod:`trainways.inference`'s, the
comparison :mod:`trainways.compare`'s, hiding TensorFlow's start-up noise
:mod:`trainways.quiet`'s. TensorFlow is imported only by the commands that train or run a model,
so ``--help`` and ``trainways data info`` answer quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainways import rundir
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
from trainways.files import SymlinkRefused
from trainways.parser import build_parser, config_from_args, given_options
from trainways.quiet import quiet_tensorflow, start_backend_quietly
from trainways.stops import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _refuse_with_resume(
    args: argparse.Namespace,
    others: Sequence[tuple[str, bool]],
    *,
    whose: str = "the run's own config",
    devices_may_change: bool = True,
) -> None:
    """Refuse options that ``--resume`` cannot honour: it continues with saved settings."""
    given = given_options(args)
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
        return run.resume(args.resume, options=given_options(args), quiet=args.quiet)
    return run.train(
        config_from_args(args), out=args.out, overwrite=args.overwrite, quiet=args.quiet
    )


def cmd_agree(args: argparse.Namespace) -> int:
    """``trainways agree``: train the three methods under one config and compare them."""
    from trainways.agreement import format_agreement
    from trainways.lifecycle import LOG, configure_logging
    from trainways.measure import agreement_config, measure
    from trainways.preflight import preflight

    config = agreement_config(config_from_args(args))
    if args.backends:
        _refuse_backends_with_own_data(config, "agree")
        if config.train.step or config.train.test_step:
            raise UsageError("--backends compares fit on each backend: drop --step / --test-step")
        config = replace(config, train=replace(config.train, method="fit"))
    # With --backends, each backend trains in a child process that sets its own devices up.
    prepared = preflight(config, devices=not args.backends)
    if args.json is not None:
        _require_writable(args.json)
    if args.backends:
        return _agree_backends(args, prepared.config, prepared.reuters)
    config, reuters, devices = prepared.config, prepared.reuters, prepared.devices
    configure_logging(None, quiet=args.quiet)
    LOG.info("device: %s", devices.description)
    LOG.info("data:   %s", reuters.source)
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
    from trainways.agreement import format_backend_agreement
    from trainways.lifecycle import LOG, configure_logging
    from trainways.measure import BackendFailed, measure_backends

    configure_logging(None, quiet=args.quiet)
    work = Path(tempfile.mkdtemp(prefix="trainways-agree-"))
    try:
        agreement = measure_backends(config, reuters, args.backends, work, log=LOG.info)
    except BackendFailed as error:
        raise UsageError(str(error)) from None  # its log stays, in work
    shutil.rmtree(work)
    print(f"seed: {config.train.seed} (op determinism on)")
    print(format_backend_agreement(agreement, "fit"))
    if args.json:
        rundir.write_json(args.json, {"config": config.to_dict(), **agreement.to_dict()})
    return 0 if agreement.ok else 1


def _refuse_backends_with_own_data(config: RunConfig, command: str) -> None:
    """``--backends`` starts every backend from one weights file with dense gradients: a
    Reuters preset's set-up, not supported for ``--data FILE.py:FUNCTION``."""
    if config.data.is_user_data:
        raise UsageError(
            f"{command} --backends is not supported with --data FILE.py:FUNCTION: compare the "
            f"methods on your data (trainways {command} without --backends)"
        )


def _require_writable(path: Path) -> None:
    """Refuse a ``--json`` file that could not be written once the work is done: a directory, a
    symbolic link, a file or a directory without write permission (checked before training, so
    that no figures are lost)."""
    path = Path(path)
    if path.is_symlink():
        raise UsageError(f"cannot write {path}: it is a symbolic link; give the file itself")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory; give a file path, {path}/x.json")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {path}: the file is not writable; give another path")
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: {parent} is not a writable directory")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``trainways evaluate RUN_DIR``: the model's test-split metrics, overall and by topic."""
    from trainways import inference

    figures = inference.evaluate(
        args.run_dir, data=args.data, last=args.last, trust_code=args.trust_code
    )
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
        texts = [(n, line) for n, line in enumerate(_file_lines(args.file), 1) if line.strip()]
    if not any(text.strip() for _, text in texts):
        raise UsageError("no text to classify: give a newswire text or --file FILE")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    return texts


def _file_lines(path: Path) -> list[str]:
    """The lines of ``--file`` (``-``: standard input), read the same way from both: as UTF-8,
    with bytes that are not UTF-8 read as U+FFFD and a warning naming their line, so that one
    bad byte costs at most a word of its line, not the whole file."""
    try:
        if str(path) == "-":
            buffer = getattr(sys.stdin, "buffer", None)
            data = buffer.read() if buffer is not None else sys.stdin.read().encode()
        else:
            data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read --file {path}: {error.strerror or error}") from None
    # Universal newlines, as a text file's lines are read.
    with io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as text:
        raw = [line.rstrip("\n") for line in text]
    lines = []
    for number, line in enumerate(raw, 1):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            print(
                f"trainways predict: line {number}: not UTF-8; its undecodable bytes are read "
                "as U+FFFD",
                file=sys.stderr,
            )
        lines.append(line)
    return lines


def cmd_predict(args: argparse.Namespace) -> int:
    """``trainways predict RUN_DIR TEXT...``: the top-k topics of each text, with probabilities.

    Exit status: 0 when every text was classified; 1 when some lines of ``--file`` had no known
    word (each is named on stderr, the others are classified); 2 when nothing could be.
    """
    from trainways import inference

    numbered = _texts(args)
    predictions = inference.predict(
        args.run_dir,
        [text for _, text in numbered],
        top_k=args.top_k,
        last=args.last,
        trust_code=args.trust_code,
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
    from trainways.compare import resume_comparison, start_comparison
    from trainways.lifecycle import LOG, configure_logging

    if args.resume is not None:
        given = bool(args.methods or args.backends or args.tutorial or args.out)
        others = [("--methods/--backends/--tutorial/--out", given)]
        _refuse_with_resume(
            args, others, whose="the comparison's own settings", devices_may_change=False
        )
        configure_logging(None, quiet=args.quiet)
        return resume_comparison(args.resume, log=LOG.info, quiet=args.quiet)
    methods, backends = args.methods or METHODS, args.backends or ()
    if backends:
        if (args.methods and len(args.methods) > 1) or args.tutorial:
            raise UsageError(
                "--backends trains one method on each backend: give one --methods, "
                "without --tutorial"
            )
        methods = args.methods or ("fit",)
    config = config_from_args(args)
    if backends:
        _refuse_backends_with_own_data(config, "compare")
    configure_logging(None, quiet=args.quiet)
    return start_comparison(
        config,
        methods,
        tutorial=args.tutorial,
        backends=backends,
        out=args.out,
        overwrite=args.overwrite,
        log=LOG.info,
        quiet=args.quiet,
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

    model_path = export_run(args.run_dir, args.out, last=args.last, trust_code=args.trust_code)
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

    config = DataConfig(**{k.partition(".")[2]: v for k, v in given_options(args).items()})
    if config.is_user_data:
        baseline = args.command == "baseline"
        what = "baseline fits TF-IDF + LinearSVC on" if baseline else "data info describes"
        raise UsageError(
            f"{what} the Reuters data: --data FILE.py:FUNCTION is not supported here (train, "
            "agree and compare take it)"
        )
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


def _devices_for(args: argparse.Namespace) -> DeviceConfig:
    """The device options a command asks for: those recorded in the run it resumes or the
    configuration file it reads, then the ones given (``--backend``, ``--gpu``, ``--cpu``...)."""
    given = {
        path: value for path, value in given_options(args).items() if path.startswith("device.")
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

    quiet_tensorflow()
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
        start_backend_quietly()
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
    except (
        UsageError,
        DataError,
        InferenceError,
        rundir.RunDirError,
        SymlinkRefused,
        TrackingError,
    ) as error:
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
