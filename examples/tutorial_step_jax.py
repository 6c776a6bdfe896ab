"""The tutorial's step for the JAX backend, as a trainways step function (level 2).

Keras's guide to a hand-written loop on JAX: the step is a pure function of the state. The forward
pass is ``model.stateless_call``, ``jax.value_and_grad`` differentiates the loss with respect to the
trainable weights, and ``optimizer.stateless_apply`` returns the new weights and optimizer state.
trainways compiles it with ``jax.jit``, keeps the state in the model's variables between
executions (callbacks, checkpoints and resume see them), and drives everything around it::

    trainways train --backend jax --method loop \\
        --step examples/tutorial_step_jax.py:train_step --data ../shared/data/reuters21578

The contract (docs/custom-steps.md): ``step(model, state, x, y)`` with ``state`` the
``(trainable, non_trainable, optimizer_variables)`` arrays returns ``(logs, state)``; logs hold
``"loss"`` and, optionally, ``"y_pred"`` and other scalars. ``test_step(model, state, x, y)``, with
the same ``state``, returns the logs.
"""

import jax
import keras

loss_fn = keras.losses.SparseCategoricalCrossentropy()


def compute_loss(trainable, non_trainable, model, x, y, training):
    y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=training)
    return loss_fn(y, y_pred), (y_pred, non_trainable)


def train_step(model, state, x, y):
    trainable, non_trainable, optimizer_variables = state
    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
    (loss, (y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable, model, x, y, True)
    trainable, optimizer_variables = model.optimizer.stateless_apply(
        optimizer_variables, grads, trainable
    )
    return {"loss": loss, "y_pred": y_pred}, (trainable, non_trainable, optimizer_variables)


def test_step(model, state, x, y):
    trainable, non_trainable, _ = state
    loss, (y_pred, _) = compute_loss(trainable, non_trainable, model, x, y, False)
    return {"loss": loss, "y_pred": y_pred}
