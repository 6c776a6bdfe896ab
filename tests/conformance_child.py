"""One backend's row of the conformance table: every input kind × method against plain ``fit``.

Run as ``KERAS_BACKEND=<backend> python tests/conformance_child.py``: prints one JSON object,
``{"<kind>/<method>": verdict}``, a verdict being ``"same"`` (History keys and values and the
final weights equal plain ``model.fit``'s on the same batches), ``"refused: <message>"`` (a
one-line ConfigError / DataError before training) or ``"differs: <what>"``.

The kinds come from one table, :data:`KINDS`: each builds the model (compiled as its user
would) and ``fit``'s keyword arguments, fresh for every call (a generator is used up by one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

import trainways
from trainways.config import ConfigError
from trainways.data.errors import DataError

N, FEATURES, CLASSES, BATCH, EPOCHS = 48, 6, 3, 16, 2
RNG = np.random.default_rng(0)
X = RNG.random((N, FEATURES)).astype("float32")
X2 = RNG.random((N, 2)).astype("float32")
Y = RNG.integers(0, CLASSES, N).astype("int32")
Y_REG = RNG.random((N, 1)).astype("float32")
WEIGHTS = np.linspace(0.5, 1.5, N).astype("float32")


def _single() -> keras.Model:
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _multi() -> keras.Model:
    """Two named inputs, two named outputs, a loss per output and loss_weights."""
    keras.utils.set_random_seed(1)
    a = keras.Input((FEATURES,), name="a")
    b = keras.Input((2,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    label = keras.layers.Dense(CLASSES, activation="softmax", name="label")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    model = keras.Model({"a": a, "b": b}, {"label": label, "value": value})
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
        loss_weights={"label": 1.0, "value": 0.5},
        metrics={"label": ["accuracy"], "value": ["mae"]},
    )
    return model


def _batches(with_weights: bool = False) -> list[tuple[Any, ...]]:
    rows = [slice(start, start + BATCH) for start in range(0, N, BATCH)]
    if with_weights:
        return [(X[r], Y[r], WEIGHTS[r]) for r in rows]
    return [(X[r], Y[r]) for r in rows]


class _Sequence(keras.utils.PyDataset):
    def __len__(self) -> int:
        return len(_batches())

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return _batches()[index]


def _generator() -> Any:
    while True:
        yield from _batches()


def _tf_dataset(with_weights: bool = False) -> Any:
    import tensorflow as tf

    parts = (X, Y, WEIGHTS) if with_weights else (X, Y)
    return tf.data.Dataset.from_tensor_slices(parts).batch(BATCH)


def _torch_loader() -> Any:
    import torch

    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=False)


# kind -> (model builder, fit's keyword arguments, fresh per call)
KINDS: dict[str, tuple[Callable[[], keras.Model], Callable[[], dict[str, Any]]]] = {
    "arrays": (_single, lambda: {"x": X, "y": Y, "batch_size": BATCH}),
    "dict inputs and outputs": (
        _multi,
        lambda: {"x": {"a": X, "b": X2}, "y": {"label": Y, "value": Y_REG}, "batch_size": BATCH},
    ),
    "sample_weight": (
        _single,
        lambda: {"x": X, "y": Y, "sample_weight": WEIGHTS, "batch_size": BATCH},
    ),
    "sample_weight, unweighted validation": (
        _single,
        lambda: {
            "x": X,
            "y": Y,
            "sample_weight": WEIGHTS,
            "batch_size": BATCH,
            "validation_data": (X[:20], Y[:20]),
        },
    ),
    "class_weight": (
        _single,
        lambda: {"x": X, "y": Y, "class_weight": {0: 2.0, 1: 1.0, 2: 0.5}, "batch_size": BATCH},
    ),
    "validation_split": (
        _single,
        lambda: {"x": X, "y": Y, "batch_size": BATCH, "validation_split": 0.25},
    ),
    "validation_data": (
        _single,
        lambda: {"x": X, "y": Y, "batch_size": BATCH, "validation_data": (X[:20], Y[:20])},
    ),
    "validation_freq": (
        _single,
        lambda: {
            "x": X,
            "y": Y,
            "batch_size": BATCH,
            "validation_split": 0.25,
            "validation_freq": 2,
        },
    ),
    "validation_steps": (
        _single,
        lambda: {
            "x": X,
            "y": Y,
            "batch_size": BATCH,
            "validation_data": _tf_dataset(),
            "validation_steps": 1,
        },
    ),
    "initial_epoch": (
        _single,
        lambda: {"x": X, "y": Y, "batch_size": BATCH, "initial_epoch": 1},
    ),
    "tf.data": (_single, lambda: {"x": _tf_dataset()}),
    "tf.data (x, y, sample_weight)": (_single, lambda: {"x": _tf_dataset(with_weights=True)}),
    "PyDataset": (_single, lambda: {"x": _Sequence()}),
    "generator": (_single, lambda: {"x": _generator(), "steps_per_epoch": 3}),
    "torch DataLoader": (_single, lambda: {"x": _torch_loader()}),
}
METHODS = ("fit", "batch", "loop")
#: Rows of fit's own arguments rather than input kinds: the epochs they shape are the shared
#: driver's for batch and loop on every backend, so one backend's row checks them.
DRIVER_ROWS = ("validation_freq", "validation_steps", "initial_epoch")


def _compare(expected: dict, got: dict, reference: keras.Model, model: keras.Model) -> str:
    if list(got) != list(expected):
        return f"differs: keys {list(got)} != {list(expected)}"
    for key, values in expected.items():
        if not np.allclose(got[key], values, rtol=1e-5, atol=1e-6):
            return f"differs: {key} {got[key]} != {values}"
    for mine, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        if not np.allclose(mine, theirs, rtol=1e-5, atol=1e-6):
            return "differs: weights"
    return "same"


def main() -> None:
    table: dict[str, str] = {}
    for kind, (build, arguments) in KINDS.items():
        if kind in DRIVER_ROWS and keras.backend.backend() != "tensorflow":
            continue
        reference = build()
        expected = reference.fit(**arguments(), epochs=EPOCHS, shuffle=False, verbose=0).history
        for method in METHODS:
            model = build()
            try:
                history = trainways.fit(
                    model, **arguments(), epochs=EPOCHS, shuffle=False, verbose=0, method=method
                )
            except (ConfigError, DataError) as error:
                table[f"{kind}/{method}"] = f"refused: {error}"
                continue
            except Exception as error:  # a crash is a verdict too: never silent
                table[f"{kind}/{method}"] = f"differs: {type(error).__name__}: {error}"
                continue
            table[f"{kind}/{method}"] = _compare(expected, history.history, reference, model)
    print(json.dumps(table))


if __name__ == "__main__":
    main()
