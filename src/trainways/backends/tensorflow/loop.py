"""The ``loop`` method's step on TensorFlow: a ``tf.GradientTape`` update in ``tf.function`` graphs.

The step computes what ``Model.fit``'s ``train_step`` computes: forward pass with
``training=True``, the batch-mean loss plus any layer losses, gradients of that sum, one optimizer
update, and the loss tracked with the batch size as weight. Only the steps run as graphs; the epoch
and the run are plain Python in the shared driver. With ``steps_per_execution`` > 1 one graph
runs that many steps in a ``tf.while_loop``, taking batches from the ``tf.data`` iterator inside
the graph, as ``fit`` does: the per-step Python call and host round trip disappear.

Under a ``tf.distribute`` strategy each step runs per replica with ``strategy.run`` on that
replica's share of the global batch; the loss is ``tf.nn.compute_average_loss`` over the global
batch (the all-reduced sum of the replicas' gradients is then the global batch's gradient), and
the metric objects, created in the strategy's scope, aggregate over replicas when read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf

from trainways.backends.tensorflow.distribute import Placement
from trainways.trainers.base import TrainSpec


class LoopStepper:
    """Steps with a hand-written GradientTape update and Keras metric objects.

    Args:
        model: The compiled model; its optimizer is the one the step applies.
        spec: The loss, metrics and XLA setting.
        element_spec: The ``(x, y)`` spec of the undistributed training batches.
        placement: Where the steps run (from :func:`trainways.backends.tensorflow.prepare`).
    """

    def __init__(
        self, model: keras.Model, spec: TrainSpec, element_spec: Any, placement: Placement
    ) -> None:
        strategy = placement.strategy
        self._model = model
        self._loss_fn = spec.loss
        self._optimizer = model.optimizer
        self._strategy = strategy
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._metrics = [self._loss_tracker, *spec.metrics()]
        self._logs: dict[str, tf.Tensor] = {}
        if strategy is None:
            # A fixed signature with an unknown batch dimension: the last, smaller batch of an
            # epoch reuses the same graph instead of tracing a second one.
            signature = list(element_spec)
            train, test = self._train, self._test
        else:
            signature = None  # per-replica values: traced from the distributed dataset's spec
            train = self._distributed(self._train_replica)
            test = self._distributed(self._test_replica)
        self._train_step = tf.function(
            train, input_signature=signature, jit_compile=spec.jit_compile, reduce_retracing=True
        )
        self._test_step = tf.function(
            test, input_signature=signature, jit_compile=spec.jit_compile, reduce_retracing=True
        )
        self._train_many = tf.function(self._many(self._train_step), reduce_retracing=True)
        self._test_many = tf.function(self._many(self._test_step), reduce_retracing=True)

    def _total_loss(self, y: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        loss = self._loss_fn(y, y_pred)
        if self._model.losses:
            loss = loss + tf.add_n(self._model.losses)
        return loss

    def _track(self, loss: tf.Tensor, y: tf.Tensor, y_pred: tf.Tensor) -> None:
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(y_pred)[0])
        for metric in self._metrics[1:]:
            metric.update_state(y, y_pred)

    def _results(self) -> dict[str, tf.Tensor]:
        # Computed in the graph, as fit's train_step returns them: reading them later costs one
        # copy per value instead of several eager ops per metric.
        return {metric.name: metric.result() for metric in self._metrics}

    def _update_metrics(
        self, loss: tf.Tensor, y: tf.Tensor, y_pred: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        self._track(loss, y, y_pred)
        return self._results()

    def _train(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            y_pred = self._model(x, training=True)
            loss = self._total_loss(y, y_pred)
        variables = self._model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self._optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(loss, y, y_pred)

    def _test(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        y_pred = self._model(x, training=False)
        return self._update_metrics(self._total_loss(y, y_pred), y, y_pred)

    def _train_replica(self, x: tf.Tensor, y: tf.Tensor) -> None:
        """One replica's share of a step: the loss averaged over the *global* batch."""
        context = tf.distribute.get_replica_context()
        local = tf.shape(y)[0]
        # Summed over replicas (and workers): the true size of a short last batch too.
        global_size = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        with tf.GradientTape() as tape:
            y_pred = self._model(x, training=True)
            per_example = self._loss_fn.call(y, y_pred)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_size)
            if self._model.losses:
                loss = loss + tf.nn.scale_regularization_loss(tf.add_n(self._model.losses))
        variables = self._model.trainable_variables
        gradients = tape.gradient(loss, variables)
        # Keras's optimizer all-reduces (sums) the replicas' gradients before updating.
        self._optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._track(self._replica_loss(y, y_pred), y, y_pred)

    def _test_replica(self, x: tf.Tensor, y: tf.Tensor) -> None:
        y_pred = self._model(x, training=False)
        self._track(self._replica_loss(y, y_pred), y, y_pred)

    def _replica_loss(self, y: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        """This replica's mean loss, as one device would report it for these examples.

        Not the loss object's value: under a strategy Keras divides that by the number of
        replicas (``scale_loss_for_distribution``), and the tracked mean would come out that
        many times too small.
        """
        loss = tf.reduce_mean(self._loss_fn.call(y, y_pred))
        if self._model.losses:
            loss = loss + tf.add_n(self._model.losses)
        return loss

    def _distributed(self, step: Callable[..., Any]) -> Callable[..., dict[str, tf.Tensor]]:
        def run(x: Any, y: Any) -> dict[str, tf.Tensor]:
            self._strategy.run(step, args=(x, y))
            # Read in cross-replica context: the metrics' variables aggregate over replicas.
            return self._results()

        return run

    def _many(self, step: Callable[..., Any]) -> Callable[[Any, tf.Tensor], Any]:
        """A graph body running up to ``steps`` of ``step`` on batches from an iterator."""

        def run(iterator: Any, steps: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
            ran = tf.constant(0)
            for _ in tf.range(steps):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():
                    break
                step(*batch.get_value())
                ran += 1
            return ran, self._results()

        return run

    def _steps(
        self, step: Callable[..., Any], many: Callable[..., Any], iterator: Any, steps: int
    ) -> int:
        if steps == 1:  # as fit does for one step: no loop, just the step
            batch = next(iterator, None)
            if batch is None:
                return 0
            self._logs = step(*batch)
            return 1
        ran, self._logs = many(iterator, tf.constant(steps))
        return int(ran)

    def reset(self) -> None:
        for metric in self._metrics:
            metric.reset_state()
        self._logs = {}

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._train_step, self._train_many, iterator, steps)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._test_step, self._test_many, iterator, steps)

    def results(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._logs.items()}
