"""writing_a_custom_training_loop_in_jax_keras.py ported to trainways.Loop.

Each loop keeps its stateless step; ``trainways.Loop`` gives it the epochs and the batches and
takes each batch's logs, and in return the loop gets ``fit``'s callbacks, epoch logs and History
(and, given ``out=``, a run directory it resumes from; see docs/own-loop.md). ``@loop.step``
replaces ``@jax.jit``: it compiles the step and keeps its state in the model's variables, so the
step takes ``(state, x, y)`` with ``state = (trainable, non_trainable, optimizer_variables)`` and
returns ``(logs, state)``. What changes per loop: the model is compiled with its optimizer
(``Loop`` needs it), a ``Loop`` is made from the arrays the ``tf.data`` pipeline was made from,
the step's signature and return, the batches (NumPy already), and what read or wrote the state
outside the step (the model holds it now). The metrics loop's accuracy leaves the step's state
(the Loop's has no room for it): the step returns ``y_pred`` and ``Loop(metrics=...)`` updates
the metric. tests/test_keras_guides.py compares the weights with the original's.
"""

# %% setup
import os

os.environ["KERAS_BACKEND"] = "jax"  # the guide runs on JAX only

import jax
import keras
import numpy as np
import tensorflow as tf  # for tf.data

import trainways


