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
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multiworker")
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line fit for a user."""


def _require_positive(name: str, value: int | float | None, *, flag: str) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}: pass {flag} with a value > 0")


def resolve_steps_per_execution(value: int | str, steps_per_epoch: int) -> int:
    """The steps per execution that ``value`` (a number or ``"epoch"``) means for an epoch.

    Executions run whole: with 281 steps per epoch and 32 per execution, ``fit``'s last execution
    would take 7 batches of the next epoch. So the value must divide the epoch, for every method
    alike.

    Raises:
        ConfigError: ``value`` does not divide ``steps_per_epoch``; the message lists the values
            that do.
    """
    resolved = steps_per_epoch if value == "epoch" else int(value)
    if steps_per_epoch % resolved == 0:
        return resolved
    choices = [d for d in range(1, steps_per_epoch + 1) if steps_per_epoch % d == 0]
    if len(choices) > 12:
        choices = [*choices[:11], steps_per_epoch]
    raise ConfigError(
        f"steps per execution {value} does not divide the {steps_per_epoch} steps of an epoch: "
        f"pass --steps-per-execution with one of {', '.join(map(str, choices))} or 'epoch'"
    )


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
        steps_per_execution: Training steps run per call between batch hooks (``fit``'s
            ``steps_per_execution``; the GradientTape loop runs them in one graph, the
            ``train_on_batch`` method still calls once per batch). An integer that divides the
            steps of an epoch, or ``"epoch"`` for whole epochs. Progress and Ctrl-C act between
            executions.
        xla_optimizer: Run the optimizer's update as one XLA-compiled function (the forward and
            backward passes stay on TensorFlow's kernels); same formula, different rounding.
        precision: ``float32``, or ``mixed_bfloat16`` (bfloat16 compute, float32 weights and
            softmax output): faster where the hardware has bfloat16 units (AMX on recent Xeons,
            GPUs from Ampere on), slower elsewhere; results differ in the last digits.
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
    steps_per_execution: int | str = 1
    xla_optimizer: bool = False
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        spe = self.steps_per_execution
        if spe != "epoch" and not (isinstance(spe, int) and not isinstance(spe, bool) and spe > 0):
            raise ConfigError(
                f"steps_per_execution must be a positive integer or 'epoch', got {spe!r}: "
                "pass --steps-per-execution N or --steps-per-execution epoch"
            )
        _require_positive("epochs", self.epochs, flag="--epochs")
        _require_positive("batch_size", self.batch_size, flag="--batch-size")
        _require_positive("learning_rate", self.learning_rate, flag="--lr")
        _require_positive("lr_halve_at", self.lr_halve_at, flag="--lr-halve-at")
        _require_positive("patience", self.patience, flag="--patience")
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be in [0, 2**31), got {self.seed!r}: pass --seed S")


@dataclass(frozen=True)
class DeviceConfig:
    """Which devices to train on, and how (``tf.distribute``) to spread the work over them.

    Attributes:
        gpu: Index of the one GPU to use (memory growth on); ``None`` takes the first if any.
        gpu_memory_limit: Cap in MB on that GPU's memory (on each GPU with ``gpus``), instead of
            memory growth.
        cpu: Hide every GPU and train on the CPU.
        intra_op_threads: Threads one TensorFlow op may use; 0 lets TensorFlow choose (all
            cores).
        inter_op_threads: TensorFlow ops that may run at once; 0 lets TensorFlow choose.
        strategy: ``default`` (one device), ``mirrored`` (``tf.distribute.MirroredStrategy``
            over several devices of this machine) or ``multiworker``
            (``tf.distribute.MultiWorkerMirroredStrategy`` over several machines).
        gpus: GPU indices to mirror over (``mirrored``; on each worker with ``multiworker``).
        cpu_devices: Split the CPU into this many logical devices and mirror over them
            (``mirrored``; for testing distribution without GPUs).
        workers: ``host:port`` of every worker, worker 0 first (``multiworker``; otherwise the
            cluster comes from ``$TF_CONFIG``).
        task_index: This process's index in ``workers``; worker 0 is the chief.
    """

    gpu: int | None = None
    gpu_memory_limit: int | None = None
    cpu: bool = False
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    strategy: str = "default"
    gpus: tuple[int, ...] | None = None
    cpu_devices: int | None = None
    workers: tuple[str, ...] | None = None
    task_index: int | None = None

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and comparable.
        for name in ("gpus", "workers"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_strategy()
        if self.gpu is not None and self.gpu < 0:
            raise ConfigError(f"--gpu must be a GPU index >= 0, got {self.gpu!r}")
        _require_positive("gpu_memory_limit", self.gpu_memory_limit, flag="--gpu-memory-limit")
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{name} must be >= 0, got {value!r}: pass {flag} N (0 = TensorFlow's choice)"
                )
        if self.cpu and (self.gpu is not None or self.gpu_memory_limit is not None):
            raise ConfigError("--cpu hides all GPUs: drop --gpu / --gpu-memory-limit, or --cpu")

    def _check_strategy(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        distributed = self.strategy != "default"
        if self.gpus is not None:
            if not distributed:
                raise ConfigError(
                    f"--gpus {','.join(map(str, self.gpus))} needs --strategy mirrored or "
                    "multiworker; for one GPU pass --gpu N"
                )
            if (
                not self.gpus
                or any(g < 0 for g in self.gpus)
                or len(set(self.gpus)) != len(self.gpus)
            ):
                raise ConfigError(f"--gpus must list distinct GPU indices >= 0, got {self.gpus}")
            if self.gpu is not None or self.cpu:
                raise ConfigError("--gpus chooses the GPUs: drop --gpu / --cpu")
        if self.cpu_devices is not None:
            if self.strategy != "mirrored":
                raise ConfigError(
                    f"--cpu-devices {self.cpu_devices} splits the CPU for --strategy mirrored; "
                    f"got --strategy {self.strategy}"
                )
            _require_positive("cpu_devices", self.cpu_devices, flag="--cpu-devices")
            if self.gpus is not None:
                raise ConfigError("--cpu-devices and --gpus exclude each other: pick one")
        if self.strategy == "mirrored" and self.gpu is not None:
            raise ConfigError("--strategy mirrored spans several devices: use --gpus, not --gpu")
        if self.workers is not None:
            if self.strategy != "multiworker":
                raise ConfigError("--workers needs --strategy multiworker")
            bad = [w for w in self.workers if not w.rpartition(":")[2].isdigit()]
            if not self.workers or bad:
                raise ConfigError(
                    f"--workers must be host:port,host:port,..., got {','.join(self.workers)}"
                )
            if self.task_index is None or not 0 <= self.task_index < len(self.workers):
                raise ConfigError(
                    f"--task-index must be this worker's index in --workers, 0.."
                    f"{len(self.workers) - 1}, got {self.task_index}"
                )
        elif self.task_index is not None:
            raise ConfigError("--task-index goes with --workers (or set $TF_CONFIG instead)")


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
