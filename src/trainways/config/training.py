"""The ``train`` section of a run's configuration, :class:`TrainConfig`: the method and every
optimisation, output and speed setting, checked on construction."""

from __future__ import annotations

from dataclasses import dataclass

from trainways.config.fields import (
    LOSSES,
    METHODS,
    PRECISIONS,
    STEPS_PER_EXECUTION_WORDS,
    TRACKING_AUTO,
    ConfigError,
    check_code_ref,
    check_fraction,
    check_one_of,
    check_positive,
    check_types,
    option,
    parse_code_ref,
    parse_float,
    parse_int,
    parse_steps_per_execution,
    replace,
)
from trainways.config.rules import check_steps_method

# What early stopping (patience) may watch.
STOP_ON: tuple[str, ...] = ("val_loss", "val_accuracy")


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
            ``"auto"``, the backend's choice (resolved against the data by
            :func:`trainways.trainers.resolve_steps_per_execution`). Progress and Ctrl-C act
            between executions.
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
        parse=parse_code_ref,
        metavar="FILE.py:FUNCTION",
        group="training",
        help="your training step for --method loop: FUNCTION(model, x, y) in FILE.py, "
        "returning {'loss': ..., 'y_pred': ...} (see docs/custom-steps.md)",
    )
    test_step: str | None = option(
        flag="--test-step",
        parse=parse_code_ref,
        metavar="FILE.py:FUNCTION",
        group="training",
        help="your validation step for --method loop, same contract (default: the built-in)",
    )
    epochs: int = option(
        10,
        flag="--epochs",
        parse=parse_int,
        metavar="N",
        group="training",
        help="passes over the training split (default: {default})",
    )
    batch_size: int = option(
        32,
        flag="--batch-size",
        parse=parse_int,
        metavar="N",
        group="training",
        help="samples per step, the global batch under a strategy (default: {default})",
    )
    learning_rate: float = option(
        1e-3,
        flag="--lr",
        parse=parse_float,
        metavar="LR",
        group="training",
        help="Nadam learning rate (default: {default})",
    )
    lr_halve_at: int | None = option(
        flag="--lr-halve-at",
        parse=parse_int,
        metavar="EPOCH",
        group="training",
        help="halve the learning rate once, at the start of this 1-based epoch "
        "(the tutorial's batch method used 5; default: never)",
    )
    seed: int | None = option(
        flag="--seed",
        parse=parse_int,
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
        parse=parse_float,
        metavar="W",
        group="training",
        help="Nadam's decoupled weight decay, as AdamW (default: none)",
    )
    label_smoothing: float = option(
        0.0,
        flag="--label-smoothing",
        parse=parse_float,
        metavar="E",
        group="training",
        help="train against targets with mass E spread over all topics (default: {default})",
    )
    patience: int | None = option(
        flag="--patience",
        parse=parse_int,
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
        parse=parse_steps_per_execution,
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
        check_types(self)
        check_one_of("method", self.method, METHODS)
        check_one_of("precision", self.precision, PRECISIONS)
        check_one_of("stop_on", self.stop_on, STOP_ON)
        check_positive("weight_decay", self.weight_decay)
        if self.tracking is not None and (
            not isinstance(self.tracking, str) or not self.tracking.strip()
        ):
            raise ConfigError(
                f"tracking {self.tracking!r} is not a tracking URI: give one "
                "(sqlite:///runs/mlflow.db, http://host:5000) or 'auto'",
                keys=("tracking",),
            )
        check_fraction("label_smoothing", self.label_smoothing)
        check_one_of("loss", self.loss, LOSSES)
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
                check_code_ref(key, getattr(self, key))
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
            check_positive(key, getattr(self, key))
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be in [0, 2**31), got {self.seed!r}", keys=("seed",))

    def for_method(self, method: str) -> TrainConfig:
        """These settings for ``method``; a step function goes only to the ``loop`` method
        (``compare`` and ``agree`` set it beside ``fit`` and ``batch`` on their built-in steps)."""
        if method == "loop":
            return replace(self, method=method)
        return replace(self, method=method, step=None, test_step=None)
