"""The tutorial's method 2 — a ``train_on_batch`` loop, LR halved at epoch 5 — under trainways.Loop.

The tutorial's loop, as a user wrote it, with four lines changed (marked ``# trainways``): the
``Loop`` is made, it hands out the epochs and the batches, and it takes each batch's logs. In return
the loop gets Keras callbacks in ``fit``'s order, true epoch means (the tutorial printed its last
batch's figures), the epoch lines and a progress bar, ``history.csv`` and checkpoints in ``--out``,
resuming after a kill where it stopped, and a clean stop on Ctrl-C::

    python examples/tutorial_train_on_batch.py --data ../shared/data/reuters21578 --out runs/tob

Run the same command again after stopping it, and it resumes.
"""

import keras
from common import accuracy_metrics, arguments, reuters, tutorial_cnn

import trainways


def main(argv=None, callbacks=()):
    args = arguments(__doc__.splitlines()[0], argv)
    (x_train, y_train), (x_test, y_test), vocab_size, num_classes = reuters(args)
    model = tutorial_cnn(vocab_size, num_classes, args)
    model.compile(
        optimizer=keras.optimizers.Nadam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=accuracy_metrics(),
    )
    loop = trainways.Loop(  # trainways
        model,
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        deterministic=args.deterministic,
        out=args.out,
        callbacks=callbacks,
    )
    for epoch in loop.epochs():  # trainways: was range(epochs)
        if epoch == 4:  # the tutorial halved the learning rate at epoch 5
            model.optimizer.learning_rate = model.optimizer.learning_rate / 2
        for x, y in loop.batches():  # trainways: was the tf.data dataset
            loop.log(model.train_on_batch(x, y, return_dict=True))  # trainways
        loop.validate(lambda x, y: model.test_on_batch(x, y, return_dict=True))
    return loop


if __name__ == "__main__":
    main()
