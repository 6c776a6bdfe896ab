"""A model with its own ``train_step`` on JAX (level 1): gradient clipping by global norm.

The JAX form of ``examples/clipped_model.py``: Keras's "customizing what happens in fit()" guide
for JAX — ``train_step(self, state, data)`` is a pure function of the state, returning the logs
and the new state. Every method runs it: ``fit`` and ``train_on_batch`` natively, trainways'
``loop`` method (compiled with ``jax.jit``) instead of its own step::

    trainways train --backend jax --model examples/clipped_model_jax.py:build --method loop \\
        --data ../shared/data/reuters21578
"""

import jax
import jax.numpy as jnp
import keras

from trainways.config import ModelConfig
from trainways.model import build_model

CLIP_NORM = 1.0


@keras.saving.register_keras_serializable(package="trainways_examples")
class ClippedSequential(keras.Sequential):
    """A Sequential model whose gradients are clipped to a global norm of ``CLIP_NORM``."""

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)

        def loss_fn(trainable):
            y_pred, updated = self.stateless_call(trainable, non_trainable, x, training=True)
            return self.loss(y, y_pred), (y_pred, updated)

        (loss, (y_pred, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable
        )
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads))
        scale = jnp.minimum(1.0, CLIP_NORM / norm)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, [g * scale for g in grads], trainable
        )
        logs, updated = {}, []
        for metric in self.metrics:
            variables = metrics_variables[len(updated) : len(updated) + len(metric.variables)]
            if metric.name == "loss":
                variables = metric.stateless_update_state(variables, loss, sample_weight=len(y))
            else:
                variables = metric.stateless_update_state(variables, y, y_pred)
            result = metric.stateless_result(variables)
            logs.update(result if isinstance(result, dict) else {metric.name: result})
            updated += list(variables)
        return logs, (trainable, non_trainable, optimizer_variables, updated)


def build(vocab_size, num_classes, max_len, embedding_dim=7):
    """The tutorial's CNN, layer for layer, in the clipping class."""
    tutorial = build_model(
        ModelConfig(embedding_dim=embedding_dim),
        vocab_size=vocab_size,
        num_classes=num_classes,
        max_len=max_len,
    )
    return ClippedSequential(
        [keras.Input(shape=(max_len,), dtype="int32"), *tutorial.layers], name="clipped_cnn"
    )
