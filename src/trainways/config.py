"""Run configuration: frozen dataclasses, validated on construction, and the one option table.

A run is described by a :class:`RunConfig` of four sections. Every field that a user may set
from the command line declares its option right here, in the field's metadata (:func:`option`):
flag, help text, help group, parser, and whether ``--resume`` may change it. The CLI builds its
parser from these declarations, :func:`apply_options` turns parsed values into a configuration,
and ``compare`` hands each child its configuration as a file — so a new setting is one field with
one :func:`option`, and nothing else has to be kept in sync.

Every check raises :class:`ConfigError` with one line that repeats the bad value, in the
configuration's own terms (field names): the same message serves the library and the CLI, which
adds the flags the error is about.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS: tuple[str, ...] = ("fit", "batch", "loop")
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multiworker")
BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")
STOP_ON: tuple[str, ...] = ("val_loss", "val_accuracy")
LOSSES: tuple[str, ...] = ("crossentropy", "hinge", "squared_hinge")
# --mlflow without a URI: $MLFLOW_TRACKING_URI, else a SQLite store beside the runs.
TRACKING_AUTO = "auto"


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line fit for a user.

    Attributes:
        keys: The configuration fields the error is about (the CLI names their flags).
    """

    def __init__(self, message: str, *, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


# --------------------------------------------------------------------------- option table


def option(
    default: Any = None,
    *,
    flag: str,
    help: str,
    group: str,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    resumable: bool = False,
    const: Any = None,
) -> Any:
    """A dataclass field that the command line can set.

    Args:
        default: The field's default (the one source of truth for it).
        flag: Its command-line flag, e.g. ``--batch-size``.
        help: One sentence for ``--help``; ``{default}`` is replaced by the default.
        group: The ``--help`` section it is listed in.
        parse: Turns the flag's text into a value (``None``: a boolean switch).
        metavar: Placeholder shown in ``--help``.
        choices: The allowed values, for ``--help`` and argparse.
        resumable: Whether ``--resume`` may change it (devices, the data's location).
        const: The value of the flag given without one (its value is then optional).
    """
    metadata = {
        "flag": flag,
        "help": help,
        "group": group,
        "parse": parse,
        "metavar": metavar,
        "choices": choices,
        "resumable": resumable,
        "const": const,
    }
    return field(default=default, metadata=metadata)


def _number(convert: type) -> Callable[[str], Any]:
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise ValueError(f"expected {kind}, got {text!r}") from None

    parse.__name__ = convert.__name__  # argparse names the type in its message
    return parse


_int = _number(int)
_float = _number(float)


STEPS_PER_EXECUTION_WORDS: tuple[str, ...] = ("auto", "epoch")


def _steps_per_execution(text: str) -> int | str:
    if text in STEPS_PER_EXECUTION_WORDS:
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, 'auto' or 'epoch', got {text!r}") from None


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected GPU indices like 0,1, got {text!r}") from None


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def is_code_ref(text: Any) -> bool:
    """Whether ``text`` names a function in a Python file: ``FILE.py:FUNCTION``."""
    return isinstance(text, str) and ".py:" in text


def _code_ref(text: str) -> str:
    # The file absolute, so that --resume and compare's children find it from any directory.
    path, _, name = text.rpartition(":")
    if not path.endswith(".py") or not name.isidentifier():
        raise ValueError(f"expected FILE.py:FUNCTION, got {text!r}")
    return f"{Path(path).expanduser().resolve()}:{name}"


def _preset(text: str) -> str:
    return _code_ref(text) if is_code_ref(text) else text


def check_steps_method(method: str, *, step: Any, test_step: Any) -> None:
    """Refuse a user's step function (or its ``FILE.py:FUNCTION``) for a method that cannot run it.

    Raises:
        ConfigError: A step is given and ``method`` is not ``loop``.
    """
    given = {"step": step, "test_step": test_step}
    keys = tuple(key for key, fn in given.items() if fn is not None)
    if method == "loop" or not keys:
        return
    raise ConfigError(
        f"a step function runs in the loop method, not {method}: use method 'loop', or, to "
        f"customise {method}, override your model's train_step / test_step (Keras's own "
        "convention, which every method runs)",
        keys=("method", *keys),
    )


def _path(text: str) -> str:
    # Absolute, so that evaluate and --resume find it from any directory.
    return str(Path(text).expanduser().resolve())


def _check_code_ref(key: str, value: str) -> None:
    try:
        _code_ref(value)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}", keys=(key,)) from None


