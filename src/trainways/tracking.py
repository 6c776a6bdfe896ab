"""Experiment tracking with MLflow: every run, every method, every backend, the same keys.

The MLflow side of tracking; its Keras side is :class:`trainways.callbacks.MlflowTracking`, a
callback, so it follows the callbacks wherever they are driven — ``fit``, the
``train_on_batch`` loop, the GradientTape loop, a user's step or :class:`trainways.Loop` — and
logs the same things for each:

- params: ``backend``, ``method`` and ``seed``, then every configuration option by its path in
  ``config.json`` (``train.batch_size``, ``data.max_len``, ...);
- metrics, with the 1-based epoch as the step (as ``history.csv`` numbers them): every epoch log
  (``loss``, ``accuracy``, ``top5_accuracy`` and their ``val_`` twins), ``learning_rate`` and
  ``epoch_seconds``;
- artifacts, once the run ends: ``config.json``, ``history.csv``, ``metrics.json``,
  ``best.keras`` and ``train.log``; ``trainways evaluate`` adds its figures (``evaluation.json``,
  the confusion matrix) and ``test_*`` metrics;
- the run's status: ``FINISHED`` when ``status.json`` says completed, ``KILLED`` when it was
  interrupted, ``FAILED`` when it failed.

The MLflow run's id is recorded in the run directory (``mlflow.json``, :mod:`trainways.rundir`),
so ``--resume`` continues the same MLflow run. Tracking never costs training: the first MLflow
call that fails (an unreachable server, a locked store) is one warning, after which the run
trains on untracked; ``trainways track RUN_DIR`` (:func:`upload`) logs a run afterwards, filling
in only the epochs its MLflow run lacks.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.config import TRACKING_AUTO, ConfigError, RunConfig

LOG = logging.getLogger("trainways")

# The experiment trainways' runs go to, unless $MLFLOW_EXPERIMENT_NAME names another.
EXPERIMENT = "trainways"
# How ``compare`` tells its children (``trainways train`` processes) which run to nest under.
PARENT_RUN_ENV = "TRAINWAYS_MLFLOW_PARENT_RUN_ID"
PARENT_TAG = "mlflow.parentRunId"
RUN_DIR_TAG = "trainways.run_dir"
FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"
# What status.json's states are in MLflow. A run still "running" had its process killed.
STATUS_OF_STATE = {
    rundir.COMPLETED: FINISHED,
    rundir.INTERRUPTED: KILLED,
    rundir.FAILED: FAILED,
    rundir.RUNNING: FAILED,
}
# MLflow's HTTP client retries a request 7 times over minutes by default: a training run would
# stand still that long at an unreachable server. These apply unless the environment sets them.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
_PARAM_LIMIT = 6000  # characters MLflow keeps of a param's value


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a call (``trainways track``); one line."""


# --------------------------------------------------------------------------- configuration


