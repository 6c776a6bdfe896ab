"""What :class:`trainways.Loop` needs from TensorFlow: a user's step compiled and run per replica.

On one device :func:`compile_step` is ``tf.function``. Under a ``tf.distribute`` strategy each
replica runs the step on its share of the batch (``strategy.run``) and the logs come back as one
device would report them for the whole batch: every scalar averaged over the replicas weighted by
their number of examples, the loss first multiplied back by the number of replicas (Keras's loss
objects divide by it, so that the summed gradients are the global batch's), and the predictions
joined in replica order (:meth:`Placement.gather` joins the labels the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from trainways import steps as user_steps
from trainways.backends.tensorflow.placement import Placement

_SIZE = "__trainways_examples__"


def compile_step(
    fn: Callable[..., Mapping[str, Any]],
    model: Any,
    placement: Placement,
    element_spec: Any,
) -> Callable[..., dict[str, Any]]:
    """``fn(*batch) -> logs`` compiled, per replica under ``placement``'s strategy.

    Args:
        fn: The user's step on one batch (or one replica's share of it): it takes the batch's
            parts (``x, y``, ``x, y, sample_weight`` or ``x``) and returns logs as
            :mod:`trainways.steps` describes.
        model: The loop's model (the step closes over it on TensorFlow).
        placement: Where it runs.
        element_spec: The spec of the undistributed batch tuples: on one device, one graph
            with an unknown batch dimension serves every batch (the last, smaller one too), as
            the ``loop`` method's step does.

    Returns:
        A callable taking a (distributed) batch's parts and returning the whole batch's logs.
    """
    strategy = placement.strategy
    if strategy is None:
        return tf.function(fn, input_signature=list(element_spec))

    def replica(*parts: Any) -> dict[str, Any]:
        logs = dict(fn(*parts))
        # A batch's examples are its first input's rows: it may have no y.
        examples = tf.cast(tf.shape(tf.nest.flatten(parts[0])[0])[0], tf.float32)
        weighted = {}
        for key, value in logs.items():
            if key == user_steps.PREDICTIONS:
                weighted[key] = value
                continue
            value = tf.cast(value, tf.float32)
            if key == user_steps.LOSS:
                value *= tf.distribute.get_replica_context().num_replicas_in_sync
            weighted[key] = value * examples
        weighted[_SIZE] = examples
        return weighted

    def run(*parts: Any) -> dict[str, Any]:
        per_replica = strategy.run(replica, args=parts)
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[_SIZE], axis=None)
        logs = {}
        for key, value in per_replica.items():
            if key == _SIZE:
                continue
            if key == user_steps.PREDICTIONS:
                logs[key] = placement.gather(value)
            else:
                logs[key] = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) / total
        return logs

    return tf.function(run, reduce_retracing=True)
