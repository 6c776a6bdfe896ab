"""The tutorial's step for the PyTorch backend, as a trainways step function (level 2).

Keras's guide to a hand-written loop on PyTorch: autograd computes the gradients
(``loss.backward()`` leaves them in each variable's ``.value.grad``) and the optimizer applies them
under ``torch.no_grad()``. trainways runs it eagerly, as ``fit`` does on PyTorch, and drives
everything around it::

    trainways train --backend torch --method loop \\
        --step examples/tutorial_step_torch.py:train_step --data ../shared/data/reuters21578

It gives the same weights as ``trainways train --backend torch --method loop`` (the built-in step).
The contract (docs/custom-steps.md): ``step(model, x, y)`` returns a dict with ``"loss"`` and,
optionally, ``"y_pred"`` and other scalars to log.
"""

import keras
import torch

loss_fn = keras.losses.SparseCategoricalCrossentropy()


def train_step(model, x, y):
    y_pred = model(x, training=True)
    model.zero_grad()  # the gradients the previous step left on the variables
    loss = loss_fn(y, y_pred)
    loss.backward()
    variables = model.trainable_variables
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    return {"loss": loss, "y_pred": y_pred}


def test_step(model, x, y):
    with torch.no_grad():
        y_pred = model(x, training=False)
        return {"loss": loss_fn(y, y_pred), "y_pred": y_pred}
