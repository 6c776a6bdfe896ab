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

The step itself is one of three (:mod:`trainways.steps`): trainways' built-in step, the model's
own ``train_step`` / ``test_step`` when its class overrides them, or a user's step function
(``TrainSpec.train_step`` / ``test_step``), whose logs are tracked as the contract says. Whichever
it is, it is compiled, distributed and driven the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from trainways import steps as user_steps
from trainways.backends.common import PassStepper, batch_rows, trace_user_step
from trainways.backends.tensorflow.placement import Placement
from trainways.trainers.base import TrainSpec


def unscale_loss_for_distribution(loss: tf.Tensor) -> tf.Tensor:
    """The batch's loss from a replica's share of it: Keras's loss objects divide by the
    replicas in sync (1 without a strategy), and ``fit`` logs the loss undivided."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * tf.cast(replicas, loss.dtype)


@dataclass(frozen=True)
class _Pass:
    """What one kind of pass (training or validation) runs and reads.

    Attributes:
        step: One step on a batch as the data yields it (``(x, y)``, ``(x, y, sample_weight)``
            or ``x``), updating ``metrics``; under a strategy, one replica's share of it.
        metrics: The objects it updates (reset at the start of each pass).
        results: Reads them as logs (in cross-replica context under a strategy).
    """

    step: Callable[[Any], Any]
    metrics: list[keras.metrics.Metric]
    results: Callable[[], dict[str, tf.Tensor]]


class LoopStepper(PassStepper):
    """Steps with a hand-written GradientTape update on the model's compiled loss and metrics.

    Args:
        model: The compiled model: its loss, metrics and optimizer are the ones the step uses.
        spec: The XLA setting, and the user's steps if any.
        element_spec: The spec of the undistributed training batches.
        placement: Where the steps run (from :func:`trainways.backends.tensorflow.prepare`).
    """

    def __init__(
        self, model: keras.Model, spec: TrainSpec, element_spec: Any, placement: Placement
    ) -> None:
        self._model = model
        self._optimizer = model.optimizer
        self._strategy = placement.strategy
        self._element_spec = element_spec
        self._spec = spec
        self._logs: dict[str, tf.Tensor] = {}
        if spec.train_step is not None:
            train = self._user_pass(spec.train_step, "step")
        elif user_steps.has_own_step(model):
            train = self._own_pass(model.train_step, "train_step")
        else:
            train = _Pass(self._train, list(model.metrics), model.get_metrics_result)
        self._passes = {"train": train}
        self._train_step, self._train_many = self._compile(train, spec.jit_compile, training=True)
        self._test_step: Any = None
        self._test_many: Any = None
        if spec.test_step is not None:  # the user's: checked now, before any step runs
            self._add_test(self._user_pass(spec.test_step, "test_step"))

    def _add_test(self, test: _Pass) -> None:
        self._passes["test"] = test
        self._test_step, self._test_many = self._compile(
            test, self._spec.jit_compile, training=False
        )

    def _make_test(self) -> _Pass:
        """The validation pass, made when the first validation runs: a run without validation
        data never traces a test step (a GAN's Keras ``test_step`` has no loss to compute)."""
        model = self._model
        if user_steps.has_own_step(model):  # goes with its train_step, or with the user's step
            return self._own_pass(model.test_step, "test_step")
        return _Pass(self._test, list(model.metrics), model.get_metrics_result)

    # ----------------------------------------------------------------- compiling a pass

    def _compile(self, kind: _Pass, jit_compile: bool, *, training: bool) -> tuple[Any, Any]:
        """One step, and up to ``steps`` steps in one graph, as ``tf.function`` graphs."""
        if self._strategy is None:
            # A fixed signature with an unknown batch dimension: the last, smaller batch of an
            # epoch reuses the same graph instead of tracing a second one. The training batches'
            # spec is known; validation batches may have another structure (no sample weights),
            # so their graph is traced from the first one (and relaxed by reduce_retracing).
            signature = [self._element_spec] if training else None

            def one(data: Any) -> dict[str, tf.Tensor]:
                kind.step(data)
                return kind.results()

        else:
            signature = None  # per-replica values: traced from the distributed dataset's spec

            def one(data: Any) -> dict[str, tf.Tensor]:
                self._strategy.run(kind.step, args=(data,))
                # Read in cross-replica context: the metrics' variables aggregate over replicas.
                return kind.results()

        step = tf.function(
            one, input_signature=signature, jit_compile=jit_compile, reduce_retracing=True
        )
        many = tf.function(self._many(step, kind.results), reduce_retracing=True)
        return step, many

    def _probe(self, fn: Callable[[Any], Any]) -> Any:
        """Trace ``fn`` once, without running it, and return what it returned while traced.

        Checks a user's step before any step runs (its logs' keys size the trackers), and builds
        what the step creates on first use (a second optimizer's variables).
        """
        seen: list[Any] = []
        failed: list[Exception] = []

        def record(data: Any) -> None:
            try:
                seen.append(fn(data))
            except Exception as error:
                failed.append(error)
                raise

        try:
            if self._strategy is None:
                tf.function(record).get_concrete_function(self._element_spec)
            else:
                strategy = self._strategy
                tf.function(lambda data: strategy.run(record, args=(data,))).get_concrete_function(
                    self._element_spec
                )
        except Exception:
            if failed:  # as the user's code raised it: tf.function rewrites it into a page
                raise failed[0] from None
            raise
        return seen[0]

    # ----------------------------------------------------------------- a user's step function

    def _user_pass(self, fn: Callable[..., Any], role: str) -> _Pass:
        """A pass running the user's ``fn(model, x, y)``, its logs tracked as the contract says."""
        model = self._model

        def call(data: Any) -> Any:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            return fn(model, x, y)

        traced = trace_user_step(fn, role, lambda: self._probe(call))
        logs = user_steps.check_logs(traced, role=role, source=fn)
        scalars = {
            key: keras.metrics.Mean(name=key) for key in logs if key != user_steps.PREDICTIONS
        }
        metrics = self._spec.metrics() if user_steps.PREDICTIONS in logs else []

        def track(data: Any) -> None:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            out = fn(model, x, y)
            size = batch_rows(x)
            for key, tracker in scalars.items():
                value = tf.cast(out[key], tf.float32)
                if key == user_steps.LOSS:
                    # Keras's loss objects divide by the replicas under a strategy (1 without):
                    # log the batch's loss itself, as Keras's train_step does.
                    value *= tf.distribute.get_strategy().num_replicas_in_sync
                tracker.update_state(value, sample_weight=size)
            for metric in metrics:
                metric.update_state(y, out[user_steps.PREDICTIONS])

        every = [*scalars.values(), *metrics]
        return _Pass(track, every, lambda: {m.name: m.result() for m in every})

    # ----------------------------------------------------------------- the model's own step

    def _own_pass(self, method: Callable[[Any], Any], role: str) -> _Pass:
        """A pass running the model's own ``train_step`` / ``test_step`` on the batch exactly as
        ``fit`` hands it: Keras's logs."""
        model = self._model
        # A step may return the results flat (get_metrics_result) or per metric object.
        names = dict.fromkeys([*model.get_metrics_result(), *(m.name for m in model.metrics)])
        traced = self._probe(method)
        user_steps.check_own_step_logs(traced, list(names), role=role)
        return _Pass(method, list(model.metrics), model.get_metrics_result)

    # ----------------------------------------------------------------- the built-in step

    def _train(self, data: Any) -> None:
        """``fit``'s ``train_step`` written out: the compiled loss (scaled for the replicas
        under a strategy, as Keras's loss objects scale it), its gradients, one update, and the
        compiled metrics."""
        model = self._model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
            model._loss_tracker.update_state(  # the tracker fit logs "loss" with
                unscale_loss_for_distribution(loss), sample_weight=batch_rows(x)
            )
            loss = self._optimizer.scale_loss(loss)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self._optimizer.apply_gradients(zip(gradients, variables, strict=True))
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _test(self, data: Any) -> None:
        model = self._model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = model(x, training=False)
        loss = model.compute_loss(x, y, y_pred, sample_weight, training=False)
        model._loss_tracker.update_state(
            unscale_loss_for_distribution(loss), sample_weight=batch_rows(x)
        )
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _many(
        self, step: Callable[..., Any], results: Callable[[], dict[str, tf.Tensor]]
    ) -> Callable[[Any, tf.Tensor], Any]:
        """A graph body running up to ``steps`` of ``step`` on batches from an iterator."""

        def run(iterator: Any, steps: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
            ran = tf.constant(0)
            for _ in tf.range(steps):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():
                    break
                step(batch.get_value())
                ran += 1
            return ran, results()

        return run

    def _steps(
        self, step: Callable[..., Any], many: Callable[..., Any], iterator: Any, steps: int
    ) -> int:
        if steps == 1:  # as fit does for one step: no loop, just the step
            batch = next(iterator, None)
            if batch is None:
                return 0
            self._logs = step(batch)
            return 1
        ran, self._logs = many(iterator, tf.constant(steps))
        return int(ran)

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        return self._steps(self._train_step, self._train_many, iterator, steps)

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        if self._test_step is None:
            self._add_test(self._make_test())
        return self._steps(self._test_step, self._test_many, iterator, steps)