def _positive(key: str, value: float | None) -> None:
    # `not value > 0` also catches NaN; infinity is positive, but no setting means it.
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ConfigError(f"{key} must be positive, got {value!r}", keys=(key,))
    if value is not None and math.isinf(value):
        raise ConfigError(f"{key} must be finite, got {value!r}", keys=(key,))


def _fraction(key: str, value: float | None, *, zero: bool = True) -> None:
    """``value`` in [0, 1), or (0, 1) without ``zero``; ``None`` passes."""
    if value is None:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (0 <= value < 1 if zero else 0 < value < 1):
        bounds = "[0, 1)" if zero else "(0, 1)"
        raise ConfigError(f"{key} must be in {bounds}, got {value!r}", keys=(key,))


def _at_least_zero(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a whole number >= 0, got {value!r}", keys=(key,))


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"unknown {key} {value!r}: choose one of {', '.join(allowed)}", keys=(key,)
        )


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig:
    """Where the Reuters data comes from and how it is shaped.

    Attributes:
        source: An SGML directory or a Keras-format ``reuters.npz``; ``None`` resolves the usual
            search order (``$TRAINWAYS_DATA``, the cache, Keras's file).
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
        parse=_path,
        metavar="PATH",
        group="data",
        resumable=True,
        help="Reuters-21578 directory (reut2-*.sgm) or a Keras reuters.npz; default: "
        "$TRAINWAYS_DATA, then the trainways cache, then Keras's reuters.npz",
    )
    num_words: int | None = option(
        flag="--num-words",
        parse=_int,
        metavar="N",
        group="data",
        help="keep the N most frequent word ids (default: all)",
    )
    skip_top: int = option(
        0,
        flag="--skip-top",
        parse=_int,
        metavar="N",
        group="data",
        help="map the N most frequent ids to OOV (default: {default})",
    )
    max_len: int = option(
        300,
        flag="--max-len",
        parse=_int,
        metavar="N",
        group="data",
        help="pad/truncate wires to this many ids (default: {default})",
    )
    validation_split: float | None = option(
        flag="--validation-split",
        parse=_float,
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
        _positive("num_words", self.num_words)
        _positive("max_len", self.max_len)
        _at_least_zero("skip_top", self.skip_top)
        _fraction("validation_split", self.validation_split, zero=False)


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
        parse=_preset,
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
        parse=_int,
        metavar="N",
        group="model",
        help="width of the word embedding (default: {default}, the tutorial's)",
    )
    dropout: float | None = option(
        flag="--dropout",
        parse=_float,
        metavar="RATE",
        group="model",
        help="dropout rate for the presets that have dropout (default: the preset's; see "
        "docs/models.md)",
    )
    initial_weights: str | None = option(
        flag="--initial-weights",
        parse=_path,
        metavar="FILE.weights.h5",
        group="model",
        help="start from these weights (model.save_weights) instead of the seed's",
    )

    def __post_init__(self) -> None:
        _positive("embedding_dim", self.embedding_dim)
        _fraction("dropout", self.dropout)
        if self.initial_weights is not None and not self.initial_weights.endswith(".weights.h5"):
            raise ConfigError(
                f"initial_weights {self.initial_weights!r}: give a Keras weights file, "
                "FILE.weights.h5 (model.save_weights)",
                keys=("initial_weights",),
            )
        if is_code_ref(self.preset):
            _check_code_ref("preset", self.preset)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the method and the optimisation settings shared by all three methods.

    Attributes:
        method: ``fit`` (``Model.fit``), ``batch`` (``train_on_batch`` loop) or ``loop``
            (``tf.GradientTape`` loop).
        step: The user's training step for ``loop``, ``FILE.py:FUNCTION`` with an absolute path
            (:mod:`trainways.steps`); ``None`` runs the built-in step (or the model's own).
        test_step: The user's validation step, same form; ``None`` validates with the built-in.
        epochs: Number of passes over the training split.
        batch_size: Samples per step, for training and validation alike.
        learning_rate: Nadam's initial learning rate.
        lr_halve_at: 1-based epoch at whose start the learning rate is halved once (the
            tutorial's ``batch`` method used 5); ``None`` keeps it constant.
        seed: Seeds Python, NumPy, TensorFlow and the per-epoch shuffle; ``None`` is random
            (a run draws one and records it).
        deterministic: Also turn on TensorFlow op determinism, so that a seeded run repeats
            bit for bit (and resumes bit for bit).
        loss: What training minimises: ``crossentropy`` (the tutorial's), or the multiclass
            (Crammer-Singer) ``hinge`` / ``squared_hinge`` on the model's log-probabilities,
            which is the SVM's loss on its logits (:class:`trainways.model.MarginLoss`).
        weight_decay: Nadam's decoupled weight decay (Keras's ``weight_decay``; AdamW's
            rule), applied to every trainable weight; ``None`` for none.
        label_smoothing: Train against targets that give this much probability mass to the
            other topics, spread evenly (:class:`trainways.model.SmoothedSparseCrossentropy`);
            validation loss keeps the same definition, so epochs stay comparable.
        patience: Stop early when ``stop_on`` has not improved for this many epochs
            (``keras.callbacks.EarlyStopping``); ``None`` never stops early.
        stop_on: The metric ``patience`` watches: ``val_loss`` (lower is better) or
            ``val_accuracy`` (higher is better).
        tensorboard: Write TensorBoard logs (per-epoch scalars, learning rate) into the run
            directory's ``tensorboard/``.
        tracking: Log the run to MLflow at this tracking URI (:mod:`trainways.tracking`);
            ``"auto"`` is ``$MLFLOW_TRACKING_URI`` or a SQLite store beside the runs (a run
            records the URI it resolved to); ``None`` tracks nothing.
        jit_compile: Compile the step functions with XLA. One explicit value for all methods,
            since Keras's ``"auto"`` would turn XLA on for ``fit`` on a GPU but not for a
            hand-written loop.
        steps_per_execution: Steps run per call between batch hooks, in training and
            validation (``fit``'s ``steps_per_execution``; the GradientTape loop runs them in one
            graph, the ``train_on_batch`` method still calls once per batch): a whole number (an
            epoch's last call runs the steps that remain), ``"epoch"`` for whole epochs, or
            ``"auto"``, the backend's choice (see :func:`resolve_steps_per_execution`). Progress
            and Ctrl-C act between executions.
        xla_optimizer: Run the optimizer's update as one XLA-compiled function (the forward and
            backward passes stay on TensorFlow's kernels); same formula, different rounding.
        dense_gradients: On TensorFlow, densify the embedding's sparse gradient before Nadam
            applies it, so that the update is the one JAX and PyTorch compute (Keras's sparse
            path adds the squares of a repeated word's gradients, not the square of their sum);
            no effect on the other backends, whose gradients are dense.
        precision: ``float32``, or ``mixed_bfloat16`` (bfloat16 compute, float32 weights and
            softmax output): faster where the hardware has bfloat16 units (AMX on recent Xeons,
            GPUs from Ampere on), slower elsewhere; results differ in the last digits.
    """

    method: str = option(
        "fit",
        flag="--method",
        parse=str,
        choices=METHODS,
        group="training",
        help="fit: Model.fit; batch: train_on_batch loop; loop: GradientTape loop "
        "(default: {default})",
    )
    step: str | None = option(
        flag="--step",
        parse=_code_ref,
        metavar="FILE.py:FUNCTION",
        group="training",
        help="your training step for --method loop: FUNCTION(model, x, y) in FILE.py, "
        "returning {'loss': ..., 'y_pred': ...} (see docs/custom-steps.md)",
    )
    test_step: str | None = option(
        flag="--test-step",
        parse=_code_ref,
        metavar="FILE.py:FUNCTION",
        group="training",
        help="your validation step for --method loop, same contract (default: the built-in)",
    )
    epochs: int = option(
        10,
        flag="--epochs",
        parse=_int,
        metavar="N",
        group="training",
        help="passes over the training split (default: {default})",
    )
    batch_size: int = option(
        32,
        flag="--batch-size",
        parse=_int,
        metavar="N",
        group="training",
        help="samples per step, the global batch under a strategy (default: {default})",
    )
    learning_rate: float = option(
        1e-3,
        flag="--lr",
        parse=_float,
        metavar="LR",
        group="training",
        help="Nadam learning rate (default: {default})",
    )
    lr_halve_at: int | None = option(
        flag="--lr-halve-at",
        parse=_int,
        metavar="EPOCH",
        group="training",
        help="halve the learning rate once, at the start of this 1-based epoch "
        "(the tutorial's batch method used 5; default: never)",
    )
    seed: int | None = option(
        flag="--seed",
        parse=_int,
        metavar="S",
        group="training",
        help="seed Python, NumPy, TensorFlow and the shuffle (default: random, recorded in "
        "config.json)",
    )
    deterministic: bool = option(
        False,
        flag="--deterministic",
        group="training",
        help="also turn on TensorFlow op determinism: with --seed, runs repeat bit for bit",
    )
    loss: str = option(
        "crossentropy",
        flag="--loss",
        parse=str,
        choices=LOSSES,
        group="training",
        help="crossentropy, or the SVM's multiclass hinge / squared_hinge on the logits "
        "(default: {default})",
    )
    weight_decay: float | None = option(
        flag="--weight-decay",
        parse=_float,
        metavar="W",
        group="training",
        help="Nadam's decoupled weight decay, as AdamW (default: none)",
    )
    label_smoothing: float = option(
        0.0,
        flag="--label-smoothing",
        parse=_float,
        metavar="E",
        group="training",
        help="train against targets with mass E spread over all topics (default: {default})",
    )
    patience: int | None = option(
        flag="--patience",
        parse=_int,
        metavar="N",
        group="training",
        help="stop early after N epochs without a better --stop-on metric (default: never)",
    )
    stop_on: str = option(
        "val_loss",
        flag="--stop-on",
        parse=str,
        choices=STOP_ON,
        group="training",
        help="the metric --patience watches (default: {default})",
    )
    tensorboard: bool = option(
        False,
        flag="--tensorboard",
        group="output",
        help="write TensorBoard logs to RUN_DIR/tensorboard (view: tensorboard --logdir RUN_DIR)",
    )
    tracking: str | None = option(
        None,
        flag="--mlflow",
        parse=str,
        const=TRACKING_AUTO,
        metavar="TRACKING_URI",
        group="output",
        help="log the run to MLflow: params, per-epoch metrics, artifacts (without a URI: "
        "$MLFLOW_TRACKING_URI, else sqlite:///<runs>/mlflow.db beside the run directories)",
    )
    jit_compile: bool = option(
        False,
        flag="--xla",
        group="speed",
        help="compile the training steps with XLA (every method alike)",
    )
    steps_per_execution: int | str = option(
        "auto",
        flag="--steps-per-execution",
        parse=_steps_per_execution,
        metavar="N|auto|epoch",
        group="speed",
        help="run N steps per call, training and validation, as fit's steps_per_execution (the "
        "GradientTape loop runs them in one graph; train_on_batch still calls once per batch): "
        "less Python per step, but progress, batch callbacks and Ctrl-C act every N steps; an "
        "epoch's last call runs what remains. 'epoch' = whole epochs; 'auto' = the backend's "
        "choice, a few calls a second (default: {default}; 1 turns it off)",
    )
    xla_optimizer: bool = option(
        False,
        flag="--xla-optimizer",
        group="speed",
        help="run Nadam's update as one XLA-compiled function instead of ~175 small ops per "
        "step (every method alike; the model's own ops stay on TensorFlow's kernels; not shown "
        "faster than the defaults on 2 cores)",
    )
    dense_gradients: bool = option(
        False,
        flag="--dense-gradients",
        group="training",
        help="apply the embedding's gradient as one dense tensor on TensorFlow, as JAX and "
        "PyTorch do (TensorFlow's sparse path squares each occurrence of a word separately in "
        "Nadam's second moment); agree/compare --backends turn it on",
    )
    precision: str = option(
        "float32",
        flag="--precision",
        parse=str,
        choices=PRECISIONS,
        group="speed",
        help="float32, or mixed_bfloat16: bfloat16 arithmetic with float32 weights, faster on "
        "CPUs with AMX/AVX512-BF16 and Ampere+ GPUs, slower elsewhere (default: {default})",
    )

    def __post_init__(self) -> None:
        _one_of("method", self.method, METHODS)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("stop_on", self.stop_on, STOP_ON)
        _positive("weight_decay", self.weight_decay)
        if self.tracking is not None and (
            not isinstance(self.tracking, str) or not self.tracking.strip()
        ):
            raise ConfigError(
                f"tracking {self.tracking!r} is not a tracking URI: give one "
                "(sqlite:///runs/mlflow.db, http://host:5000) or 'auto'",
                keys=("tracking",),
            )
        _fraction("label_smoothing", self.label_smoothing)
        _one_of("loss", self.loss, LOSSES)
        if self.label_smoothing and self.loss != "crossentropy":
            raise ConfigError(
                f"label_smoothing smooths the cross-entropy's targets, not a {self.loss} loss: "
                "use one of them",
                keys=("label_smoothing", "loss"),
            )
        if self.xla_optimizer and self.dense_gradients:
            raise ConfigError(
                "xla_optimizer and dense_gradients are two Nadams: pick one",
                keys=("xla_optimizer", "dense_gradients"),
            )
        for key in ("step", "test_step"):
            if getattr(self, key) is not None:
                _check_code_ref(key, getattr(self, key))
        check_steps_method(self.method, step=self.step, test_step=self.test_step)
        spe = self.steps_per_execution
        if spe not in STEPS_PER_EXECUTION_WORDS and not (
            isinstance(spe, int) and not isinstance(spe, bool) and spe > 0
        ):
            raise ConfigError(
                "steps_per_execution must be a positive whole number, 'auto' or 'epoch', got "
                f"{spe!r}",
                keys=("steps_per_execution",),
            )
        for key in ("epochs", "batch_size", "learning_rate", "lr_halve_at", "patience"):
            _positive(key, getattr(self, key))
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be in [0, 2**31), got {self.seed!r}", keys=("seed",))

    def for_method(self, method: str) -> TrainConfig:
        """These settings for ``method``; a step function goes only to the ``loop`` method
        (``compare`` and ``agree`` set it beside ``fit`` and ``batch`` on their built-in steps)."""
        if method == "loop":
            return replace(self, method=method)
        return replace(self, method=method, step=None, test_step=None)


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
        parse=_int,
        metavar="N",
        group="devices",
        resumable=True,
        help="train on GPU N only, with memory growth (default: the first GPU, if any)",
    )
    gpu_memory_limit: int | None = option(
        flag="--gpu-memory-limit",
        parse=_int,
        metavar="MB",
        group="devices",
        resumable=True,
        help="cap the GPU's memory at MB instead of memory growth",
    )
    cpu: bool = option(False, flag="--cpu", group="devices", resumable=True, help="hide all GPUs")
    intra_op_threads: int | None = option(
        flag="--intra-op-threads",
        parse=_int,
        metavar="N",
        group="devices",
        resumable=True,
        help="threads one TensorFlow op may use; 0 = TensorFlow's choice (default: auto = 1 on "
        "a 2-core machine, where it is faster, else 0)",
    )
    inter_op_threads: int | None = option(
        flag="--inter-op-threads",
        parse=_int,
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
        parse=_int_list,
        metavar="I,J",
        group="distribution",
        resumable=True,
        help="GPUs to mirror over, with memory growth (default: all)",
    )
    cpu_devices: int | None = option(
        flag="--cpu-devices",
        parse=_int,
        metavar="N",
        group="distribution",
        resumable=True,
        help="mirror over N logical CPU devices (splits the CPU: for testing without GPUs)",
    )
    workers: tuple[str, ...] | None = option(
        flag="--workers",
        parse=_str_list,
        metavar="HOST:PORT,...",
        group="distribution",
        resumable=True,
        help="every worker's address, worker 0 (the chief) first; the same list on each worker",
    )
    task_index: int | None = option(
        flag="--task-index",
        parse=_int,
        metavar="I",
        group="distribution",
        resumable=True,
        help="this worker's position in --workers",
    )

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and comparable.
        for name in ("gpus", "workers"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_strategy()
        if self.backend is not None:
            _one_of("backend", self.backend, BACKENDS)
        if self.gpu is not None and (not isinstance(self.gpu, int) or self.gpu < 0):
            raise ConfigError(f"gpu must be a GPU index >= 0, got {self.gpu!r}", keys=("gpu",))
        _positive("gpu_memory_limit", self.gpu_memory_limit)
        for key in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, key) is not None:  # None: auto
                _at_least_zero(key, getattr(self, key))
        if self.cpu and (self.gpu is not None or self.gpu_memory_limit is not None):
            raise ConfigError(
                "cpu hides all GPUs: drop gpu / gpu_memory_limit, or cpu",
                keys=("cpu", "gpu", "gpu_memory_limit"),
            )

    def _check_strategy(self) -> None:
        _one_of("strategy", self.strategy, STRATEGIES)
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
            _positive("cpu_devices", self.cpu_devices)
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


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "device": DeviceConfig,
}


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
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Rebuild a configuration saved by :meth:`to_dict`, validating it again.

        Sections and keys left out take their defaults.

        Raises:
            ConfigError: A section or key is unknown or a value is invalid.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a configuration is a JSON object of sections, got {raw!r:.60}")
        if "loop" in raw:
            raise ConfigError(
                f"this run was made by trainways.Loop in {raw['loop'].get('script')}: run that "
                "script again to resume it"
            )
        unknown = set(raw) - set(_SECTIONS)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}: the sections are "
                f"{', '.join(_SECTIONS)}"
            )
        built = {}
        for name, kind in _SECTIONS.items():
            values = raw.get(name, {})
            known = {f.name for f in dataclasses.fields(kind)}
            extra = set(values) - known
            if extra:
                raise ConfigError(f"unknown key(s) {sorted(extra)} in config section {name!r}")
            built[name] = kind(**values)
        return cls(**built)

    def with_values(self, values: Mapping[str, Any]) -> RunConfig:
        """A copy with ``values`` (``"section.key"`` → value) replaced, validated again."""
        changes: dict[str, dict[str, Any]] = {}
        for path, value in values.items():
            section, _, key = path.partition(".")
            changes.setdefault(section, {})[key] = value
        return replace(
            self,
            **{
                section: replace(getattr(self, section), **keys)
                for section, keys in changes.items()
            },
        )


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names an unknown key in a :class:`ConfigError`."""
    known = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {type(obj).__name__}: choose from "
            f"{', '.join(sorted(known))}"
        )
    return dataclasses.replace(obj, **changes)


@dataclass(frozen=True)
class Option:
    """One command-line option of the table: which field it sets and how."""

    path: str  # "section.key"
    key: str
    flag: str
    help: str
    group: str
    parse: Callable[[str], Any] | None
    metavar: str | None
    choices: tuple[str, ...] | None
    resumable: bool
    default: Any
    const: Any = None

    @property
    def dest(self) -> str:
        """The argparse destination: the configuration path, dots included."""
        return self.path


def options() -> Iterator[Option]:
    """Every option of the table, section by section, in declaration order."""
    for section, kind in _SECTIONS.items():
        for f in dataclasses.fields(kind):
            if "flag" not in f.metadata:
                continue
            meta = f.metadata
            yield Option(
                path=f"{section}.{f.name}",
                key=f.name,
                flag=meta["flag"],
                help=meta["help"].replace("{default}", str(f.default)),
                group=meta["group"],
                parse=meta["parse"],
                metavar=meta["metavar"],
                choices=meta["choices"],
                resumable=meta["resumable"],
                default=f.default,
                const=meta["const"],
            )


def flags_of(keys: tuple[str, ...]) -> list[str]:
    """The command-line flags of configuration keys (field names), in the table's order."""
    return [o.flag for o in options() if o.key in keys]


