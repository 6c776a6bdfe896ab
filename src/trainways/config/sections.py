"""Three sections of a run's configuration: :class:`DataConfig` (the data), :class:`ModelConfig`
(the model) and :class:`DeviceConfig` (devices and distribution); :class:`TrainConfig` has a
module of its own (:mod:`trainways.config.training`). Each is frozen and checks itself on
construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from trainways.config.fields import (
    BACKENDS,
    STRATEGIES,
    ConfigError,
    check_at_least_zero,
    check_code_ref,
    check_fraction,
    check_one_of,
    check_positive,
    check_types,
    is_code_ref,
    option,
    parse_data_source,
    parse_float,
    parse_int,
    parse_int_list,
    parse_path,
    parse_preset,
    parse_str_list,
)


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how the Reuters data is shaped.

    Attributes:
        source: An SGML directory or a Keras-format ``reuters.npz``; ``None`` resolves the usual
            search order (``$TRAINWAYS_DATA``, the cache, Keras's file). Or your data function
            ``FILE.py:FUNCTION``, returning ``(train, validation)`` (docs/data.md, "Your own
            data"): the other fields, which shape the Reuters data, then keep their defaults.
        num_words: Keep only the most frequent words (Keras ``num_words``); ``None`` keeps all.
        skip_top: Map the most frequent ``skip_top`` ids to OOV (Keras ``skip_top``).
        max_len: Length sequences are pre-padded and pre-truncated to.
        validation_split: Validate on the last ``validation_split`` of the training wires (as
            Keras's ``fit(validation_split=...)`` carves them) and train on the rest, leaving the
            test split unseen until ``evaluate``; ``None`` validates on the test split (Keras's
            loader and the tutorial use it for both).
        allow_other_data: Train on data that is not the Keras Reuters dataset (a subset, a damaged
            copy, another corpus) instead of refusing it; ``$TRAINWAYS_ALLOW_OTHER_DATA=1`` gives
            the same permission.
        fingerprint: The loaded data's fingerprint (``{wires, words, sha256}``), recorded by the
            run so that ``evaluate`` and ``--resume`` refuse other data; not an option.
    """

    source: str | None = option(
        flag="--data",
        parse=parse_data_source,
        metavar="PATH|FILE.py:FUNCTION",
        group="data",
        resumable=True,
        help="Reuters-21578 directory (reut2-*.sgm) or a Keras reuters.npz (default: "
        "$TRAINWAYS_DATA, then the trainways cache, then Keras's reuters.npz); or your data: "
        "FUNCTION() in FILE.py returning (train, validation), with --model FILE.py:FUNCTION "
        "(see docs/data.md)",
    )
    num_words: int | None = option(
        flag="--num-words",
        parse=parse_int,
        metavar="N",
        group="data",
        help="keep the N most frequent word ids (default: all)",
    )
    skip_top: int = option(
        0,
        flag="--skip-top",
        parse=parse_int,
        metavar="N",
        group="data",
        help="map the N most frequent ids to OOV (default: {default})",
    )
    max_len: int = option(
        300,
        flag="--max-len",
        parse=parse_int,
        metavar="N",
        group="data",
        help="pad/truncate wires to this many ids (default: {default})",
    )
    validation_split: float | None = option(
        flag="--validation-split",
        parse=parse_float,
        metavar="F",
        group="data",
        help="validate on the last fraction F of the training wires and train on the rest, so "
        "that choosing epochs and settings never sees the test split (default: validate on the "
        "test split, as the tutorial)",
    )
    allow_other_data: bool = option(
        False,
        flag="--allow-other-data",
        group="data",
        resumable=True,
        help="use data that is not the Keras Reuters dataset (its wire count, word count or "
        "content hash differ) instead of refusing it; $TRAINWAYS_ALLOW_OTHER_DATA=1 does the same",
    )
    fingerprint: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        check_types(self)
        check_positive("num_words", self.num_words)
        check_positive("max_len", self.max_len)
        check_at_least_zero("skip_top", self.skip_top)
        check_fraction("validation_split", self.validation_split, zero=False)
        if is_code_ref(self.source):
            check_code_ref("source", self.source)
            self._refuse_reuters_options()

    @property
    def is_user_data(self) -> bool:
        """Whether the data comes from the user's function (``FILE.py:FUNCTION``), not
        Reuters."""
        return is_code_ref(self.source)

    def _refuse_reuters_options(self) -> None:
        """Refuse, with a data function, the fields that shape the Reuters data."""
        defaults = {f.name: f.default for f in fields(self)}
        for key in ("num_words", "skip_top", "max_len", "validation_split", "allow_other_data"):
            if getattr(self, key) != defaults[key]:
                raise ConfigError(
                    f"{key} {getattr(self, key)!r} shapes the Reuters data, not data "
                    f"{self.source!r}: leave it out (your function returns the data as trained)",
                    keys=(key,),
                )


