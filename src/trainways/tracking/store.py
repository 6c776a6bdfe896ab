"""The MLflow tracking store behind every tracked run: one tracking URI, every call guarded.

:class:`TrackingStore` is the only place trainways talks to MLflow's client. The first call
that fails (an unreachable server, a locked store) is one warning, after which tracking does
nothing more, so training never waits on, or stops for, MLflow; ``trainways track`` asks for
the failure as :class:`TrackingError` instead. MLflow is imported at the first call, never at
import time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.tracking.params import sqlite_file, store_problem

LOG = logging.getLogger("trainways")

# The experiment trainways' runs go to, unless $MLFLOW_EXPERIMENT_NAME names another.
EXPERIMENT = "trainways"
# MLflow's HTTP client retries a request 7 times over minutes by default: a training run would
# stand still that long at an unreachable server. These apply unless the environment sets them.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a call (``trainways track``); one line."""


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
                    _check_sqlite(self.uri)
                    from mlflow import MlflowClient

                    self._client = MlflowClient(tracking_uri=self.uri)
                return action(self._client)
        except Exception as error:  # whatever MLflow or its transport raises
            self.fail(f"MLflow at {self.uri}: {what} failed ({_one_line(error)})")
            return None

    def fail(self, message: str, *, hint: str | None = None) -> None:
        """Tracking has failed, as ``message`` says: one warning (that training goes on
        untracked, then ``hint``, by default how to upload the run later), after which every
        call does nothing.

        Raises:
            TrackingError: With ``strict``, instead of the warning.
        """
        self.failed = True
        if self._strict:
            raise TrackingError(message) from None
        after = self._after if hint is None else hint
        self._warn(f"{message}; training goes on untracked{after}")

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
        store = sqlite_file(self.uri)
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

    def unlogged(self, run_id: str, step: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Those of ``metrics`` that run ``run_id`` lacks at ``step`` with that value (none if
        tracking has failed), so that logging the same figures again adds nothing."""

        def lacking(client: Any) -> dict[str, float]:
            return {
                key: value
                for key, value in metrics.items()
                if not any(
                    found.step == step and found.value == value
                    for found in client.get_metric_history(run_id, key)
                )
            }

        return self.call("reading its metrics", lacking) or {}

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


class _UnusableStore(OSError):
    """A SQLite store that cannot be written (:func:`trainways.tracking.store_problem`)."""


def _check_sqlite(uri: str) -> None:
    """Open the SQLite store of ``uri`` (if it is one) once, as SQLite, before MLflow does.

    MLflow retries a store it cannot open for about 100 seconds, printing every try; SQLite
    says at once why it cannot (not writable, not a database, a folder in its place).

    Raises:
        _UnusableStore, OSError, sqlite3.Error: The store cannot be used.
    """
    store = sqlite_file(uri)
    if store is None:
        return
    problem = store_problem(uri)
    if problem is not None:
        raise _UnusableStore(problem)
    store.parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its folder
    with contextlib.closing(sqlite3.connect(store)) as database:
        database.execute("PRAGMA schema_version")


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow announces creating its tables at INFO level (on stderr), retries at WARNING, and
    prints a server's run links to stdout, quiet runs included; trainways' log says where the
    run went, and its one warning what failed, instead.

    MLflow sets its loggers' levels when it is first imported, so it is imported before they
    are raised.
    """
    import mlflow  # noqa: F401

    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _one_line(error: BaseException) -> str:
    if isinstance(error, _UnusableStore):
        return str(error)
    if isinstance(error, sqlite3.Error):
        return f"SQLite: {error}"
    text = re.sub(r"\s+", " ", str(error)).strip()
    # An HTTP failure comes as a page of urllib3's retry history; its cause is what matters.
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if cause:
        return cause.group(0)
    return f"{type(error).__name__}: {text}"[:200]
