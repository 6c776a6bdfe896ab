"""The public library entry point, including the README's example run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainways
from trainways.config import ConfigError

from helpers import Spy, toy_problem

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- example:library -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "README lost its library example"
    return match.group(1)


def test_readme_library_example_runs_and_learns():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    lines = out.getvalue().strip().splitlines()
    assert [line.split()[0] for line in lines] == ["fit", "batch", "loop"]
    for line in lines:
        assert float(line.split()[-1]) > 0.85, line


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(40, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_train_on_a_dataset_with_string_loss_and_metrics(method):
    x, y = toy_problem()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    spy = Spy()
    history = trainways.train(
        _model(),
        dataset,
        method=method,
        epochs=3,
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
        validation_data=dataset,
        callbacks=[spy],
    )
    assert set(history.history) == {
        "loss",
        "sparse_categorical_accuracy",
        "val_loss",
        "val_sparse_categorical_accuracy",
    }
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert spy.calls[0] == ("on_train_begin", None)


def test_per_sample_loss_function_is_averaged_like_compile():
    x, y = toy_problem()
    fit = trainways.train(
        _model(),
        x,
        y,
        method="fit",
        epochs=1,
        shuffle=False,
        loss=keras.losses.sparse_categorical_crossentropy,
    )
    loop = trainways.train(
        _model(),
        x,
        y,
        method="loop",
        epochs=1,
        shuffle=False,
        loss=keras.losses.sparse_categorical_crossentropy,
    )
    assert loop.history["loss"][0] == pytest.approx(fit.history["loss"][0], rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "adamw"}, "unknown method 'adamw'"),
        ({"epochs": 0}, "epochs must be positive, got 0"),
        ({"batch_size": -1}, "batch_size must be positive, got -1"),
        ({"epochz": 3}, "unknown option.s. epochz for TrainConfig"),
        ({"precision": "mixed_bfloat16"}, "precision applies to models trainways builds"),
        ({"y": None}, "x: NumPy input needs both x and y"),
        ({"y": np.zeros(3)}, "x has 200 samples but y has 3"),
        ({"backend": "jax"}, "backend jax: Keras already runs on tensorflow in this process"),
        ({"dense_gradients": True, "optimizer": "adam"}, "dense_gradients chooses a Nadam"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message):
    x, y = toy_problem()
    arguments = {"y": y, **kwargs}
    with pytest.raises(ConfigError, match=message):
        trainways.train(_model(), x, **arguments)


def test_the_clis_training_options_act_in_the_library_too():
    from trainways.config import TrainConfig

    x, y = toy_problem()  # 200 samples: 4 steps of 50
    spy = Spy()
    model = _model()
    history = trainways.train(
        model,
        x,
        y,
        config=TrainConfig(method="loop", epochs=3, batch_size=50, seed=1),
        optimizer="nadam",
        learning_rate=0.01,
        lr_halve_at=2,
        steps_per_execution=2,
        xla_optimizer=True,
        callbacks=[spy],
    )
    assert type(model.optimizer).__name__ == "XlaNadam"
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.005])
    # Two executions of two steps per epoch: fit's batch indices 0-1 and 2-3.
    ends = [index for hook, index in spy.calls if hook == "on_train_batch_end"]
    assert ends == [1, 3] * 3
