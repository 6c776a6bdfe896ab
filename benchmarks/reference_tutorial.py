"""The tutorial chapter's three training methods, as written, for speed comparisons only.

Changed only where Keras 3 / TF 2.21 force it, each change marked ``# Keras 3:``; the tutorial's
own bugs (the frozen shuffle order, last-batch metrics in the train_on_batch loop) are kept on
purpose, because this is the baseline trainways is measured against. It is never imported by the
package. Data: the same Reuters split trainways uses (Keras's download is not reachable here).

Run one method; prints one JSON line with the per-epoch seconds and validation accuracies:

    python benchmarks/reference_tutorial.py fit --epochs 4 --data ../shared/data/reuters21578
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from trainways.data import load_reuters


def load(data: str, batch_size: int = 32):
    r = load_reuters(data)
    x_train = keras.utils.pad_sequences(r.x_train, maxlen=300)
    x_test = keras.utils.pad_sequences(r.x_test, maxlen=300)
    # Keras 3: the tutorial's x_train.max() + 1 crashes the CPU gather on test-only ids.
    vocab = max(x_train.max(), x_test.max()) + 1
    # The tutorial's pipeline, its frozen-order cache included.
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, r.y_train))
        .shuffle(10000)
        .batch(batch_size)
        .prefetch(tf.data.experimental.AUTOTUNE)
        .cache()
    )
    test = (
        tf.data.Dataset.from_tensor_slices((x_test, r.y_test))
        .batch(batch_size)
        .prefetch(tf.data.experimental.AUTOTUNE)
        .cache()
    )
    return train, test, int(vocab)


def build(vocab: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((300,)),  # Keras 3: input_shape= on the first layer is gone
            keras.layers.Embedding(vocab, 7),
            keras.layers.Conv1D(64, 5, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Conv1D(32, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(46, activation="softmax"),
        ]
    )


def method_fit(model, train, test, epochs):
    model.compile(
        optimizer=keras.optimizers.Nadam(),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=5)],
    )
    seconds, val = [], []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t)
            val.append(float(logs["val_accuracy"]))

    model.fit(train, epochs=epochs, validation_data=test, callbacks=[Timer()], verbose=0)
    return seconds, val


def method_batch(model, train, test, epochs):
    model.compile(
        optimizer=keras.optimizers.Nadam(),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=5)],
    )
    seconds, val = [], []
    for epoch in range(epochs):
        started = time.perf_counter()
        if epoch == 5:
            # Keras 3: optimizer.lr and K.set_value are gone.
            model.optimizer.learning_rate.assign(model.optimizer.learning_rate * 0.5)
        for x, y in train:
            # Keras 3: reset_metrics= is gone; each call's metrics are that batch's.
            model.train_on_batch(x, y, return_dict=True)
        for x, y in test:
            logs = model.test_on_batch(x, y, return_dict=True)
        seconds.append(time.perf_counter() - started)
        val.append(float(logs["accuracy"]))  # the tutorial's last-batch value, as written
    return seconds, val


def method_loop(model, train, test, epochs):
    optimizer = keras.optimizers.Nadam()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    train_loss = keras.metrics.Mean()
    train_acc = keras.metrics.SparseCategoricalAccuracy()
    val_acc = keras.metrics.SparseCategoricalAccuracy()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = loss_fn(y, pred)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        train_loss(loss)
        train_acc(y, pred)

    @tf.function
    def test_step(x, y):
        val_acc(y, model(x, training=False))

    seconds, val = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        for metric in (train_loss, train_acc, val_acc):
            metric.reset_state()  # Keras 3: reset_states() is gone
        for x, y in train:
            train_step(x, y)
        for x, y in test:
            test_step(x, y)
        seconds.append(time.perf_counter() - started)
        val.append(float(val_acc.result()))
    return seconds, val


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=("fit", "batch", "loop"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    train, test, vocab = load(args.data)
    model = build(vocab)
    run = {"fit": method_fit, "batch": method_batch, "loop": method_loop}[args.method]
    seconds, val = run(model, train, test, args.epochs)
    print(json.dumps({"epoch_seconds": seconds, "val_accuracy": val}))


if __name__ == "__main__":
    main()
