"""A model with its own ``train_step`` on PyTorch (level 1): gradient clipping by global norm.

The PyTorch form of ``examples/clipped_model.py``: Keras's "customizing what happens in fit()"
guide for PyTorch — autograd, then ``optimizer.apply`` under ``torch.no_grad()``. Every method runs
it: ``fit`` and ``train_on_batch`` natively, trainways' ``loop`` method instead of its own step::

    trainways train --backend torch --model examples/clipped_model_torch.py:build --method loop \\
        --data ../shared/data/reuters21578
"""

import keras
import torch

from trainways.config import ModelConfig
from trainways.model import build_model

CLIP_NORM = 1.0


@keras.saving.register_keras_serializable(package="trainways_examples")
class ClippedSequential(keras.Sequential):
    """A Sequential model whose gradients are clipped to a global norm of ``CLIP_NORM``."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        loss.backward()
        variables = self.trainable_variables
        gradients = [v.value.grad for v in variables]
        norm = torch.sqrt(sum(torch.sum(g * g) for g in gradients))
        scale = torch.clamp(CLIP_NORM / norm, max=1.0)
        with torch.no_grad():
            self.optimizer.apply([g * scale for g in gradients], variables)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss, sample_weight=y.shape[0])
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
