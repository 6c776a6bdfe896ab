"""Where the steps run under TensorFlow: one device, or a ``tf.distribute`` strategy.

:func:`prepare` is the one setup every method goes through. It takes the strategy the model was
built under (``model.distribute_strategy``; one test, :func:`strategy_of`, for every method),
builds what ``fit`` would build on first use (once), and applies the work-arounds Keras needs
under ``MultiWorkerMirroredStrategy``. ``fit`` distributes its datasets and reduces across
replicas by itself; the hand-driven methods take :meth:`Placement.distribute`'s datasets, whose
batches ``experimental_distribute_dataset`` splits across the replicas (and, with several
workers, shards between them), and run their steps under ``strategy.run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from trainways.config import ConfigError
from trainways.trainers.base import TrainData, build_before_training


@dataclass(frozen=True)
class Placement:
    """The strategy a method's steps run under.

    Attributes:
        strategy: The ``tf.distribute`` strategy, or ``None`` for the default (one device).
    """

    strategy: tf.distribute.Strategy | None

    def distribute(self, data: TrainData) -> TrainData:
        """``data`` with both datasets split per replica; ``batch_size`` stays the global batch."""
        if self.strategy is None:
            return data
        validation = data.validation
        return dataclasses.replace(
            data,
            train=self.strategy.experimental_distribute_dataset(data.train),
            validation=None
            if validation is None
            else self.strategy.experimental_distribute_dataset(validation),
        )

    @property
    def spans_workers(self) -> bool:
        """Whether the strategy spans several processes (``MultiWorkerMirroredStrategy``)."""
        return isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def gather(self, value: Any) -> Any:
        """A (distributed) batch as one tensor: the replicas' parts joined in replica order."""
        if self.strategy is None:
            return value
        return tf.concat(self.strategy.experimental_local_results(value), axis=0)


def strategy_of(model: keras.Model) -> tf.distribute.Strategy | None:
    """The model's ``tf.distribute`` strategy, or ``None`` for the default (one device).

    A ``MirroredStrategy`` over a single device is a strategy too: every method then takes the
    distributed path alike.
    """
    strategy = model.distribute_strategy
    with strategy.scope():
        # Inside a scope, has_strategy() is true only for a strategy other than the default.
        return strategy if tf.distribute.has_strategy() else None


def prepare(model: keras.Model, data: TrainData) -> Placement:
    """Everything a compiled model needs before any method trains it, done once.

    Args:
        model: The compiled model, built under the strategy it should train with.
        data: Its (undistributed) datasets.

    Returns:
        Where its steps run.
    """
    strategy = strategy_of(model)
    spans_workers = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if spans_workers and model.steps_per_execution > 1:
        # Keras's multi-step graph branches around a merge call, which fails across workers
        # ("You must feed a value for placeholder tensor", keras-team/keras#19246).
        raise ConfigError(
            f"steps_per_execution {model.steps_per_execution} across workers: Keras 3 runs one "
            "step per call under multiworker; use 1 (auto does)",
            keys=("steps_per_execution",),
        )
    build_for_training(model, data.train.element_spec, strategy)
    if spans_workers:
        _work_around_keras_multiworker(model)
    return Placement(strategy)


def build_for_training(
    model: keras.Model, element_spec: Any, strategy: tf.distribute.Strategy | None = None
) -> None:
    """Build the compiled loss and metrics and the optimizer, as ``fit`` does on first use.

    Callbacks in ``mode="auto"`` (``EarlyStopping``, ``ModelCheckpoint``) look up whether a
    metric should rise or fall in ``model.metrics``, which lists compiled metrics only once they
    are built; and ``train_on_batch`` under a strategy would otherwise try to build them from
    per-replica batches, which Keras cannot. Keras's symbolic build from the batch's shapes,
    under the strategy as ``fit`` does it, builds everything without running anything.
    """
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        build_before_training(model, element_spec)


def _work_around_keras_multiworker(model: keras.Model) -> None:
    """Let ``fit`` and ``train_on_batch`` run under ``MultiWorkerMirroredStrategy``.

    Keras 3.15 fails there in two places (tensorflow/tensorflow#72388): before training it
    reduces a per-replica input batch with ``strategy.reduce``, which the collective strategy
    cannot do eagerly, only to build what :func:`build_for_training` has already built; and after
    every step it reduces the per-replica logs with ``strategy.reduce("MEAN", value, axis=0)``,
    which fails on scalars. So skip that build step, and give each log value a leading axis of
    length 1 in the step, so that Keras's reduction averages the replicas' values as its
    single-machine "mean" reduction does.
    """
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    per_replica_results = model.get_metrics_result

    def get_metrics_result() -> dict[str, Any]:
        results = per_replica_results()
        if tf.distribute.in_cross_replica_context():  # values already global
            return results
        return {name: tf.reshape(value, [1]) for name, value in results.items()}

    model.get_metrics_result = get_metrics_result


def is_cluster_failure(error: BaseException) -> bool:
    """Whether ``error`` is TensorFlow reporting a peer lost in a collective."""
    return isinstance(
        error,
        (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
            tf.errors.InternalError,
        ),
    )
