"""A model with its own ``train_step`` (level 1): gradient clipping by global norm.

Keras's convention ("customizing what happens in fit()"): the model's class overrides
``train_step``, and every method runs it — ``fit`` and ``train_on_batch`` natively, trainways'
``loop`` method instead of its built-in step::

    trainways train --model examples/clipped_model.py:build --method loop \\
        --data ../shared/data/reuters21578

``build`` is a model builder: trainways calls it with the arguments it names (``vocab_size``,
``num_classes``, ``max_len``, ``embedding_dim``). The class is registered with Keras so that the
saved ``model.keras`` loads again (``trainways evaluate --trust-code`` imports this file first).
"""

import keras
import tensorflow as tf

from trainways.config import ModelConfig
from trainways.model import build_model

CLIP_NORM = 1.0


@keras.saving.register_keras_serializable(package="trainways_examples")
class ClippedSequential(keras.Sequential):
    """A Sequential model whose gradients are clipped to a global norm of ``CLIP_NORM``."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        gradients, _ = tf.clip_by_global_norm(gradients, CLIP_NORM)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return self.get_metrics_result()


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
