"""Experiment tracking with MLflow: every run, every method, every backend, the same keys.

This package is the MLflow side of tracking; its Keras side is
:class:`trainways.callbacks.MlflowTracking`, a callback, so it follows the callbacks wherever
they are driven — ``fit``, the ``train_on_batch`` loop, the GradientTape loop, a user's step or
:class:`trainways.Loop` — and logs the same things for each:

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
call that fails (an unreachable server, a locked store, a broken ``mlflow.json``) is one
warning, after which the run trains on untracked (a SQLite store that cannot be written is
refused before a new run starts, :func:`store_problem`); ``trainways track RUN_DIR``
(:func:`upload`) logs a run afterwards, filling in only the epochs and figures its MLflow run
lacks.

The package's modules, bottom to top; none imports MLflow or Keras before it calls MLflow, and
none imports :mod:`trainways.callbacks`, so ``trainways track`` starts no backend:

- :mod:`~trainways.tracking.params`: the tracking URI, the params, the epoch metrics, the
  run's status — pure logic over a configuration or a run directory;
- :mod:`~trainways.tracking.store`: :class:`TrackingStore`, every MLflow call guarded;
- :mod:`~trainways.tracking.runs`: :class:`TrackedRun`, :func:`log_evaluation`,
  :func:`upload`.
"""

from __future__ import annotations

from trainways.tracking.params import (
    FAILED,
    FINISHED,
    KILLED,
    PARENT_RUN_ENV,
    STATUS_OF_STATE,
    epoch_metrics,
    library_uri,
    params_of_run_dir,
    require_mlflow,
    resolve_uri,
    run_params,
    sqlite_file,
    status_of_error,
    store_problem,
    with_resolved_uri,
)
from trainways.tracking.runs import (
    PARENT_TAG,
    RUN_DIR_TAG,
    TrackedRun,
    log_evaluation,
    read_record,
    recorded_epochs,
    upload,
)
from trainways.tracking.store import EXPERIMENT, HTTP_DEFAULTS, TrackingError, TrackingStore

__all__ = [
    "EXPERIMENT",
    "FAILED",
    "FINISHED",
    "HTTP_DEFAULTS",
    "KILLED",
    "PARENT_RUN_ENV",
    "PARENT_TAG",
    "RUN_DIR_TAG",
    "STATUS_OF_STATE",
    "TrackedRun",
    "TrackingError",
    "TrackingStore",
    "epoch_metrics",
    "library_uri",
    "log_evaluation",
    "params_of_run_dir",
    "read_record",
    "recorded_epochs",
    "require_mlflow",
    "resolve_uri",
    "run_params",
    "sqlite_file",
    "status_of_error",
    "store_problem",
    "upload",
    "with_resolved_uri",
]
