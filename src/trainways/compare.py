"""``trainways compare``: the three methods under one configuration, side by side — or one method
on several Keras backends (``--backends``), each from the same initial weights.

Each run trains in its own child process (``trainways train``, :mod:`trainways.children`), into
its own run directory under the comparison directory, so that each gets a clean runtime (a
process runs Keras on one backend) and its own peak memory figure (the child's ``ru_maxrss``).
The report (:mod:`trainways.report`) is then written from what the runs left behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.children import child_argv, run_child
from trainways.config import RunConfig
from trainways.lifecycle import make_run_dir
from trainways.measure import backend_config, save_initial_weights
from trainways.preflight import check_step_signatures, load_data, preflight
from trainways.report import write_comparison_report


def tutorial_config(config: RunConfig, method: str) -> RunConfig:
    """The tutorial chapter's own settings for ``method``: 10 epochs; LR halved at 5 for batch."""
    return replace(
        config,
        train=replace(
            config.train.for_method(method),
            epochs=10,
            lr_halve_at=5 if method == "batch" else None,
        ),
    )


def run_comparison(
    out: Path,
    config: RunConfig,
    methods: tuple[str, ...],
    *,
    tutorial: bool,
    log: Any,
    quiet: bool = False,
    backends: tuple[str, ...] = (),
) -> int:
    """Train ``methods`` one after another into ``out/<method>`` and write the report.

    With ``backends``, the one method trains on each backend instead, into ``out/<backend>``,
    every backend from the same initial weights (``out/initial.weights.h5``, from the seed).

    A run that already completed is kept; one that was interrupted is resumed; the rest are
    trained. So the same call continues an interrupted comparison.

    With ``config.train.tracking`` (a resolved URI), the comparison is an MLflow run of its own
    (recorded in ``out/mlflow.json``) with each child's run nested under it, and the report as
    its artifacts.

    Returns:
        0, or the exit status of the first method that did not complete.
    """
    from trainways.stops import EXIT_FAILED, EXIT_INTERRUPTED

    tracker = _comparison_tracker(out, config, methods, tutorial=tutorial, backends=backends)
    code = EXIT_FAILED
    try:
        with _parent_run(tracker):
            code = _run_all(
                out, config, methods, tutorial=tutorial, log=log, quiet=quiet, backends=backends
            )
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        raise
    finally:
        if tracker is not None:
            _end_comparison_run(tracker, out, code)
    return code


def _end_comparison_run(tracker: Any, out: Path, code: int) -> None:
    """End the comparison's MLflow run as it ended: with the report, or stopped."""
    from trainways.stops import is_signal_status
    from trainways.tracking import FAILED, FINISHED, KILLED

    if code == 0:
        tracker.end(FINISHED, [out / name for name in rundir.REPORT_ARTIFACTS])
    else:  # a child stopped by SIGINT or SIGTERM exits with that signal's status
        tracker.end(KILLED if is_signal_status(code) else FAILED)


def _comparison_tracker(
    out: Path,
    config: RunConfig,
    methods: tuple[str, ...],
    *,
    tutorial: bool,
    backends: tuple[str, ...],
) -> Any:
    """The comparison's own MLflow run (its params: the shared configuration and what is
    compared), opened; ``None`` without tracking."""
    if config.train.tracking is None:
        return None
    from trainways.tracking import TrackedRun, run_params

    params = run_params(
        {
            **config.to_dict(),
            "compare": {"methods": list(methods), "backends": list(backends), "tutorial": tutorial},
        },
        backend=",".join(backends) or config.device.backend,
        method=",".join(methods),
        seed=config.train.seed,
    )
    tracker = TrackedRun(
        config.train.tracking,
        params=params,
        run_name=out.name,
        run_dir=out,
        warn=lambda message: print(f"trainways compare: warning: {message}", file=sys.stderr),
    )
    tracker.open()
    return tracker


@contextlib.contextmanager
def _parent_run(tracker: Any) -> Iterator[None]:
    """Children started inside nest their MLflow runs under the comparison's."""
    from trainways.tracking import PARENT_RUN_ENV

    if tracker is None or tracker.run_id is None:
        yield
        return
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = tracker.run_id
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous


