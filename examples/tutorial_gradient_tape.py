"""The tutorial's method 3 — a GradientTape step in a hand-written loop — under trainways.Loop.

The tutorial's step and loop, as a user wrote them, with a handful of lines changed (marked
``# trainways``): the model is compiled with the optimizer (checkpoints keep its state), the
``Loop`` hands out epochs and batches and takes the step's logs, and ``@loop.step`` replaces
``@tf.function`` (one graph for every batch size, the last smaller batch too, as trainways' own
``loop`` method; with ``@tf.function`` the weights after an epoch differ from it by about 1e-7,
because each batch shape gets its own graph). In return: callbacks, true epoch means, progress,
``history.csv``, checkpoints and resume, a clean Ctrl-C, and ``MirroredStrategy`` if the model is
built in its scope::

    python examples/tutorial_gradient_tape.py --data ../shared/data/reuters21578 --out runs/tape
"""

import keras
import tensorflow as tf
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

    @loop.step  # trainways: was @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = loss_fn(y, y_pred)
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
        return {"loss": loss, "y_pred": y_pred}  # trainways: was loss (metrics updated here)

    @loop.step  # trainways: was @tf.function
    def test_step(x, y):
        y_pred = model(x, training=False)
        return {"loss": loss_fn(y, y_pred), "y_pred": y_pred}

    for _ in loop.epochs():  # trainways: was range(epochs)
        for x, y in loop.batches():  # trainways: was the tf.data dataset
            loop.log(train_step(x, y))  # trainways
        loop.validate(test_step)  # trainways: was a loop over the test set
    return loop


if __name__ == "__main__":
    main()
