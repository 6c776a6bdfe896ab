"""A custom loss term in your own loop: the tutorial's step plus a confidence penalty.

A confidence penalty (Pereyra et al., 2017) subtracts a multiple of the predictions' entropy from
the loss, so the model is discouraged from putting all its probability on one topic — a
regulariser for an overfitting model such as the tutorial's. The step logs the penalty beside the
loss; trainways averages both over the epoch, weighted by batch size, and keeps them in
``history.csv``::

    python examples/custom_loss_term.py --data ../shared/data/reuters21578 --out runs/penalty
"""

import keras
import tensorflow as tf
from common import accuracy_metrics, arguments, reuters, tutorial_cnn

import trainways

BETA = 0.1  # weight of the entropy term


def main(argv=None, callbacks=()):
    args = arguments(__doc__.splitlines()[0], argv)
    (x_train, y_train), (x_test, y_test), vocab_size, num_classes = reuters(args)
    model = tutorial_cnn(vocab_size, num_classes, args)
    optimizer = keras.optimizers.Nadam(learning_rate=1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer)
    loop = trainways.Loop(
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
    )

    @loop.step
    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            cross_entropy = loss_fn(y, y_pred)
            entropy = -tf.reduce_mean(tf.reduce_sum(y_pred * tf.math.log(y_pred + 1e-7), 1))
            loss = cross_entropy - BETA * entropy
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
        return {"loss": loss, "cross_entropy": cross_entropy, "entropy": entropy, "y_pred": y_pred}

    @loop.step
    def test_step(x, y):
        y_pred = model(x, training=False)
        return {"loss": loss_fn(y, y_pred), "y_pred": y_pred}

    for _ in loop.epochs():
        for x, y in loop.batches():
            loop.log(train_step(x, y))
        loop.validate(test_step)
    return loop


if __name__ == "__main__":
    main()
