"""What an MLflow run holds and where it goes: the tracking URI, the params, the epoch metrics
and the run's status.

Pure logic over a configuration or a run directory; it imports neither MLflow nor Keras (only
:func:`require_mlflow` tries MLflow), so the CLI can resolve ``--mlflow`` before any backend
starts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.config import TRACKING_AUTO, ConfigError, RunConfig
from trainways.stops import Interrupted

# How ``compare`` tells its children (``trainways train`` processes) which run to nest under.
PARENT_RUN_ENV = "TRAINWAYS_MLFLOW_PARENT_RUN_ID"
FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"
# What status.json's states are in MLflow. A run still "running" had its process killed.
STATUS_OF_STATE = {
    rundir.COMPLETED: FINISHED,
    rundir.INTERRUPTED: KILLED,
    rundir.FAILED: FAILED,
    rundir.RUNNING: FAILED,
}
SQLITE = "sqlite:///"
_PARAM_LIMIT = 6000  # characters MLflow keeps of a param's value


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
    return KILLED if isinstance(error, (KeyboardInterrupt, Interrupted)) else FAILED


def resolve_uri(value: str, root: Path) -> str:
    """The tracking URI ``value`` means, as the run records it: itself, but a relative SQLite
    store by its absolute path (so that ``--resume`` and ``trainways track`` find it from any
    directory); for ``"auto"`` ``$MLFLOW_TRACKING_URI``, else the SQLite store ``mlflow.db`` in
    ``root`` (where the run directories are), by absolute path."""
    if value == TRACKING_AUTO:
        value = os.environ.get("MLFLOW_TRACKING_URI") or (
            f"{SQLITE}{(Path(root) / rundir.TRACKING_STORE).resolve()}"
        )
    store = sqlite_file(value)
    if store is None or store.is_absolute():
        return value
    _, mark, query = value.partition("?")
    return f"{SQLITE}{store.resolve()}{mark}{query}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and in-memory
    databases), without its ``?query``."""
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE) :].split("?")[0]
    return Path(path) if path and path != ":memory:" else None


def store_problem(uri: str) -> str | None:
    """Why the SQLite store of ``uri`` cannot be written, found without writing anything:
    its file is no file or unwritable, or the folder it goes in (the nearest that exists) is no
    folder or unwritable; ``None`` if it can be, and for other stores.

    MLflow retries opening a SQLite store it cannot open for about 100 seconds, printing each
    try, so a store that cannot work is caught before MLflow sees it.
    """
    path = sqlite_file(uri)
    if path is None:
        return None
    path = path.absolute()
    if path.exists():
        if not path.is_file():
            return f"{path} is not a file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not writable"
    folder = path.parent  # SQLite writes its journal beside the database
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def _usable_uri(uri: str) -> str:
    """``uri``, unless it is a SQLite store that cannot be written (:func:`store_problem`).

    Raises:
        ConfigError: The store cannot be written.
    """
    problem = store_problem(uri)
    if problem is not None:
        raise ConfigError(
            f"MLflow store {uri}: {problem}; choose a store in a directory you can write "
            "(sqlite:///PATH/mlflow.db), or a server (http://host:5000)",
            keys=("tracking",),
        )
    return uri


def with_resolved_uri(config: RunConfig, root: Path) -> RunConfig:
    """``config`` with its tracking URI resolved (:func:`resolve_uri`), so that the run records
    where it logs and ``--resume`` and ``compare``'s children log to the same store.

    Raises:
        ConfigError: Tracking is asked for but MLflow is not installed, or the SQLite store
            cannot be written (:func:`store_problem`).
    """
    if config.train.tracking is None:
        return config
    require_mlflow()
    uri = _usable_uri(resolve_uri(config.train.tracking, root))
    return replace(config, train=replace(config.train, tracking=uri))


def library_uri(tracking: str | bool, root: Path) -> str:
    """The tracking URI of a library call's ``tracking=`` (:func:`trainways.train`,
    :class:`trainways.Loop`): a URI, or ``True`` / ``"auto"`` for :func:`resolve_uri`'s default
    in ``root``.

    Raises:
        ConfigError: ``tracking`` is neither a URI nor ``True``, MLflow is not installed, or
            the SQLite store cannot be written (:func:`store_problem`).
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
    return _usable_uri(resolve_uri(tracking, root))


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