def load_mnist(n_train, n_test):
    """Stands in for keras.datasets.mnist.load_data(): random digits of its shapes and dtypes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_train + n_test, dtype=np.uint8)
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


# %% a first end-to-end example
def get_model():
    inputs = keras.Input(shape=(784,), name="digits")
    x1 = keras.layers.Dense(64, activation="relu")(inputs)
    x2 = keras.layers.Dense(64, activation="relu")(x1)
    outputs = keras.layers.Dense(10, name="predictions")(x2)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


model = get_model()
batch_size = 32
(x_train, y_train), (x_test, y_test) = load_mnist(1280, 256)
x_train = np.reshape(x_train, (-1, 784)).astype("float32")
x_test = np.reshape(x_test, (-1, 784)).astype("float32")
y_train = keras.utils.to_categorical(y_train)
y_test = keras.utils.to_categorical(y_test)
x_val = x_train[-256:]  # held out for validation
y_val = y_train[-256:]
x_train = x_train[:-256]
y_train = y_train[:-256]
train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
train_dataset = train_dataset.shuffle(buffer_size=1024).batch(batch_size)
val_dataset = tf.data.Dataset.from_tensor_slices((x_val, y_val))
val_dataset = val_dataset.batch(batch_size)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
model.compile(optimizer=optimizer)
loop = trainways.Loop(model, x_train, y_train, batch_size=batch_size)


def compute_loss_and_updates(trainable_variables, non_trainable_variables, x, y):
    # Stateless: the variables come in, the updated non-trainable ones go out.
    y_pred, non_trainable_variables = model.stateless_call(
        trainable_variables, non_trainable_variables, x
    )
    loss = loss_fn(y, y_pred)
    return loss, non_trainable_variables


grad_fn = jax.value_and_grad(compute_loss_and_updates, has_aux=True)


def train_step(state, data):
    trainable_variables, non_trainable_variables, optimizer_variables = state
    x, y = data
    (loss, non_trainable_variables), grads = grad_fn(
        trainable_variables, non_trainable_variables, x, y
    )
    trainable_variables, optimizer_variables = optimizer.stateless_apply(
        optimizer_variables, grads, trainable_variables
    )
    return loss, (trainable_variables, non_trainable_variables, optimizer_variables)


@loop.step  # the same step, compiled
def train_step(state, x, y):  # noqa: F811 (the guide redefines it)
    trainable_variables, non_trainable_variables, optimizer_variables = state
    (loss, non_trainable_variables), grads = grad_fn(
        trainable_variables, non_trainable_variables, x, y
    )
    trainable_variables, optimizer_variables = optimizer.stateless_apply(
        optimizer_variables, grads, trainable_variables
    )
    return {"loss": loss}, (trainable_variables, non_trainable_variables, optimizer_variables)


optimizer.build(model.trainable_variables)  # the optimizer's variables exist before the loop
trainable_variables = [v.value for v in model.trainable_variables]
non_trainable_variables = [v.value for v in model.non_trainable_variables]
optimizer_variables = [v.value for v in optimizer.variables]
state = trainable_variables, non_trainable_variables, optimizer_variables

for _epoch in loop.epochs():
    for step, (x, y) in enumerate(loop.batches()):
        loss = train_step(x, y)["loss"]
        loop.log({"loss": loss})
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {float(loss):.4f}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")

# %% low-level handling of metrics
model = get_model()
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
train_acc_metric = keras.metrics.CategoricalAccuracy()
val_acc_metric = keras.metrics.CategoricalAccuracy()
model.compile(optimizer=optimizer)
loop = trainways.Loop(model, x_train, y_train, batch_size=batch_size, metrics=[train_acc_metric])


def compute_loss_and_updates(trainable_variables, non_trainable_variables, x, y):
    y_pred, non_trainable_variables = model.stateless_call(
        trainable_variables, non_trainable_variables, x
    )
    loss = loss_fn(y, y_pred)
    return loss, (non_trainable_variables, y_pred)


grad_fn = jax.value_and_grad(compute_loss_and_updates, has_aux=True)


@loop.step
def train_step(state, x, y):
    trainable_variables, non_trainable_variables, optimizer_variables = state
    (loss, (non_trainable_variables, y_pred)), grads = grad_fn(
        trainable_variables, non_trainable_variables, x, y
    )
    trainable_variables, optimizer_variables = optimizer.stateless_apply(
        optimizer_variables, grads, trainable_variables
    )
    return {"loss": loss, "y_pred": y_pred}, (
        trainable_variables,
        non_trainable_variables,
        optimizer_variables,
    )


@jax.jit
def eval_step(state, data):
    trainable_variables, non_trainable_variables, metric_variables = state
    x, y = data
    y_pred, non_trainable_variables = model.stateless_call(
        trainable_variables, non_trainable_variables, x
    )
    loss = loss_fn(y, y_pred)
    metric_variables = val_acc_metric.stateless_update_state(metric_variables, y, y_pred)
    return loss, (trainable_variables, non_trainable_variables, metric_variables)


optimizer.build(model.trainable_variables)
trainable_variables = [v.value for v in model.trainable_variables]
non_trainable_variables = [v.value for v in model.non_trainable_variables]
optimizer_variables = [v.value for v in optimizer.variables]
metric_variables = [v.value for v in train_acc_metric.variables]
state = (trainable_variables, non_trainable_variables, optimizer_variables, metric_variables)

for _epoch in loop.epochs():
    for step, (x, y) in enumerate(loop.batches()):
        logs = train_step(x, y)
        loop.log(logs)
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {float(logs['loss']):.4f}")
            print(f"Training accuracy: {train_acc_metric.result()}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")

metric_variables = [v.value for v in val_acc_metric.variables]
trainable_variables = [v.value for v in model.trainable_variables]
non_trainable_variables = [v.value for v in model.non_trainable_variables]
state = trainable_variables, non_trainable_variables, metric_variables

for step, data in enumerate(val_dataset):
    data = (data[0].numpy(), data[1].numpy())
    loss, state = eval_step(state, data)
    if step % 100 == 0:
        print(f"Validation loss (for 1 batch) at step {step}: {float(loss):.4f}")
        _, _, metric_variables = state
        for variable, value in zip(val_acc_metric.variables, metric_variables, strict=True):
            variable.assign(value)
        print(f"Validation accuracy: {val_acc_metric.result()}")
        print(f"Seen so far: {(step + 1) * batch_size} samples")


# %% low-level handling of losses tracked by the model
class ActivityRegularizationLayer(keras.layers.Layer):
    def call(self, inputs):
        self.add_loss(1e-2 * jax.numpy.sum(inputs))
        return inputs


inputs = keras.Input(shape=(784,), name="digits")
x = keras.layers.Dense(64, activation="relu")(inputs)
x = ActivityRegularizationLayer()(x)  # adds its loss at each call
x = keras.layers.Dense(64, activation="relu")(x)
outputs = keras.layers.Dense(10, name="predictions")(x)
model = keras.Model(inputs=inputs, outputs=outputs)


def compute_loss_and_updates(trainable_variables, non_trainable_variables, metric_variables, x, y):
    # return_losses=True: the losses the forward pass added come back too.
    y_pred, non_trainable_variables, losses = model.stateless_call(
        trainable_variables, non_trainable_variables, x, return_losses=True
    )
    loss = loss_fn(y, y_pred)
    if losses:
        loss += jax.numpy.sum(losses)
    metric_variables = train_acc_metric.stateless_update_state(metric_variables, y, y_pred)
    return loss, non_trainable_variables, metric_variables
