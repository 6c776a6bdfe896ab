"""Keras guide "Writing a training loop from scratch in PyTorch", as one plain Keras script.

Follows keras-io guides/writing_a_custom_training_loop_in_torch.py
(commit 2faba87a9d8e30103405c2788bd32e8e84e5eff7,
https://keras.io/guides/writing_a_custom_training_loop_in_torch/) section by section: the same
model, steps and loops, written for trainways (the project commits no third-party code, so the
statements follow the guide, its prose and comments are not here). Changed: MNIST is synthetic
NumPy data of its shapes and dtypes (no download), 1,280 training and 256 test digits (the
guide: 60,000 and 10,000), 256 of the training digits kept for validation (the guide: 10,000).
``# %%`` lines mark the guide's sections: the port,
writing_a_custom_training_loop_in_torch_trainways.py, has the same ones, and
benchmarks/guide_lines.py counts the lines changed in each.
"""

# %% setup
import os

os.environ["KERAS_BACKEND"] = "torch"  # the guide runs on PyTorch only

import keras
import numpy as np
import torch


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
train_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
val_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val))
train_dataloader = torch.utils.data.DataLoader(train_dataset, batch_size=batch_size, shuffle=True)
val_dataloader = torch.utils.data.DataLoader(val_dataset, batch_size=batch_size, shuffle=False)

# PyTorch's own optimizer and loss (note the loss's argument order: predictions first)
model = get_model()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()

epochs = 3
for _epoch in range(epochs):
    for step, (inputs, targets) in enumerate(train_dataloader):
        logits = model(inputs)
        loss = loss_fn(logits, targets)
        model.zero_grad()  # else the gradients add up across steps
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {loss.detach().numpy():.4f}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")

# %% the same loop with a Keras optimizer and loss
model = get_model()
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)

for epoch in range(epochs):
    print(f"\nStart of epoch {epoch}")
    for step, (inputs, targets) in enumerate(train_dataloader):
        logits = model(inputs)
        loss = loss_fn(targets, logits)
        model.zero_grad()
        trainable_weights = [v for v in model.trainable_weights]
        loss.backward()
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():  # the update is not part of the graph
            optimizer.apply(gradients, trainable_weights)
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {loss.detach().numpy():.4f}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")

# %% low-level handling of metrics
model = get_model()
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
train_acc_metric = keras.metrics.CategoricalAccuracy()
val_acc_metric = keras.metrics.CategoricalAccuracy()

for epoch in range(epochs):
    print(f"\nStart of epoch {epoch}")
    for step, (inputs, targets) in enumerate(train_dataloader):
        logits = model(inputs)
        loss = loss_fn(targets, logits)
        model.zero_grad()
        trainable_weights = [v for v in model.trainable_weights]
        loss.backward()
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            optimizer.apply(gradients, trainable_weights)
        train_acc_metric.update_state(targets, logits)
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {loss.detach().numpy():.4f}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")
    train_acc = train_acc_metric.result()
    print(f"Training acc over epoch: {float(train_acc):.4f}")
    train_acc_metric.reset_state()  # each epoch's accuracy from zero
    for x_batch_val, y_batch_val in val_dataloader:
        val_logits = model(x_batch_val, training=False)
        val_acc_metric.update_state(y_batch_val, val_logits)
    val_acc = val_acc_metric.result()
    val_acc_metric.reset_state()
    print(f"Validation acc: {float(val_acc):.4f}")


# %% low-level handling of losses tracked by the model
class ActivityRegularizationLayer(keras.layers.Layer):
    def call(self, inputs):
        self.add_loss(1e-2 * torch.sum(inputs))
        return inputs


inputs = keras.Input(shape=(784,), name="digits")
x = keras.layers.Dense(64, activation="relu")(inputs)
x = ActivityRegularizationLayer()(x)  # adds its loss at each call
x = keras.layers.Dense(64, activation="relu")(x)
outputs = keras.layers.Dense(10, name="predictions")(x)
model = keras.Model(inputs=inputs, outputs=outputs)

model = get_model()  # as the guide: a fresh model, without the layer above
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
train_acc_metric = keras.metrics.CategoricalAccuracy()
val_acc_metric = keras.metrics.CategoricalAccuracy()

for epoch in range(epochs):
    print(f"\nStart of epoch {epoch}")
    for step, (inputs, targets) in enumerate(train_dataloader):
        logits = model(inputs)
        loss = loss_fn(targets, logits)
        if model.losses:  # the losses the forward pass added
            loss = loss + torch.sum(*model.losses)
        model.zero_grad()
        trainable_weights = [v for v in model.trainable_weights]
        loss.backward()
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            optimizer.apply(gradients, trainable_weights)
        train_acc_metric.update_state(targets, logits)
        if step % 100 == 0:
            print(f"Training loss (for 1 batch) at step {step}: {loss.detach().numpy():.4f}")
            print(f"Seen so far: {(step + 1) * batch_size} samples")
    train_acc = train_acc_metric.result()
    print(f"Training acc over epoch: {float(train_acc):.4f}")
    train_acc_metric.reset_state()
    for x_batch_val, y_batch_val in val_dataloader:
        val_logits = model(x_batch_val, training=False)
        val_acc_metric.update_state(y_batch_val, val_logits)
    val_acc = val_acc_metric.result()
    val_acc_metric.reset_state()
    print(f"Validation acc: {float(val_acc):.4f}")