def require_mlflow() -> None:
    """Refuse tracking when MLflow is not installed.

    Raises:
        ConfigError: MLflow cannot be imported.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--mlflow needs MLflow, which is not installed: pip install 'trainways[mlflow]'",
            keys=("tracking",),
        ) from None


def status_of_error(error: BaseException) -> str:
    """The MLflow status of a run that ``error`` ended: ``KILLED`` for a signal or Ctrl-C,
    else ``FAILED``."""
    from trainways.stops import Interrupted

    return KILLED if isinstance(error, (KeyboardInterrupt, Interrupted)) else FAILED


def resolve_uri(value: str, root: Path) -> str:
    """The tracking URI ``value`` means: itself, or for ``"auto"`` ``$MLFLOW_TRACKING_URI``, else
    the SQLite store ``mlflow.db`` in ``root`` (where the run directories are), by absolute path."""
    if value != TRACKING_AUTO:
        return value
    return os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{(Path(root) / rundir.TRACKING_STORE).resolve()}"
    )


def with_resolved_uri(config: RunConfig, root: Path) -> RunConfig:
    """``config`` with its tracking URI resolved (:func:`resolve_uri`), so that the run records
    where it logs and ``--resume`` and ``compare``'s children log to the same store.

    Raises:
        ConfigError: Tracking is asked for but MLflow is not installed.
    """
    if config.train.tracking is None:
        return config
    require_mlflow()
    uri = resolve_uri(config.train.tracking, root)
    return replace(config, train=replace(config.train, tracking=uri))


def run_params(
    config: Mapping[str, Any], *, backend: str | None, method: str | None, seed: int | None
) -> dict[str, str]:
    """A run's MLflow params: ``backend``, ``method``, ``seed``, then every option of ``config``
    (a ``config.json``) by its dotted path, values as JSON text."""
    params = {"backend": backend, "method": method, "seed": seed}
    params.update(_flatten(config))
    return {key: _param_text(value) for key, value in params.items()}


def params_of_run_dir(path: Path) -> dict[str, str]:
    """:func:`run_params` of the run in ``path``, from its ``config.json`` (a ``trainways train``
    run's or a :class:`trainways.Loop`'s)."""
    config = rundir.read_config(path)
    if "loop" in config:
        loop = config["loop"]
        return run_params(config, backend=loop.get("backend"), method="loop", seed=loop.get("seed"))
    train, device = config.get("train", {}), config.get("device", {})
    return run_params(
        config, backend=device.get("backend"), method=train.get("method"), seed=train.get("seed")
    )


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_PARAM_LIMIT]


def epoch_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of an epoch's logs, as floats (a scalar tensor of any backend
    included)."""
    metrics = {}
    for key, value in logs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue  # not a scalar: nothing MLflow can plot
        if math.isfinite(number):
            metrics[key] = number
    return metrics


# --------------------------------------------------------------------------- the store


class TrackingStore:
    """One MLflow tracking URI, every call guarded.

    By default (``strict=False``) the first failing call is one warning and every later call
    does nothing, so training never waits on, or stops for, tracking; with ``strict`` a failure
    raises :class:`TrackingError` instead (for ``trainways track``, whose whole job it is).

    Args:
        uri: The tracking URI.
        warn: Where the warning goes.
        after_failure: What the warning tells the user to do (how to upload the run later).
        strict: Raise instead of warning.
    """

    def __init__(
        self,
        uri: str,
        *,
        warn: Callable[[str], None] = LOG.warning,
        after_failure: str = "",
        strict: bool = False,
    ) -> None:
        self.uri = uri
        self._warn = warn
        self._after = after_failure
        self._strict = strict
        self._client: Any = None
        self.failed = False

    def call(self, what: str, action: Callable[[Any], Any]) -> Any:
        """``action(client)``, or ``None`` if tracking has failed (now or before)."""
        if self.failed:
            return None
        try:
            with _quiet_mlflow():
                if self._client is None:
                    for name, value in HTTP_DEFAULTS.items():
                        os.environ.setdefault(name, value)
                    store = _sqlite_file(self.uri)
                    if store is not None:  # SQLite makes the file, not its folder
                        store.parent.mkdir(parents=True, exist_ok=True)
                    from mlflow import MlflowClient

                    self._client = MlflowClient(tracking_uri=self.uri)
                return action(self._client)
        except Exception as error:  # whatever MLflow or its transport raises
            self.failed = True
            message = f"MLflow at {self.uri}: {what} failed ({_one_line(error)})"
            if self._strict:
                raise TrackingError(message) from None
            self._warn(f"{message}; training goes on untracked{self._after}")
            return None

    def experiment_id(self, client: Any) -> str:
        """The id of the experiment runs go to, created on first use."""
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=self._artifact_location())

    def _artifact_location(self) -> str | None:
        # A SQLite store would put artifacts in ./mlruns of whatever directory the process runs
        # in; keep them beside the store instead. A server decides for itself.
        store = _sqlite_file(self.uri)
        if store is None:
            return None
        return (store.parent / rundir.TRACKING_ARTIFACTS).resolve().as_uri()

    def start_run(
        self,
        *,
        name: str | None,
        params: Mapping[str, str],
        tags: Mapping[str, str] = (),
    ) -> str | None:
        """Create a run with ``params`` and ``tags``; its id, or ``None`` if tracking failed."""

        def start(client: Any) -> str:
            from mlflow.entities import Param

            run = client.create_run(self.experiment_id(client), tags=dict(tags), run_name=name)
            run_id = run.info.run_id
            items = [Param(key, value) for key, value in params.items()]
            for first in range(0, len(items), 100):  # MLflow takes 100 params per batch
                client.log_batch(run_id, params=items[first : first + 100])
            return run_id

        return self.call("starting a run", start)

    def reopen(self, run_id: str) -> bool:
        """Mark the recorded run ``RUNNING`` again; ``False`` if this store has no such run."""

        def reopen(client: Any) -> bool:
            from mlflow.exceptions import MlflowException

            try:
                run = client.get_run(run_id)
            except MlflowException:
                return False  # another store's run, or deleted since
            if run.info.lifecycle_stage != "active":
                return False
            client.update_run(run_id, status="RUNNING")
            return True

        return bool(self.call("reopening its run", reopen))

    def logged_steps(self, run_id: str, key: str = "loss") -> set[int]:
        """The steps (epochs) run ``run_id`` already has ``key`` for."""
        found = self.call(
            "reading its metrics", lambda client: client.get_metric_history(run_id, key)
        )
        return {metric.step for metric in found or ()}

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's metrics at ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        self.call(f"logging epoch {step}", lambda client: client.log_batch(run_id, metrics=batch))

    def log_artifacts(self, run_id: str, paths: Sequence[Path]) -> None:
        """Upload the files and folders of ``paths`` that exist, at the artifact root."""

        def upload(client: Any) -> None:
            for path in paths:
                if path.is_dir():
                    client.log_artifacts(run_id, str(path), artifact_path=path.name)
                elif path.is_file():
                    client.log_artifact(run_id, str(path))

        self.call("uploading artifacts", upload)

    def end(self, run_id: str, status: str) -> None:
        """Set the run's final status (``FINISHED``, ``KILLED`` or ``FAILED``)."""
        self.call("ending its run", lambda client: client.set_terminated(run_id, status=status))


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow announces creating its tables at INFO level, and prints a server's run links to
    stdout, quiet runs included; trainways' log says where the run went instead."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _one_line(error: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(error)).strip()
    # An HTTP failure comes as a page of urllib3's retry history; its cause is what matters.
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if cause:
        return cause.group(0)
    return f"{type(error).__name__}: {text}"[:200]


