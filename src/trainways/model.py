"""Model presets and the loss / optimizer / metric factories every training method shares.

All three methods build their model, loss, optimizer and metrics here, so they differ only in how
the training loop is driven.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras

from trainways.config import ConfigError, ModelConfig, is_code_ref

ModelBuilder = Callable[[int, int, int, ModelConfig], keras.Model]

PRESETS: dict[str, ModelBuilder] = {}


def register_preset(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model builder under ``name``.

    A builder takes ``(vocab_size, num_classes, max_len, config)`` and returns an uncompiled
    ``keras.Model`` whose output is a softmax over ``num_classes``.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in PRESETS:
            raise ValueError(f"model preset {name!r} is already registered")
        PRESETS[name] = builder
        return builder

    return decorate


@register_preset("cnn")
def tutorial_cnn(
    vocab_size: int, num_classes: int, max_len: int, config: ModelConfig
) -> keras.Model:
    """The tutorial's 1-D CNN, layer for layer (332,863 parameters on the full vocabulary)."""
    return keras.Sequential(
        [
            keras.Input(shape=(max_len,), dtype="int32"),
            keras.layers.Embedding(vocab_size, config.embedding_dim),
            keras.layers.Conv1D(64, 5, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Conv1D(32, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Flatten(),
            # float32 whatever the precision: Keras's advice for mixed precision, so the softmax
            # and the loss see full-precision probabilities.
            keras.layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="tutorial_cnn",
    )


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """Build layers under the Keras dtype policy ``precision``, then restore the previous one.

    Layers keep the policy they were built with, so a model built here trains in ``precision``
    while the rest of the process is unaffected.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(
    config: ModelConfig,
    *,
    vocab_size: int,
    num_classes: int,
    max_len: int,
    precision: str = "float32",
) -> keras.Model:
    """Build the preset named by ``config.preset`` with the dtype policy ``precision``.

    ``config.preset`` may also name the user's builder, ``FILE.py:FUNCTION``
    (:func:`trainways.steps.build_from_function`).

    With ``config.initial_weights`` the model starts from that file's weights.

    Raises:
        ConfigError: The preset is not registered, the builder cannot be loaded or called, or
            the initial weights do not load into the model.
    """
    from trainways import steps

    if is_code_ref(config.preset):
        builder = steps.load_function(config.preset, role="preset")
        with precision_scope(precision):
            model = steps.build_from_function(
                builder,
                config.preset,
                vocab_size=vocab_size,
                num_classes=num_classes,
                max_len=max_len,
                embedding_dim=config.embedding_dim,
            )
    else:
        try:
            builder = PRESETS[config.preset]
        except KeyError:
            raise ConfigError(
                f"unknown model preset {config.preset!r}: choose one of "
                f"{', '.join(sorted(PRESETS))}"
            ) from None
        with precision_scope(precision):
            model = builder(vocab_size, num_classes, max_len, config)
    if config.initial_weights is not None:
        try:
            model.load_weights(config.initial_weights)
        except (OSError, ValueError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ConfigError(
                f"initial_weights {config.initial_weights}: does not load into model "
                f"{config.preset!r} ({first}): give weights saved from the same model",
                keys=("initial_weights",),
            ) from None
    return model


def build_loss() -> keras.losses.Loss:
    """Sparse categorical cross-entropy on probabilities, averaged over the batch."""
    return keras.losses.SparseCategoricalCrossentropy(name="loss")


def build_optimizer(
    learning_rate: float, *, xla: bool = False, dense: bool = False
) -> keras.optimizers.Optimizer:
    """Nadam, as in the tutorial; with ``xla``, the backend's Nadam with one compiled update;
    with ``dense``, the backend's Nadam that applies every gradient dense (see
    :class:`trainways.config.TrainConfig`)."""
    from trainways.backends import current

    backend = current()
    kind = backend.XlaNadam if xla else backend.DenseNadam if dense else keras.optimizers.Nadam
    return kind(learning_rate=learning_rate)


def build_metrics() -> list[keras.metrics.Metric]:
    """Fresh metric objects: accuracy and top-5 accuracy under the names every History uses."""
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
    ]
