"""One tracked run on the MLflow side: :class:`TrackedRun` (start or reopen an MLflow run, log
each epoch once, end it as the run directory ended), and what happens after a run —
``trainways evaluate``'s figures (:func:`log_evaluation`) and ``trainways track``
(:func:`upload`).

The Keras side, the callback that drives a :class:`TrackedRun` from the training hooks, is
:class:`trainways.callbacks.MlflowTracking`; this module imports no Keras, so ``trainways
track`` starts no backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.config import TRACKING_AUTO
from trainways.tracking.params import (
    FAILED,
    STATUS_OF_STATE,
    epoch_metrics,
    params_of_run_dir,
    require_mlflow,
    resolve_uri,
)
from trainways.tracking.store import TrackingError, TrackingStore

LOG = logging.getLogger("trainways")

PARENT_TAG = "mlflow.parentRunId"
RUN_DIR_TAG = "trainways.run_dir"


class TrackedRun:
    """One MLflow run, as a run directory (or a library call) logs it.

    :class:`trainways.callbacks.MlflowTracking` drives it from the callback hooks; ``compare``
    drives its parent run, and :func:`upload` a finished run directory, with it directly.

    Args:
        tracking_uri: Where to log (``sqlite:///runs/mlflow.db``, ``http://host:5000``...).
        params: The run's params (:func:`~trainways.tracking.run_params`).
        run_name: The MLflow run's name (trainways uses the run directory's).
        run_dir: The directory the run writes: its ``mlflow.json`` records the MLflow run,
            which a resumed run then continues.
        parent_run_id: Nest the run under this one (``compare``'s).
        warn: Where the one warning goes if MLflow fails.
        strict: Raise :class:`~trainways.tracking.TrackingError` when MLflow fails, instead of
            warning.
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

    @classmethod
    def of_run_dir(
        cls,
        run_dir: Path,
        tracking_uri: str,
        *,
        parent_run_id: str | None = None,
        warn: Callable[[str], None] = LOG.warning,
        strict: bool = False,
    ) -> TrackedRun:
        """The MLflow run of the run directory ``run_dir``: named as it is, its params from its
        ``config.json`` (:func:`~trainways.tracking.params_of_run_dir`); the other arguments as
        the constructor's."""
        run_dir = Path(run_dir)
        return cls(
            tracking_uri,
            params=params_of_run_dir(run_dir),
            run_name=run_dir.name,
            run_dir=run_dir,
            parent_run_id=parent_run_id,
            warn=warn,
            strict=strict,
        )

    def open(self) -> str | None:
        """Start the MLflow run, or reopen the one the run directory records; its id.

        Epochs the run directory holds (a resumed run's checkpointed ones) that the MLflow run
        lacks — the process was killed before it could log them, or MLflow was unreachable —
        are logged now. A broken ``mlflow.json`` (:func:`read_record`) is a failure of tracking
        like any other: one warning, or with ``strict`` a
        :class:`~trainways.tracking.TrackingError`.
        """
        if self.run_id is not None or self.store.failed:
            return self.run_id
        try:
            record = read_record(self.run_dir) if self.run_dir is not None else None
        except TrackingError as broken:  # not overwritten: the run it names may still exist
            self.store.fail(str(broken), hint="")  # the message says what to do
            return None
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


def read_record(run_dir: Path) -> dict[str, str] | None:
    """The MLflow run that the run directory records (its ``mlflow.json``: ``tracking_uri``,
    ``run_id``), or ``None`` if it records none.

    Raises:
        TrackingError: The record is unreadable or lacks either; the message says to delete it.
    """
    run_dir = Path(run_dir)
    path = run_dir / rundir.TRACKING
    try:
        record = rundir.read_tracking(run_dir)
    except rundir.RunDirError as error:
        problem = str(error)
    else:
        if record is None:
            return None
        fields = ("tracking_uri", "run_id")
        if isinstance(record, dict) and all(
            isinstance(record.get(key), str) and record[key] for key in fields
        ):
            return record
        problem = f"{path} names no tracking_uri and run_id"
    raise TrackingError(
        f"MLflow: the run's tracking record is broken ({problem}): delete {path}, and "
        f"trainways track {run_dir} logs the run as a new MLflow run"
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


# --------------------------------------------------------------------------- after the run


def log_evaluation(run_dir: Path, figures: Mapping[str, Any]) -> None:
    """Add ``trainways evaluate``'s figures to the run's MLflow run, if it has one: ``test_*``
    metrics (at step 0) that it lacks, ``evaluation.json`` and the confusion matrix. A failure,
    a broken tracking record included, is one warning."""
    try:
        record = read_record(run_dir)
    except TrackingError as broken:
        LOG.warning("%s; the evaluation is not logged", broken)
        return
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
    # Only what the run lacks: evaluating or tracking a run again adds nothing.
    metrics = store.unlogged(run_id, 0, metrics)
    if metrics:
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
        RunDirError: ``run_dir`` is not a run, or is still running (:class:`RunDirBusy` when
            another process writes it).
        TrackingError: MLflow failed, or the run's tracking record is broken (one line).
    """
    run_dir = Path(run_dir)
    if rundir.read_status(run_dir) is None:
        raise rundir.RunDirError(
            f"{run_dir} is not a trainways run (no {rundir.STATUS}): pass a run directory"
        )
    # It writes mlflow.json: not while another process writes the run.
    with rundir.lock(run_dir, advice="wait for it to end, then track it"):
        return _upload(run_dir, uri)


def _upload(run_dir: Path, uri: str | None) -> tuple[str, str, int]:
    """:func:`upload`, under the run directory's lock."""
    status = rundir.read_status(run_dir) or {}
    if status.get("state") == rundir.RUNNING:
        raise rundir.RunDirError(
            f"run {run_dir} is running (or its process was killed): wait for it to end, or "
            f"resume it (trainways train --resume {run_dir}), then track it"
        )
    require_mlflow()
    record = read_record(run_dir) or {}
    config = rundir.read_config(run_dir)
    recorded = record.get("tracking_uri") or config.get("train", {}).get("tracking")
    uri = resolve_uri(uri or recorded or TRACKING_AUTO, run_dir.parent)
    tracker = TrackedRun.of_run_dir(run_dir, uri, strict=True)
    tracker.open()
    if (run_dir / rundir.EVALUATION).is_file():
        figures = rundir.read_json(run_dir / rundir.EVALUATION)
        _log_evaluation(tracker.store, tracker.run_id, run_dir, figures)
    tracker.end_as_run_dir()
    return uri, tracker.run_id, tracker.caught_up
