"""The run directory: what a training run leaves behind, and its truthful status.

Layout::

    config.json     the resolved configuration (seed included)
    status.json     {"state": "running" | "completed" | "interrupted" | "failed", ...}
    train.log       everything the run printed
    history.csv     one row per finished epoch (numbered from 1), written as the run goes
    metrics.json    final and best-epoch metrics, epoch times
    model.keras     the model after the last epoch
    best.keras      the model of the epoch with the best val_accuracy (Keras ModelCheckpoint)
    encoder.json    word index, topic names and encoding options, for ``predict``
    first_epoch.npz the weights after epoch 1, by variable path (for agreement reports)
    evaluation.json what ``trainways evaluate`` measured
    confusion_matrix.png / .svg   its confusion matrix
    checkpoints/    the last two epoch-end checkpoints (format: :mod:`trainways.checkpoint`)
    tensorboard/    TensorBoard logs, with ``--tensorboard``
    mlflow.json     with ``--mlflow``: the tracking URI and the MLflow run this run logs to
                    (``--resume`` continues that run)
    .lock           empty; the process writing the run holds an OS lock on it (:func:`lock`)

Beside the run directories (their parent), ``--mlflow`` without a URI keeps its SQLite store
``mlflow.db`` and the runs' artifacts in ``mlartifacts/``.

A comparison directory (``trainways compare``) holds one run directory per method, and::

    compare.json    the comparison's settings and each child's peak memory (for ``--resume``)
    configs/        each child run's configuration file, as ``train --config`` reads it
    comparison.json the report's figures
    report.md, report.html, plots/

This module is the only one that knows these names. ``status.json`` is written first as
"running" and rewritten last, so a directory is complete exactly when it says "completed"; every
file here is written atomically (:func:`trainways.files.write_atomic`). One process at a time
writes a run directory: every command that writes one holds its :func:`lock` while it does.

Nothing outside the run directory, nothing deleted that trainways did not write: ``--overwrite``
(:func:`prepare`) replaces only a run or a comparison, and removes only the names above (a
symbolic link itself, never its target); a run file that is a symbolic link is refused before
anything is written (:func:`refuse_links`). The readers check what they read, so that a damaged
file is one line (:class:`RunDirError`), never a traceback.
"""

from trainways.rundir.format import (
    BEST,
    CHECKPOINTS,
    COMPARE_CONFIGS,
    COMPARE_STATE,
    COMPARISON,
    COMPARISON_DIRS,
    COMPARISON_FILES,
    COMPLETED,
    CONFIG,
    CONFUSION,
    ENCODER,
    EVALUATION,
    EVALUATION_ARTIFACTS,
    FAILED,
    FIRST_EPOCH,
    HISTORY,
    INITIAL_WEIGHTS,
    INTERRUPTED,
    LOCK,
    LOG,
    METRICS,
    MODEL,
    PLOTS,
    REPORT_ARTIFACTS,
    REPORT_HTML,
    REPORT_MD,
    RUN_ARTIFACTS,
    RUN_DIRS,
    RUN_FILES,
    RUNNING,
    STATES,
    STATUS,
    TENSORBOARD,
    TRACKING,
    TRACKING_ARTIFACTS,
    TRACKING_STORE,
    RunDirError,
    comparison_config,
    default_run_dir,
    is_run,
    killed_before_status,
    prepare,
    read_config,
    read_encoder,
    read_history,
    read_json,
    read_metrics,
    read_status,
    read_tracking,
    refuse_links,
    require_completed,
    require_resumable,
    resume_command,
    set_status,
    write_history_csv,
    write_json,
    write_tracking,
)
from trainways.rundir.lock import RunDirBusy, RunDirLock, lock, new_run_dir

__all__ = [
    "BEST",
    "CHECKPOINTS",
    "COMPARE_CONFIGS",
    "COMPARE_STATE",
    "COMPARISON",
    "COMPARISON_DIRS",
    "COMPARISON_FILES",
    "COMPLETED",
    "CONFIG",
    "CONFUSION",
    "ENCODER",
    "EVALUATION",
    "EVALUATION_ARTIFACTS",
    "FAILED",
    "FIRST_EPOCH",
    "HISTORY",
    "INITIAL_WEIGHTS",
    "INTERRUPTED",
    "LOCK",
    "LOG",
    "METRICS",
    "MODEL",
    "PLOTS",
    "REPORT_ARTIFACTS",
    "REPORT_HTML",
    "REPORT_MD",
    "RUNNING",
    "RUN_ARTIFACTS",
    "RUN_DIRS",
    "RUN_FILES",
    "STATES",
    "STATUS",
    "TENSORBOARD",
    "TRACKING",
    "TRACKING_ARTIFACTS",
    "TRACKING_STORE",
    "RunDirBusy",
    "RunDirError",
    "RunDirLock",
    "comparison_config",
    "default_run_dir",
    "is_run",
    "killed_before_status",
    "lock",
    "new_run_dir",
    "prepare",
    "read_config",
    "read_encoder",
    "read_history",
    "read_json",
    "read_metrics",
    "read_status",
    "read_tracking",
    "refuse_links",
    "require_completed",
    "require_resumable",
    "resume_command",
    "set_status",
    "write_history_csv",
    "write_json",
    "write_tracking",
]