# --------------------------------------------------------------------------- one run


class TrackedRun:
    """One MLflow run, as a run directory (or a library call) logs it.

    :class:`trainways.callbacks.MlflowTracking` drives it from the callback hooks; ``compare``
    drives its parent run, and :func:`upload` a finished run directory, with it directly.

    Args:
        tracking_uri: Where to log (``sqlite:///runs/mlflow.db``, ``http://host:5000``...).
        params: The run's params (:func:`run_params`).
        run_name: The MLflow run's name (trainways uses the run directory's).
        run_dir: The directory the run writes: its ``mlflow.json`` records the MLflow run,
            which a resumed run then continues.
        parent_run_id: Nest the run under this one (``compare``'s).
        warn: Where the one warning goes if MLflow fails.
        strict: Raise :class:`TrackingError` when MLflow fails, instead of warning.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        params: Mapping[str, str] | None = None,
        run_name: str | None = None,
        run_dir: Path | None = None,
        parent_run_id: str | None = None,
        warn: Callable[[str], None] = LOG.warning,
        strict: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        after = (
            f"; the run directory keeps everything: trainways track {self.run_dir} uploads it later"
            if self.run_dir is not None
            else ""
        )
        self.store = TrackingStore(tracking_uri, warn=warn, after_failure=after, strict=strict)
        self.params = dict(params or {})
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        self.logged: set[int] = set()
        # Epochs the run directory held that open() logged (a resumed or uploaded run's).
        self.caught_up = 0
        self._ended = False

    def open(self) -> str | None:
        """Start the MLflow run, or reopen the one the run directory records; its id.

        Epochs the run directory holds (a resumed run's checkpointed ones) that the MLflow run
        lacks — the process was killed before it could log them, or MLflow was unreachable —
        are logged now.
        """
        if self.run_id is not None or self.store.failed:
            return self.run_id
        record = rundir.read_tracking(self.run_dir) if self.run_dir is not None else None
        if (
            record
            and record.get("tracking_uri") == self.store.uri
            and self.store.reopen(record["run_id"])
        ):
            self.run_id = record["run_id"]
            self.logged = self.store.logged_steps(self.run_id)
        else:
            tags = {}
            if self.run_dir is not None:
                tags[RUN_DIR_TAG] = str(self.run_dir.resolve())
            if self.parent_run_id:
                tags[PARENT_TAG] = self.parent_run_id
            self.run_id = self.store.start_run(name=self.run_name, params=self.params, tags=tags)
            if self.run_id is None:
                return None
            if self.run_dir is not None:
                rundir.write_tracking(
                    self.run_dir, {"tracking_uri": self.store.uri, "run_id": self.run_id}
                )
        if self.run_dir is not None:
            for step, metrics in enumerate(recorded_epochs(self.run_dir), start=1):
                self.caught_up += self.log(step, metrics)
        return self.run_id

    def log(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Log one epoch's metrics at ``step``, unless the run has that step; whether it did."""
        if self.run_id is None or step in self.logged:
            return False
        self.store.log_epoch(self.run_id, step, metrics)
        self.logged.add(step)
        return not self.store.failed

    def end(self, status: str, artifacts: Sequence[Path] = ()) -> None:
        """Upload ``artifacts`` (those that exist) and end the MLflow run with ``status``."""
        if self._ended or self.run_id is None:
            return
        self._ended = True
        self.store.log_artifacts(self.run_id, artifacts)
        self.store.end(self.run_id, status)
        if not self.store.failed:
            LOG.info("MLflow: run %s %s in %s", self.run_id, status, self.store.uri)

    def end_as_run_dir(self) -> None:
        """End the MLflow run as the run directory ended: its files as artifacts, its
        ``status.json`` as the status."""
        status = rundir.read_status(self.run_dir) or {}
        self.end(
            STATUS_OF_STATE.get(status.get("state"), FAILED),
            [self.run_dir / name for name in rundir.RUN_ARTIFACTS],
        )


def recorded_epochs(run_dir: Path) -> list[dict[str, float]]:
    """The metrics of each epoch the run directory records, as the callback logs them:
    ``history.csv``'s columns, ``epoch_seconds`` from ``metrics.json`` once the run has one, and
    the configured ``learning_rate`` where no schedule logged it."""
    run_dir = Path(run_dir)
    history_file = run_dir / rundir.HISTORY
    if not history_file.is_file() or history_file.stat().st_size == 0:
        return []  # CSVLogger opens the file at the start, and writes at the first epoch's end
    history = rundir.read_history(run_dir)
    seconds = []
    if (run_dir / rundir.METRICS).is_file():
        seconds = rundir.read_metrics(run_dir).get("seconds_per_epoch", [])
    rate = rundir.read_config(run_dir).get("train", {}).get("learning_rate")
    rows = []
    for epoch in range(len(next(iter(history.values()), []))):
        metrics = epoch_metrics({key: values[epoch] for key, values in history.items()})
        if epoch < len(seconds):
            metrics["epoch_seconds"] = float(seconds[epoch])
        if "learning_rate" not in metrics and rate is not None:
            metrics["learning_rate"] = float(rate)
        rows.append(metrics)
    return rows


def for_run(run_dir: Path, config: RunConfig, *, warn: Callable[[str], None] = LOG.warning) -> Any:
    """The tracking callback (:class:`trainways.callbacks.MlflowTracking`) of a ``trainways
    train`` run into ``run_dir``, nested under ``compare``'s run when a comparison started it;
    ``None`` if the run does not track."""
    if config.train.tracking is None:
        return None
    from trainways.callbacks import MlflowTracking

    return MlflowTracking(
        TrackedRun(
            config.train.tracking,
            params=params_of_run_dir(run_dir),
            run_name=Path(run_dir).name,
            run_dir=run_dir,
            parent_run_id=os.environ.get(PARENT_RUN_ENV),
            warn=warn,
        ),
        end_with_training=False,
    )


def for_library(
    tracking: str | bool,
    *,
    params: Mapping[str, str],
    run_dir: Path | None = None,
    root: Path = Path("runs"),
) -> Any:
    """The tracking callback of a library call (:func:`trainways.train`, :class:`trainways.Loop`):
    ``tracking`` is a URI, or ``True`` / ``"auto"`` for :func:`resolve_uri`'s default, beside
    ``run_dir`` if there is one, else in ``root``.

    Raises:
        ConfigError: MLflow is not installed, or ``tracking`` is neither a URI nor ``True``.
    """
    if tracking is True:
        tracking = TRACKING_AUTO
    if not isinstance(tracking, str) or not tracking.strip():
        raise ConfigError(
            f"tracking={tracking!r}: give a tracking URI (sqlite:///runs/mlflow.db, "
            "http://host:5000), or True for $MLFLOW_TRACKING_URI or runs/mlflow.db",
            keys=("tracking",),
        )
    require_mlflow()
    from trainways.callbacks import MlflowTracking

    where = Path(run_dir).parent if run_dir is not None else root
    run = TrackedRun(
        resolve_uri(tracking, where),
        params=params,
        run_name=Path(run_dir).name if run_dir is not None else None,
        run_dir=run_dir,
    )
    return MlflowTracking(run, end_with_training=False)


# --------------------------------------------------------------------------- after the run


def log_evaluation(run_dir: Path, figures: Mapping[str, Any]) -> None:
    """Add ``trainways evaluate``'s figures to the run's MLflow run, if it has one: ``test_*``
    metrics (at step 0), ``evaluation.json`` and the confusion matrix. A failure is one warning."""
    record = rundir.read_tracking(run_dir)
    if record is not None:
        _log_evaluation(TrackingStore(record["tracking_uri"]), record["run_id"], run_dir, figures)


def _log_evaluation(
    store: TrackingStore, run_id: str, run_dir: Path, figures: Mapping[str, Any]
) -> None:
    metrics = {
        f"test_{key}": float(figures[key])
        for key in ("loss", "accuracy", "top5_accuracy", "macro_f1", "weighted_f1")
        if key in figures
    }
    store.log_epoch(run_id, 0, metrics)
    store.log_artifacts(run_id, [Path(run_dir) / name for name in rundir.EVALUATION_ARTIFACTS])


def upload(run_dir: Path, uri: str | None = None) -> tuple[str, str, int]:
    """Log a finished run directory to MLflow (``trainways track``).

    The run's recorded MLflow run is completed if the store has it: only the epochs it lacks are
    logged, so uploading twice changes nothing. Otherwise a new MLflow run is made and recorded.

    Args:
        run_dir: A completed, interrupted or failed run directory.
        uri: The tracking URI (default: the one the run recorded, else ``"auto"``'s).

    Returns:
        The tracking URI, the MLflow run id, and how many epochs were logged now.

    Raises:
        RunDirError: ``run_dir`` is not a run, or is still running.
        TrackingError: MLflow failed (one line).
    """
    run_dir = Path(run_dir)
    status = rundir.read_status(run_dir)
    if status is None:
        raise rundir.RunDirError(
            f"{run_dir} is not a trainways run (no {rundir.STATUS}): pass a run directory"
        )
    if status.get("state") == rundir.RUNNING:
        raise rundir.RunDirError(
            f"run {run_dir} is running (or its process was killed): wait for it to end, or "
            f"resume it (trainways train --resume {run_dir}), then track it"
        )
    require_mlflow()
    record = rundir.read_tracking(run_dir) or {}
    config = rundir.read_config(run_dir)
    recorded = record.get("tracking_uri") or config.get("train", {}).get("tracking")
    uri = resolve_uri(uri or recorded or TRACKING_AUTO, run_dir.parent)
    tracker = TrackedRun(
        uri, params=params_of_run_dir(run_dir), run_name=run_dir.name, run_dir=run_dir, strict=True
    )
    tracker.open()
    if (run_dir / rundir.EVALUATION).is_file():
        figures = rundir.read_json(run_dir / rundir.EVALUATION)
        _log_evaluation(tracker.store, tracker.run_id, run_dir, figures)
    tracker.end_as_run_dir()
    return uri, tracker.run_id, tracker.caught_up