def _run_all(
    out: Path,
    config: RunConfig,
    methods: tuple[str, ...],
    *,
    tutorial: bool,
    log: Any,
    quiet: bool,
    backends: tuple[str, ...],
) -> int:
    """:func:`run_comparison` without the tracking."""
    state_path = out / rundir.COMPARE_STATE
    state = rundir.read_json(state_path) if state_path.is_file() else {}
    state.update(
        {
            "config": config.to_dict(),
            "methods": list(methods),
            "tutorial": tutorial,
            "backends": list(backends),
        }
    )
    peaks: dict[str, float] = state.setdefault("peak_memory_mb", {})
    rundir.write_json(state_path, state)
    configs = _run_configs(out, config, methods, tutorial=tutorial, backends=backends)
    for method, method_config in configs.items():
        run = out / method
        status = (rundir.read_status(run) or {}).get("state")
        if status == rundir.COMPLETED:
            log(f"{method}: already completed in {run}")
            continue
        if status is not None:
            log(f"{method}: resuming the {status} run in {run}")
            argv = ["train", "--resume", str(run), *(["--quiet"] if quiet else [])]
        else:
            log(f"{method}: training into {run}")
            config_file = rundir.comparison_config(out, method)
            config_file.parent.mkdir(exist_ok=True)
            rundir.write_json(config_file, method_config.to_dict())
            argv = child_argv(config_file, run, quiet=quiet)
        code, peak = run_child(argv)
        peaks[method] = max(peak, peaks.get(method, 0.0))
        rundir.write_json(state_path, state)
        if code != 0:
            # On stderr even with --quiet: the user must learn how to continue. Exit status 2 is
            # bad input, which resuming cannot mend; the child has said what it was.
            then = (
                f"continue the comparison with: trainways compare --resume {out}"
                if code != 2
                else "resuming cannot help: fix the settings and start a new comparison"
            )
            print(
                f"trainways compare: {method} stopped with exit status {code}; {then}",
                file=sys.stderr,
            )
            return code
    if "baseline" not in state and not config.data.is_user_data:  # the baseline is Reuters'
        log("baseline: fitting TF-IDF + LinearSVC on the same wires")
        state["baseline"] = baseline_figures(config)
        rundir.write_json(state_path, state)
    write_comparison_report(out, tuple(configs), peaks, tutorial=tutorial)
    log(f"report: {out / rundir.REPORT_HTML} and {out / rundir.REPORT_MD}")
    return 0


def baseline_figures(config: RunConfig) -> dict[str, Any]:
    """The TF-IDF + LinearSVC baseline (:mod:`trainways.baseline`) on the wires the runs train
    and validate on, for the report's bar-to-beat row."""
    from trainways.baseline import tfidf_svm

    data = config.data
    result = tfidf_svm(
        load_data(data), max_len=data.max_len, validation_split=data.validation_split
    )
    return result.to_dict()


def _run_configs(
    out: Path,
    config: RunConfig,
    methods: tuple[str, ...],
    *,
    tutorial: bool,
    backends: tuple[str, ...],
) -> dict[str, RunConfig]:
    """Each run's name (its directory under ``out``) and configuration."""
    if backends:
        weights = out / rundir.INITIAL_WEIGHTS
        if not weights.is_file():
            save_initial_weights(config, load_data(config.data), weights)
        [method] = methods
        trained = replace(config, train=config.train.for_method(method))
        return {backend: backend_config(trained, backend, weights) for backend in backends}
    return {
        method: tutorial_config(config, method)
        if tutorial
        else replace(config, train=config.train.for_method(method))
        for method in methods
    }


def start_comparison(
    config: RunConfig,
    methods: tuple[str, ...],
    *,
    tutorial: bool,
    backends: tuple[str, ...],
    out: Path | None,
    overwrite: bool,
    log: Any,
    quiet: bool,
) -> int:
    """Check ``config`` (the pre-flight, in this process only: the children set their devices
    up), make the comparison's directory and run it (:func:`run_comparison`)."""
    if "loop" in methods:  # the one method a user's step runs in
        check_step_signatures(config, backends)
    config = preflight(config, devices=False).config
    out, config, held = make_run_dir(config, out, name="compare", overwrite=overwrite)
    with held:  # the comparison's own files; each child locks its own run directory
        return run_comparison(
            out, config, methods, tutorial=tutorial, log=log, quiet=quiet, backends=backends
        )


def resume_comparison(out: Path, *, log: Any, quiet: bool) -> int:
    """Continue the comparison in ``out`` with its saved settings (:func:`run_comparison`)."""
    load_comparison_state(out)  # first: no lock file in what is not a comparison
    with rundir.lock(out, advice="wait for it to end (it may be resuming this comparison)"):
        state = load_comparison_state(out)
        return run_comparison(
            out,
            RunConfig.from_dict(state["config"]),
            tuple(state["methods"]),
            tutorial=bool(state["tutorial"]),
            log=log,
            quiet=quiet,
            backends=tuple(state.get("backends") or ()),
        )


def load_comparison_state(out: Path) -> dict[str, Any]:
    """The saved settings of the comparison in ``out`` (for ``--resume``)."""
    path = out / rundir.COMPARE_STATE
    if not path.is_file():
        raise rundir.RunDirError(
            f"--resume {out}: not a trainways comparison (no {rundir.COMPARE_STATE}); pass the "
            "--out of a trainways compare"
        )
    return rundir.read_json(path)
