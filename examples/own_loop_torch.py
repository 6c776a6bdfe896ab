"""A hand-written PyTorch training loop under trainways.Loop (level 3, ``KERAS_BACKEND=torch``).

Keras's guide to a training loop on PyTorch, with the lines trainways needs marked
``# trainways``: autograd computes the gradients and the optimizer applies them under
``torch.no_grad()``; the batches come as tensors on Keras's device::

    KERAS_BACKEND=torch python examples/own_loop_torch.py --data ../shared/data/reuters21578 \\
        --out runs/torch-loop
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is imported

import keras
import torch
from common import accuracy_metrics, arguments, reuters, tutorial_cnn

import trainways


def main(argv=None, callbacks=()):
    args = arguments(__doc__.splitlines()[0], argv)
    (x_train, y_train), (x_test, y_test), vocab_size, num_classes = reuters(args)
    model = tutorial_cnn(vocab_size, num_classes, args)
    optimizer = keras.optimizers.Nadam(learning_rate=1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer)  # trainways: checkpoints keep the optimizer's state
    loop = trainways.Loop(  # trainways
        model,
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        deterministic=args.deterministic,
        metrics=accuracy_metrics(),
        out=args.out,
        callbacks=callbacks,
        tracking=args.mlflow,  # trainways: None tracks nothing
    )

    def train_step(x, y):
        y_pred = model(x, training=True)
        model.zero_grad()
        loss = loss_fn(y, y_pred)
        loss.backward()
        variables = model.trainable_variables
        with torch.no_grad():
            optimizer.apply([v.value.grad for v in variables], variables)
        return {"loss": loss, "y_pred": y_pred}  # trainways: the logs, not the loss alone

    @torch.no_grad()
    def test_step(x, y):
        y_pred = model(x, training=False)
        return {"loss": loss_fn(y, y_pred), "y_pred": y_pred}

    for _ in loop.epochs():  # trainways: was range(epochs)
        for x, y in loop.batches():  # trainways: was a DataLoader
            loop.log(train_step(x, y))  # trainways
        loop.validate(test_step)  # trainways: was a loop over the test set
    return loop


if __name__ == "__main__":
    main()