def apply_options(base: RunConfig, given: Mapping[str, Any]) -> RunConfig:
    """``base`` with the options that were given (``"section.key"`` → value; ``None``: not given).

    A new single-device choice (``gpu``, ``gpu_memory_limit``, ``cpu``) replaces the old one
    rather than mixing with it, so a resumed run can move from a GPU to the CPU.
    """
    values = {path: value for path, value in given.items() if value is not None}
    single_device = ("device.gpu", "device.gpu_memory_limit", "device.cpu")
    if any(path in values for path in single_device):
        values = {
            "device.gpu": None,
            "device.gpu_memory_limit": None,
            "device.cpu": False,
            **values,
        }
    return base.with_values(values) if values else base


def resolve_steps_per_execution(
    value: int | str, steps_per_epoch: int | None, *, stream: bool = False, auto: int = 1
) -> int:
    """The steps per execution that ``value`` (a number, ``"auto"`` or ``"epoch"``) means.

    On data that is one epoch per pass, an epoch's last execution runs the steps that remain
    (the pass ends there), so any number works; more than an epoch is an epoch. An endless
    stream cannot end an execution early: ``fit``'s would take the next epoch's batches, so
    there the value must divide the epoch (``"auto"`` takes the largest divisor up to ``auto``).

    Args:
        value: The setting.
        steps_per_epoch: Steps per epoch, ``None`` if the data does not say.
        stream: Whether the data is an endless stream of epochs.
        auto: What ``"auto"`` means (the backend's choice).

    Raises:
        ConfigError: ``"epoch"`` without ``steps_per_epoch``, or a stream's ``value`` that does
            not divide ``steps_per_epoch`` (the message lists the values that do).
    """
    if value == "epoch" and steps_per_epoch is None:
        raise ConfigError(
            "steps_per_execution 'epoch' needs a dataset that knows its epoch: pass "
            "steps_per_epoch, or a number",
            keys=("steps_per_execution",),
        )
    resolved = auto if value == "auto" else steps_per_epoch if value == "epoch" else value
    if steps_per_epoch is None:
        return int(resolved)
    resolved = min(int(resolved), steps_per_epoch)
    if value == "auto" and stream:  # the largest that divides the epoch, at worst 1
        resolved = max(d for d in range(1, resolved + 1) if steps_per_epoch % d == 0)
    if not stream or steps_per_epoch % resolved == 0:
        return resolved
    choices = [d for d in range(1, steps_per_epoch + 1) if steps_per_epoch % d == 0]
    if len(choices) > 12:
        choices = [*choices[:11], steps_per_epoch]
    raise ConfigError(
        f"steps_per_execution {value} does not divide the {steps_per_epoch} steps of an epoch of "
        f"this endless stream: choose one of {', '.join(map(str, choices))} or 'epoch', or give "
        "data with one epoch per pass",
        keys=("steps_per_execution",),
    )
