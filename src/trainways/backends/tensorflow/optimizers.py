"""Nadams for TensorFlow: its whole update as one XLA-compiled function, or dense gradients."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class _Compiled:
    def __init__(self) -> None:
        self.updates: dict[tuple[int, ...], Any] = {}


@keras.saving.register_keras_serializable(package="trainways")
class XlaNadam(keras.optimizers.Nadam):
    """Nadam whose whole per-step update runs as one XLA-compiled function.

    Keras applies Nadam variable by variable in about 25 small ops each; on a CPU the dispatch
    of those ~175 ops per step costs more than their arithmetic. XLA fuses them. The update is
    the same formula, so results differ from plain Nadam only by float rounding. Under a
    ``tf.distribute`` strategy other than the default, the update needs cross-replica merge
    calls that XLA cannot contain, and plain Nadam's path is used.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # In a plain holder: TensorFlow's tracking would wrap a dict attribute for saving.
        self._compiled = _Compiled()

    def _backend_update_step(
        self, grads: list[Any], trainable_variables: list[Any], learning_rate: Any
    ) -> None:
        if tf.distribute.has_strategy():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        # One compiled function per variable list, closing over the variables: passing them as
        # arguments would let tf.function reuse one trace for two variables of the same shape.
        key = tuple(id(variable) for variable in trainable_variables)
        update = self._compiled.updates.get(key)
        if update is None:
            parent = super()._backend_update_step

            def apply(dense_grads: list[Any], lr: Any) -> None:
                parent(dense_grads, trainable_variables, lr)

            update = self._compiled.updates[key] = tf.function(apply, jit_compile=True)
        # Gradients go in as they come, the embedding's as IndexedSlices: densifying first would
        # change the result, because Keras's Nadam squares a sparse gradient's values before
        # duplicate rows are summed. (Its shape varies with the batch: one compilation per size.)
        update(list(grads), tf.convert_to_tensor(learning_rate))
        return None


@keras.saving.register_keras_serializable(package="trainways")
class DenseNadam(keras.optimizers.Nadam):
    """Nadam that applies an embedding's sparse gradient (``tf.IndexedSlices``) as a dense tensor.

    On TensorFlow, Keras applies a sparse gradient row by row: its Nadam adds the square of each
    occurrence of a word in the batch to the second moment, where JAX and PyTorch (whose
    gradients are dense) add the square of their sum. Densified, the update is theirs: from the
    same weights, one step differs across backends by float rounding instead of by up to the
    learning rate on repeated words' rows.
    """

    def apply(self, grads: list[Any], trainable_variables: list[Any] | None = None) -> Any:
        grads = [
            tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad
            for grad in grads
        ]
        return super().apply(grads, trainable_variables)