@dataclass(frozen=True)
class ModelConfig:
    """Which model preset to build.

    Attributes:
        preset: Name in :data:`trainways.model.PRESETS`, or the user's builder
            ``FILE.py:FUNCTION``.
        embedding_dim: Width of the ``cnn`` preset's embedding (the tutorial used 7) and of a
            user builder's that asks for it; the other presets have their own widths.
        dropout: Dropout rate of the presets that have dropout; ``None`` takes the preset's
            default (``cnn``, the tutorial's model, has none and refuses a rate).
        initial_weights: A Keras weights file (``.weights.h5``) to start from instead of the
            seed's initial weights. Weights files are backend-independent: runs on different
            backends start from the same weights this way (``agree --backends``).
    """

    preset: str = option(
        "cnn",
        flag="--model",
        parse=parse_preset,
        metavar="NAME|FILE.py:FUNCTION",
        group="model",
        help="the model to train: a preset (cnn, the tutorial's 1-D CNN; tfidf_mlp, a TF-IDF "
        "bag of words and an MLP; text_cnn, a wider CNN with global max pooling; see "
        "docs/models.md), or your builder FUNCTION(vocab_size, num_classes, max_len) in FILE.py, "
        "returning a Keras model (default: {default})",
    )
    embedding_dim: int = option(
        7,
        flag="--embedding-dim",
        parse=parse_int,
        metavar="N",
        group="model",
        help="width of the word embedding (default: {default}, the tutorial's)",
    )
    dropout: float | None = option(
        flag="--dropout",
        parse=parse_float,
        metavar="RATE",
        group="model",
        help="dropout rate for the presets that have dropout (default: the preset's; see "
        "docs/models.md)",
    )
    initial_weights: str | None = option(
        flag="--initial-weights",
        parse=parse_path,
        metavar="FILE.weights.h5",
        group="model",
        help="start from these weights (model.save_weights) instead of the seed's",
    )

    def __post_init__(self) -> None:
        check_types(self)
        check_positive("embedding_dim", self.embedding_dim)
        check_fraction("dropout", self.dropout)
        if self.initial_weights is not None and not self.initial_weights.endswith(".weights.h5"):
            raise ConfigError(
                f"initial_weights {self.initial_weights!r}: give a Keras weights file, "
                "FILE.weights.h5 (model.save_weights)",
                keys=("initial_weights",),
            )
        if is_code_ref(self.preset):
            check_code_ref("preset", self.preset)


