"""A step with two optimizers (level 2): the embedding learns ten times faster than the rest.

The tutorial's embedding is 7 wide and sees each word rarely; a larger learning rate for it
alone is a common fix. Keras has one optimizer per model, so the step applies two: the model's
own for every other weight, and a second one, created here, for the embedding::

    trainways train --method loop --step examples/two_learning_rates.py:train_step \\
        --data ../shared/data/reuters21578

``@trainways.steps.keeps(embedding_optimizer)`` tells trainways about the second optimizer, so
its state is checkpointed with the run's and a resumed run continues it exactly.
"""

import keras
import tensorflow as tf

from trainways.steps import keeps

loss_fn = keras.losses.SparseCategoricalCrossentropy()
embedding_optimizer = keras.optimizers.Nadam(learning_rate=1e-2)


def _is_embedding(variable):
    return "embedding" in variable.path


@keeps(embedding_optimizer)
def train_step(model, x, y):
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = loss_fn(y, y_pred)
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    pairs = list(zip(gradients, variables, strict=True))
    embedding_optimizer.apply_gradients([(g, v) for g, v in pairs if _is_embedding(v)])
    model.optimizer.apply_gradients([(g, v) for g, v in pairs if not _is_embedding(v)])
    return {"loss": loss, "y_pred": y_pred}
