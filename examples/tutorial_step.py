"""The tutorial's GradientTape step, as a trainways step function (level 2).

The chapter wrote this step inside its own loop. Here it is the whole of the user's code: trainways
compiles it (one graph for every batch size), runs it per replica under a strategy, and drives the
epochs, validation, callbacks, progress, checkpoints, resume and Ctrl-C around it::

    trainways train --method loop --step examples/tutorial_step.py:train_step \\
        --data ../shared/data/reuters21578

It gives the same weights as ``trainways train --method loop`` (the built-in step), bit for bit.

The contract (docs/custom-steps.md): ``step(model, x, y)`` returns a dict with ``"loss"`` (the
batch's mean loss, as a Keras loss object returns it) and, optionally, ``"y_pred"`` (the batch's
predictions, which update the run's metrics) and other scalars to log.
"""

import keras
import tensorflow as tf

loss_fn = keras.losses.SparseCategoricalCrossentropy()


def train_step(model, x, y):
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = loss_fn(y, y_pred)
    gradients = tape.gradient(loss, model.trainable_weights)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
    return {"loss": loss, "y_pred": y_pred}


def test_step(model, x, y):
    y_pred = model(x, training=False)
    return {"loss": loss_fn(y, y_pred), "y_pred": y_pred}