@dataclass(frozen=True)
class DeviceConfig:
    """Which devices to train on, and how (``tf.distribute``) to spread the work over them.

    Attributes:
        gpu: Index of the one GPU to use (memory growth on); ``None`` takes the first if any.
        gpu_memory_limit: Cap in MB on that GPU's memory (on each GPU with ``gpus``), instead of
            memory growth.
        cpu: Hide every GPU and train on the CPU.
        intra_op_threads: Threads one TensorFlow op may use; 0 lets TensorFlow choose (all
            cores); ``None`` (auto) is 1 on a 2-core machine, where that is faster, else 0.
        inter_op_threads: TensorFlow ops that may run at once; 0 lets TensorFlow choose;
            ``None`` (auto) is 2 on a 2-core machine, else 0.
        backend: The Keras backend (``tensorflow``, ``jax``, ``torch``); ``None`` until a run
            resolves it (``$KERAS_BACKEND``, else ``tensorflow``) and records it.
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

    gpu: int | None = option(
        flag="--gpu",
        parse=parse_int,
        metavar="N",
        group="devices",
        resumable=True,
        help="train on GPU N only, with memory growth (default: the first GPU, if any)",
    )
    gpu_memory_limit: int | None = option(
        flag="--gpu-memory-limit",
        parse=parse_int,
        metavar="MB",
        group="devices",
        resumable=True,
        help="cap the GPU's memory at MB instead of memory growth",
    )
    cpu: bool = option(False, flag="--cpu", group="devices", resumable=True, help="hide all GPUs")
    intra_op_threads: int | None = option(
        flag="--intra-op-threads",
        parse=parse_int,
        metavar="N",
        group="devices",
        resumable=True,
        help="threads one TensorFlow op may use; 0 = TensorFlow's choice (default: auto = 1 on "
        "a 2-core machine, where it is faster, else 0)",
    )
    inter_op_threads: int | None = option(
        flag="--inter-op-threads",
        parse=parse_int,
        metavar="N",
        group="devices",
        resumable=True,
        help="TensorFlow ops that may run at once; 0 = TensorFlow's choice (default: auto = 2 "
        "on a 2-core machine, else 0)",
    )
    backend: str | None = option(
        flag="--backend",
        parse=str,
        choices=BACKENDS,
        group="devices",
        help="the Keras backend to train with (default: $KERAS_BACKEND if set, else "
        "tensorflow; recorded in config.json, and --resume uses the run's)",
    )
    strategy: str = option(
        "default",
        flag="--strategy",
        parse=str,
        choices=STRATEGIES,
        group="distribution",
        resumable=True,
        help="default: one device; mirrored: MirroredStrategy over this machine's --gpus (or "
        "--cpu-devices); multiworker: MultiWorkerMirroredStrategy over --workers "
        "(or $TF_CONFIG), worker 0 writes the run directory",
    )
    gpus: tuple[int, ...] | None = option(
        flag="--gpus",
        parse=parse_int_list,
        metavar="I,J",
        group="distribution",
        resumable=True,
        help="GPUs to mirror over, with memory growth (default: all)",
    )
    cpu_devices: int | None = option(
        flag="--cpu-devices",
        parse=parse_int,
        metavar="N",
        group="distribution",
        resumable=True,
        help="mirror over N logical CPU devices (splits the CPU: for testing without GPUs)",
    )
    workers: tuple[str, ...] | None = option(
        flag="--workers",
        parse=parse_str_list,
        metavar="HOST:PORT,...",
        group="distribution",
        resumable=True,
        help="every worker's address, worker 0 (the chief) first; the same list on each worker",
    )
    task_index: int | None = option(
        flag="--task-index",
        parse=parse_int,
        metavar="I",
        group="distribution",
        resumable=True,
        help="this worker's position in --workers",
    )

    def __post_init__(self) -> None:
        check_types(self)
        # JSON gives lists; keep the dataclass hashable and comparable.
        for name in ("gpus", "workers"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_strategy()
        if self.backend is not None:
            check_one_of("backend", self.backend, BACKENDS)
        if self.gpu is not None and (not isinstance(self.gpu, int) or self.gpu < 0):
            raise ConfigError(f"gpu must be a GPU index >= 0, got {self.gpu!r}", keys=("gpu",))
        check_positive("gpu_memory_limit", self.gpu_memory_limit)
        for key in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, key) is not None:  # None: auto
                check_at_least_zero(key, getattr(self, key))
        if self.cpu and (self.gpu is not None or self.gpu_memory_limit is not None):
            raise ConfigError(
                "cpu hides all GPUs: drop gpu / gpu_memory_limit, or cpu",
                keys=("cpu", "gpu", "gpu_memory_limit"),
            )

    def _check_strategy(self) -> None:
        check_one_of("strategy", self.strategy, STRATEGIES)
        distributed = self.strategy != "default"
        if self.gpus is not None:
            if not distributed:
                raise ConfigError(
                    f"gpus {','.join(map(str, self.gpus))} needs strategy mirrored or "
                    "multiworker; for one GPU set gpu",
                    keys=("gpus", "strategy", "gpu"),
                )
            if (
                not self.gpus
                or any(g < 0 for g in self.gpus)
                or len(set(self.gpus)) != len(self.gpus)
            ):
                raise ConfigError(
                    f"gpus must list distinct GPU indices >= 0, got {self.gpus}", keys=("gpus",)
                )
            if self.gpu is not None or self.cpu:
                raise ConfigError("gpus chooses the GPUs: drop gpu / cpu", keys=("gpus",))
        if self.cpu_devices is not None:
            if self.strategy != "mirrored":
                raise ConfigError(
                    f"cpu_devices {self.cpu_devices} splits the CPU for strategy mirrored; "
                    f"got strategy {self.strategy}",
                    keys=("cpu_devices", "strategy"),
                )
            check_positive("cpu_devices", self.cpu_devices)
            if self.gpus is not None:
                raise ConfigError(
                    "cpu_devices and gpus exclude each other: pick one", keys=("cpu_devices",)
                )
        if self.strategy == "mirrored" and self.gpu is not None:
            raise ConfigError(
                "strategy mirrored spans several devices: set gpus, not gpu", keys=("gpu",)
            )
        if self.workers is not None:
            if self.strategy != "multiworker":
                raise ConfigError(
                    "workers needs strategy multiworker", keys=("workers", "strategy")
                )
            bad = [w for w in self.workers if ":" not in w or not w.rpartition(":")[2].isdigit()]
            if not self.workers or bad:
                raise ConfigError(
                    f"workers must be host:port,host:port,..., got {','.join(self.workers)!r}",
                    keys=("workers",),
                )
            if self.task_index is None or not 0 <= self.task_index < len(self.workers):
                raise ConfigError(
                    f"task_index must be this worker's index in workers, 0.."
                    f"{len(self.workers) - 1}, got {self.task_index}",
                    keys=("task_index",),
                )
        elif self.task_index is not None:
            raise ConfigError(
                "task_index goes with workers (or set $TF_CONFIG instead)", keys=("task_index",)
            )
