"""What the ``batch`` and ``loop`` methods need to run under a ``tf.distribute`` strategy.

``fit`` distributes its datasets and reduces across replicas by itself. The hand-driven methods
use the same strategy the model was built under (``model.distribute_strategy``): their datasets
go through ``experimental_distribute_dataset``, which splits each global batch across the
replicas (and, with several workers, shards it between them), and their steps run under
``strategy.run``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import tensorflow as tf

from trainways.trainers.base import TrainData


def strategy_of(model: keras.Model) -> tf.distribute.Strategy | None:
    """The model's ``tf.distribute`` strategy, or ``None`` for the default (one device)."""
    strategy = model.distribute_strategy
    with strategy.scope():
        # Inside a scope, has_strategy() is true only for a strategy other than the default.
        return strategy if tf.distribute.has_strategy() else None


def distribute(data: TrainData, strategy: tf.distribute.Strategy) -> TrainData:
    """``data`` with both datasets distributed; ``batch_size`` stays the global batch."""
    validation = data.validation
    return dataclasses.replace(
        data,
        train=strategy.experimental_distribute_dataset(data.train),
        validation=None
        if validation is None
        else strategy.experimental_distribute_dataset(validation),
    )


def global_size(strategy: tf.distribute.Strategy, y: Any) -> tf.Tensor:
    """Examples in a distributed batch, summed over every replica of every worker."""
    local = strategy.run(lambda labels: tf.shape(labels)[0], args=(y,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None)


def build_for_training(
    model: keras.Model, element_spec: Any, strategy: tf.distribute.Strategy | None = None
) -> None:
    """Build the compiled loss and metrics and the optimizer, as ``fit`` does on first use.

    Callbacks in ``mode="auto"`` (``EarlyStopping``, ``ModelCheckpoint``) look up whether a
    metric should rise or fall in ``model.metrics``, which lists compiled metrics only once they
    are built; and ``train_on_batch`` under a strategy would otherwise try to build them from
    per-replica batches, which Keras cannot. One pass over a dummy batch, then a reset, builds
    everything without touching weights or the data pipeline.
    """
    x_spec, y_spec = element_spec
    x = tf.zeros([1, *x_spec.shape[1:]], dtype=x_spec.dtype)
    y = tf.zeros([1, *y_spec.shape[1:]], dtype=y_spec.dtype)

    def build() -> None:
        y_pred = model(x, training=False)
        model.compute_loss(x, y, y_pred)
        model.compute_metrics(x, y, y_pred)

    if strategy is None:
        build()
    else:  # metric variables under a strategy update only in a replica context
        strategy.run(build)
    model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)


def work_around_keras_multiworker(model: keras.Model, element_spec: Any) -> None:
    """Let ``fit`` and ``train_on_batch`` run under ``MultiWorkerMirroredStrategy``.

    Keras 3.15 fails there in two places (tensorflow/tensorflow#72388): before training it
    reduces a per-replica input batch with ``strategy.reduce``, which the collective strategy
    cannot do eagerly, only to build what is already built; and after every step it reduces the
    per-replica logs with ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars. So,
    only under that strategy: build everything first and skip that build step, and give each log
    value a leading axis of length 1 in the step, so that Keras's reduction averages the replicas'
    values as its single-machine "mean" reduction does.
    """
    strategy = strategy_of(model)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    build_for_training(model, element_spec, strategy)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    per_replica_results = model.get_metrics_result

    def get_metrics_result() -> dict[str, Any]:
        results = per_replica_results()
        if tf.distribute.in_cross_replica_context():  # values already global
            return results
        return {name: tf.reshape(value, [1]) for name, value in results.items()}

    model.get_metrics_result = get_metrics_result
