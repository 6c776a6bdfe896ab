"""A hand-written JAX training loop under trainways.Loop (level 3, ``KERAS_BACKEND=jax``).

Keras's guide to a training loop on JAX, with the lines trainways needs marked ``# trainways``:
the step is a pure function of the state — ``(trainable, non_trainable, optimizer_variables)`` —
and ``@loop.step`` compiles it with ``jax.jit`` and keeps the state in the model's variables, so
that callbacks, checkpoints, resume and the saved model see the weights::

    KERAS_BACKEND=jax python examples/own_loop_jax.py --data ../shared/data/reuters21578 \\
        --out runs/jax-loop

A training step returns ``(logs, state)``; a validation step returns the logs.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported

import jax
import keras
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

    def compute_loss(trainable, non_trainable, x, y, training):
        y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=training)
        return loss_fn(y, y_pred), (y_pred, non_trainable)

    @loop.step  # trainways: was @jax.jit
    def train_step(state, x, y):
        trainable, non_trainable, optimizer_variables = state
        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
        (loss, (y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable, x, y, True)
        trainable, optimizer_variables = optimizer.stateless_apply(
            optimizer_variables, grads, trainable
        )
        logs = {"loss": loss, "y_pred": y_pred}  # trainways: the logs, not the loss alone
        return logs, (trainable, non_trainable, optimizer_variables)

    @loop.step  # trainways: was @jax.jit
    def test_step(state, x, y):
        trainable, non_trainable, _ = state
        loss, (y_pred, _) = compute_loss(trainable, non_trainable, x, y, False)
        return {"loss": loss, "y_pred": y_pred}

    for _ in loop.epochs():  # trainways: was range(epochs)
        for x, y in loop.batches():  # trainways: was a batch iterator
            loop.log(train_step(x, y))  # trainways: the state stays in the model
        loop.validate(test_step)  # trainways: was a loop over the test set
    return loop


if __name__ == "__main__":
    main()
