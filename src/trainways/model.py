"""Model presets and the loss / optimizer / metric factories every training method shares.

All three methods build their model, loss, optimizer and metrics here, so they differ only in how
the training loop is driven.

Every preset takes the same input, a wire's padded word ids, and owns its encoding of them
inside the model: the ``tfidf_mlp`` preset turns them into a TF-IDF vector with its first layer
(:class:`TfidfBag`). ``predict``, ``evaluate`` and ``export`` therefore work for every preset
unchanged, and a saved model carries its encoding (the IDF weights) with it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import keras
import numpy as np
from keras import ops

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
    _no_dropout("cnn", config)
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


def _no_dropout(preset: str, config: ModelConfig) -> None:
    if config.dropout:
        raise ConfigError(
            f"dropout {config.dropout!r}: the {preset} preset has no dropout (it keeps the "
            "tutorial's layers): leave --dropout out, or choose tfidf_mlp or text_cnn",
            keys=("dropout", "preset"),
        )


def _dropout_layer(config: ModelConfig, default: float) -> keras.layers.Dropout:
    return keras.layers.Dropout(
        default if config.dropout is None else config.dropout, seed=_layer_seed()
    )


def _layer_seed() -> int:
    """A seed for a layer's random generator, drawn from Python's generator (which the run's
    seed sets). Explicit because Keras's PyTorch backend draws an unseeded layer's dropout from
    torch's global generator: outside the layer's state, so neither checkpointed nor the same in
    every method."""
    return random.randint(1, 2**31 - 1)


@keras.saving.register_keras_serializable(package="trainways")
class TfidfBag(keras.layers.Layer):
    """A dense layer on each wire's TF-IDF vector, computed from its padded ids.

    The vector is scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` of the wire's ids (pad id
    0 left out): ``(1 + log tf) * idf`` per distinct word, scaled to unit length. Rather than
    materialise a vocabulary-wide vector per wire, the layer gathers one weight row per token and
    weights it, so a step costs ``O(batch * max_len * units)`` whatever the vocabulary.

    The IDF weights are a non-trainable weight, set from the training wires by :meth:`adapt_ids`
    (:func:`adapt_to_training_data` calls it before training) and saved with the model.

    Args:
        vocab_size: Number of word ids (the largest id + 1).
        units: Output width.
        token_dropout: In training, drop each token with this probability before counting (word
            dropout, a bag-of-words model's data augmentation).
        seed: Seed of the token dropout's generator.
    """

    def __init__(
        self,
        vocab_size: int,
        units: int,
        token_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.units = units
        self.token_dropout = token_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            shape=(self.vocab_size, self.units), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.idf = self.add_weight(
            shape=(self.vocab_size,), initializer="ones", trainable=False, name="idf"
        )

    def adapt_ids(self, ids: np.ndarray) -> None:
        """Set the IDF weights from training wires' padded ids: ``log((1 + n) / (1 + df)) + 1``,
        scikit-learn's smoothed IDF, so that the features are the baseline's."""
        ids = np.sort(np.asarray(ids), axis=1)
        first = np.ones(ids.shape, dtype=bool)
        first[:, 1:] = ids[:, 1:] != ids[:, :-1]
        df = np.bincount(ids[first & (ids != 0)], minlength=self.vocab_size)[: self.vocab_size]
        idf = np.log((1 + len(ids)) / (1 + df)) + 1
        self.idf.assign(idf.astype(self.idf.dtype))

    def call(self, ids: Any, training: bool | None = None) -> Any:
        ids = ops.cast(ids, "int32")
        if training and self.token_dropout:
            kept = keras.random.uniform(ops.shape(ids), seed=self.seed_generator)
            ids = ops.where(kept >= self.token_dropout, ids, ops.zeros_like(ids))
        dtype = self.compute_dtype
        present = ops.cast(ops.not_equal(ids, 0), dtype)
        # Each token's count in its wire: a (max_len x max_len) comparison per wire is far
        # cheaper than a vocabulary-wide histogram.
        same = ops.cast(ops.equal(ids[:, :, None], ids[:, None, :]), dtype)
        count = ops.maximum(ops.sum(same * present[:, None, :], axis=-1), 1.0)
        word = (1.0 + ops.log(count)) * ops.cast(ops.take(self.idf, ids, axis=0), dtype)
        # A word seen `count` times contributes `word / count` per token, `word` in all.
        token = present * word / count
        norm = ops.sqrt(ops.sum(token * word, axis=-1, keepdims=True))
        token = token / ops.maximum(norm, 1e-12)
        # Gather, then cast: only the wire's rows, never the whole vocabulary's.
        rows = ops.cast(ops.take(self.kernel, ids, axis=0), dtype)
        return ops.einsum("bl,blu->bu", token, rows) + ops.cast(self.bias, dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "units": self.units,
            "token_dropout": self.token_dropout,
            "seed": self.seed,
        }


def adapt_to_training_data(model: keras.Model, x_train: np.ndarray) -> None:
    """Let the model's encoding layers (those with ``adapt_ids``, as :class:`TfidfBag`) learn
    their statistics from the training wires' padded ids, before any step."""
    for layer in model.layers:
        if hasattr(layer, "adapt_ids"):
            layer.adapt_ids(x_train)


#: tfidf_mlp's word dropout: each token dropped with this probability in training.
TFIDF_TOKEN_DROPOUT = 0.3


@register_preset("tfidf_mlp")
def tfidf_mlp(vocab_size: int, num_classes: int, max_len: int, config: ModelConfig) -> keras.Model:
    """TF-IDF bag of words -> 512 ReLU units -> dropout -> softmax (the fast, strong preset)."""
    return keras.Sequential(
        [
            keras.Input(shape=(max_len,), dtype="int32"),
            TfidfBag(
                vocab_size,
                512,
                token_dropout=TFIDF_TOKEN_DROPOUT,
                seed=_layer_seed(),
                name="tfidf",
            ),
            keras.layers.Activation("relu"),
            _dropout_layer(config, 0.5),
            keras.layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="tfidf_mlp",
    )


@register_preset("text_cnn")
def text_cnn(vocab_size: int, num_classes: int, max_len: int, config: ModelConfig) -> keras.Model:
    """A wider sequence model: 128-wide embedding -> 256 filters of width 5 -> global max pool
    -> dropout -> softmax."""
    return keras.Sequential(
        [
            keras.Input(shape=(max_len,), dtype="int32"),
            keras.layers.Embedding(vocab_size, 128),
            keras.layers.Conv1D(256, 5, activation="relu"),
            keras.layers.GlobalMaxPooling1D(),
            _dropout_layer(config, 0.5),
            keras.layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="text_cnn",
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
    vocab_size: int | None = None,
    num_classes: int | None = None,
    max_len: int | None = None,
    precision: str = "float32",
) -> keras.Model:
    """Build the preset named by ``config.preset`` with the dtype policy ``precision``.

    ``config.preset`` may also name the user's builder, ``FILE.py:FUNCTION``
    (:func:`trainways.steps.build_from_function`). The Reuters shape (``vocab_size``,
    ``num_classes``, ``max_len``) is required by a preset; a builder may ask for what is given
    (none of it for the user's own data), ``embedding_dim`` and ``dropout``.

    With ``config.initial_weights`` the model starts from that file's weights.

    Raises:
        ConfigError: The preset is not registered, the builder cannot be loaded or called, or
            the initial weights do not load into the model.
    """
    from trainways import steps

    shape = {"vocab_size": vocab_size, "num_classes": num_classes, "max_len": max_len}
    if is_code_ref(config.preset):
        builder = steps.load_function(config.preset, role="preset")
        with precision_scope(precision):
            model = steps.build_from_function(
                builder,
                config.preset,
                **{name: value for name, value in shape.items() if value is not None},
                embedding_dim=config.embedding_dim,
                dropout=config.dropout,
            )
    else:
        if None in shape.values():
            raise ValueError(f"build_model: preset {config.preset!r} needs {', '.join(shape)}")
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


def build_loss(kind: str = "crossentropy", label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The training loss, averaged over the batch: sparse categorical cross-entropy on
    probabilities (with ``label_smoothing``, against smoothed targets,
    :class:`SmoothedSparseCrossentropy`), or a multiclass ``hinge`` / ``squared_hinge``
    (:class:`MarginLoss`)."""
    if kind != "crossentropy":
        return MarginLoss(squared=kind == "squared_hinge", name="loss")
    if label_smoothing:
        return SmoothedSparseCrossentropy(label_smoothing, name="loss")
    return keras.losses.SparseCategoricalCrossentropy(name="loss")


@keras.saving.register_keras_serializable(package="trainways")
class MarginLoss(keras.losses.Loss):
    """The multiclass (Crammer-Singer) hinge, ``max(0, 1 + max_{j != y} z_j - z_y)``, or its
    square, on the model's log-probabilities ``z``.

    A softmax model's log-probabilities are its logits minus one number per wire, and the
    margins ``z_y - z_j`` do not see that number: this is the multiclass SVM's loss on the
    logits, for a model that outputs probabilities. On TF-IDF features it generalises better than
    the cross-entropy (the linear SVM beats logistic regression by about 2 points on Reuters).

    Args:
        squared: Square each wire's hinge (smooth, and harsher on large violations).
    """

    def __init__(self, squared: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.squared = squared

    def call(self, y_true: Any, y_pred: Any) -> Any:
        log_p = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        true = ops.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
        is_true = ops.one_hot(labels, ops.shape(log_p)[-1], dtype=log_p.dtype)
        # The true topic out of the running for the largest other log-probability.
        rival = ops.max(log_p - 1e9 * is_true, axis=-1)
        hinge = ops.relu(1.0 + rival - true)
        return hinge * hinge if self.squared else hinge

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "squared": self.squared}


@keras.saving.register_keras_serializable(package="trainways")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against integer labels smoothed as Keras's
    ``CategoricalCrossentropy(label_smoothing=...)`` smooths one-hot ones: the true topic gets
    ``1 - e + e / C`` and every topic ``e / C`` (``C`` topics), without one-hot labels.

    Args:
        label_smoothing: ``e``, in ``[0, 1)``.
    """

    def __init__(self, label_smoothing: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        epsilon = keras.config.epsilon()
        log_p = ops.log(ops.clip(y_pred, epsilon, 1.0 - epsilon))
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        true = ops.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
        e = self.label_smoothing
        return -((1.0 - e) * true + e * ops.mean(log_p, axis=-1))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def build_optimizer(
    learning_rate: float,
    *,
    xla: bool = False,
    dense: bool = False,
    weight_decay: float | None = None,
    backend: ModuleType | None = None,
) -> keras.optimizers.Optimizer:
    """Nadam, as in the tutorial; with ``xla``, the backend's Nadam with one compiled update;
    with ``dense``, the backend's Nadam that applies every gradient dense; ``weight_decay`` is
    Keras's decoupled decay (see :class:`trainways.config.TrainConfig`).

    Args:
        learning_rate: Nadam's learning rate.
        xla: The backend's ``XlaNadam``.
        dense: The backend's ``DenseNadam``.
        weight_decay: Keras's decoupled weight decay, or ``None``.
        backend: The Keras backend's module (:mod:`trainways.backends`); needed for ``xla`` and
            ``dense`` only.

    Raises:
        ValueError: ``xla`` or ``dense`` without ``backend``.
        ConfigError: The backend refuses ``xla`` (it has no compiled Nadam update).
    """
    if (xla or dense) and backend is None:
        raise ValueError("build_optimizer: xla and dense choose the backend's Nadam: pass backend=")
    kind = backend.XlaNadam if xla else backend.DenseNadam if dense else keras.optimizers.Nadam
    return kind(learning_rate=learning_rate, weight_decay=weight_decay)


def build_metrics() -> list[keras.metrics.Metric]:
    """Fresh metric objects: accuracy and top-5 accuracy under the names every History uses."""
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
    ]
