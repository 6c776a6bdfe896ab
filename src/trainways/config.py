"""Run configuration: frozen dataclasses, validated on construction.

Only the CLI (and the public :func:`trainways.train` entry point) builds these; everything else
receives them read-only. Every check raises :class:`ConfigError` with one line that repeats the bad
value and says what to do, so the CLI can print it as is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

METHODS: tuple[str, ...] = ("fit", "batch", "loop")


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line fit for a user."""


def _require_positive(name: str, value: int | float | None, *, flag: str) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}: pass {flag} with a value > 0")


@dataclass(frozen=True)
class DataConfig:
    """Where the Reuters data comes from and how it is shaped.

    Attributes:
        source: An SGML directory or a Keras-format ``reuters.npz``; ``None`` resolves the usual
            search order (``$TRAINWAYS_DATA``, the cache, Keras's file).
        num_words: Keep only the most frequent words (Keras ``num_words``); ``None`` keeps all.
        skip_top: Map the most frequent ``skip_top`` ids to OOV (Keras ``skip_top``).
        max_len: Length sequences are pre-padded and pre-truncated to.
    """

    source: str | None = None
    num_words: int | None = None
    skip_top: int = 0
    max_len: int = 300

    def __post_init__(self) -> None:
        _require_positive("num_words", self.num_words, flag="--num-words")
        _require_positive("max_len", self.max_len, flag="--max-len")
        if self.skip_top < 0:
            raise ConfigError(f"skip_top must be >= 0, got {self.skip_top!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which model preset to build.

    Attributes:
        preset: Name in :data:`trainways.model.PRESETS`.
        embedding_dim: Width of the embedding (the tutorial used 7).
    """

    preset: str = "cnn"
    embedding_dim: int = 7

    def __post_init__(self) -> None:
        _require_positive("embedding_dim", self.embedding_dim, flag="--embedding-dim")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the method and the optimisation settings shared by all three methods.

    Attributes:
        method: ``fit`` (``Model.fit``), ``batch`` (``train_on_batch`` loop) or ``loop``
            (``tf.GradientTape`` loop).
        epochs: Number of passes over the training split.
        batch_size: Samples per step, for training and validation alike.
        learning_rate: Nadam's initial learning rate.
        lr_halve_at: 1-based epoch at whose start the learning rate is halved once (the
            tutorial's ``batch`` method used 5); ``None`` keeps it constant.
        seed: Seeds Python, NumPy, TensorFlow and the per-epoch shuffle; ``None`` is random.
        deterministic: Also turn on TensorFlow op determinism, so that a seeded run repeats
            bit for bit (and resumes bit for bit).
        patience: Stop early when ``val_loss`` has not improved for this many epochs
            (``keras.callbacks.EarlyStopping``); ``None`` never stops early.
        tensorboard: Write TensorBoard logs (per-epoch scalars, learning rate) into the run
            directory's ``tensorboard/``.
        jit_compile: Compile the step functions with XLA. One explicit value for all methods,
            since Keras's ``"auto"`` would turn XLA on for ``fit`` on a GPU but not for a
            hand-written loop.
    """

    method: str = "fit"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_halve_at: int | None = None
    seed: int | None = None
    deterministic: bool = False
    patience: int | None = None
    tensorboard: bool = False
    jit_compile: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        _require_positive("epochs", self.epochs, flag="--epochs")
        _require_positive("batch_size", self.batch_size, flag="--batch-size")
        _require_positive("learning_rate", self.learning_rate, flag="--lr")
        _require_positive("lr_halve_at", self.lr_halve_at, flag="--lr-halve-at")
        _require_positive("patience", self.patience, flag="--patience")
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be in [0, 2**31), got {self.seed!r}: pass --seed S")


@dataclass(frozen=True)
class DeviceConfig:
    """Which device to train on.

    Attributes:
        gpu: Index of the one GPU to use (memory growth on); ``None`` takes the first if any.
        gpu_memory_limit: Cap in MB on that GPU's memory, instead of memory growth.
        cpu: Hide every GPU and train on the CPU.
    """

    gpu: int | None = None
    gpu_memory_limit: int | None = None
    cpu: bool = False

    def __post_init__(self) -> None:
        if self.gpu is not None and self.gpu < 0:
            raise ConfigError(f"--gpu must be a GPU index >= 0, got {self.gpu!r}")
        _require_positive("gpu_memory_limit", self.gpu_memory_limit, flag="--gpu-memory-limit")
        if self.cpu and (self.gpu is not None or self.gpu_memory_limit is not None):
            raise ConfigError("--cpu hides all GPUs: drop --gpu / --gpu-memory-limit, or --cpu")


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``trainways train`` run needs; saved as the run's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the configuration."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Rebuild a configuration saved by :meth:`to_dict`, validating it again.

        Raises:
            ConfigError: A section or key is unknown or a value is invalid.
        """
        kinds = {
            "data": DataConfig,
            "model": ModelConfig,
            "train": TrainConfig,
            "device": DeviceConfig,
        }
        unknown = set(raw) - set(kinds)
        if unknown:
            raise ConfigError(f"unknown config section(s) {sorted(unknown)}")
        built = {}
        for name, kind in kinds.items():
            values = raw.get(name, {})
            known = {f.name for f in dataclasses.fields(kind)}
            extra = set(values) - known
            if extra:
                raise ConfigError(f"unknown key(s) {sorted(extra)} in config section {name!r}")
            built[name] = kind(**values)
        return cls(**built)
