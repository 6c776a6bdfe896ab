"""What every training method shares: the spec, the data, and the one callback-driven run loop.

``fit`` hands the loop to Keras. ``batch`` and ``loop`` plug a :class:`Stepper` into
:func:`drive`, which calls the callbacks in exactly the order ``Model.fit`` does (Keras 3.15,
``keras/src/backend/tensorflow/trainer.py``): train_begin; per epoch epoch_begin,
train_batch_begin/end per execution, a validation pass wrapped in test_begin /
test_batch_begin/end / test_end, then epoch_end; finally train_end. An *execution* is
``steps_per_execution`` steps run in one call (one step by default), and the batch hooks get the
indices ``fit`` gives them: the execution's first step on begin, ``first + steps_per_execution - 1``
on end. ``model.stop_training`` is checked after every execution and every epoch, as ``fit`` does,
so ``EarlyStopping`` and friends halt every method the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import keras

MetricFactory = Callable[[], list[keras.metrics.Metric]]


@dataclass(frozen=True)
class TrainSpec:
    """What to optimise and for how long; identical for all three methods.

    Attributes:
        epochs: Index of the last epoch to run (exclusive), as ``fit``'s ``epochs``.
        loss: The loss object (reduction: mean over the batch).
        optimizer: The optimizer; it is attached to the model by :func:`compile_model`.
        metrics: Builds fresh metric objects; called once per consumer so that no two loops share
            state.
        jit_compile: Compile the steps with XLA (one setting for every method).
        initial_epoch: Epoch to start from, as ``fit``'s ``initial_epoch``.
        steps_per_execution: Steps run per call between batch hooks, as ``fit``'s
            ``steps_per_execution``: a whole number, ``"auto"`` or ``"epoch"``;
            :func:`trainways.trainers.prepare` resolves it against the data (1 here, as in
            ``Model.compile``; a run's configuration defaults to ``"auto"``).
        train_step: The user's step function ``step(model, x, y) -> logs``
            (:mod:`trainways.steps`), run by the ``loop`` method instead of its built-in step.
        test_step: The user's validation step, same contract; ``None`` validates with the
            built-in step (or the model's own ``test_step``).
        validation_freq: Validate after every ``validation_freq``-th epoch, or after the
            (1-based) epochs listed, as ``fit``'s ``validation_freq``.
        verbose: ``fit``'s ``verbose``: 0 silent, 1 a progress bar, 2 a line per epoch. The
            command line's runs print through their own callbacks and pass 0.
    """

    epochs: int
    loss: keras.losses.Loss
    optimizer: keras.optimizers.Optimizer
    metrics: MetricFactory
    jit_compile: bool = False
    initial_epoch: int = 0
    steps_per_execution: int | str = 1
    train_step: Callable[..., Any] | None = None
    test_step: Callable[..., Any] | None = None
    validation_freq: int | tuple[int, ...] = 1
    verbose: int = 0

    def validates_after(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with a validation pass, as in ``fit``."""
        if isinstance(self.validation_freq, int):
            return (epoch + 1) % self.validation_freq == 0
        return epoch + 1 in self.validation_freq


@dataclass(frozen=True)
class TrainData:
    """Batched ``(x, y)`` datasets.

    Attributes:
        train: Training batches: one epoch per pass (the ``clock``'s epoch, when it has one), or
            with ``steps_per_epoch`` and no clock an endless stream whose epochs follow one
            another (as :func:`trainways.data.make_dataset` builds either).
        validation: Validation batches in a fixed order, one pass per evaluation, or ``None``.
        steps_per_epoch: Batches per epoch: what each epoch takes from a stream, or the length
            of a clocked pass; ``None`` for a pass that says its own length (or does not know).
        numpy: The same batches as :class:`trainways.data.NumpyBatches`, or ``None``: the JAX
            and PyTorch backends feed their hand-driven steps from them, with no TensorFlow on
            the hot path (``fit`` always takes the datasets).
        clock: The :class:`trainways.data.EpochClock` that ``train`` (and ``numpy.train``)
            follow: every method sets it to the epoch it is about to open.
        validation_steps: Batches per validation pass (``None``: the whole pass), as ``fit``'s.
        fit_train: What ``Model.fit`` receives instead of ``train`` (a user's ``PyDataset``,
            generator or ``DataLoader``, which ``fit`` reads natively), or ``None``.
        fit_validation: The same for the validation data.
    """

    train: Any  # tf.data.Dataset; typed loosely so this module never needs TensorFlow.
    validation: Any | None = None
    steps_per_epoch: int | None = None
    numpy: TrainData | None = None
    clock: Any | None = None
    validation_steps: int | None = None
    fit_train: Any | None = None
    fit_validation: Any | None = None

    def __post_init__(self) -> None:
        cardinality = getattr(self.train, "cardinality", None)
        endless = callable(cardinality) and int(cardinality()) == -1  # tf.data.INFINITE
        if endless and self.steps_per_epoch is None:
            raise ValueError(
                "the training dataset is an endless stream of epochs (make_dataset with "
                "shuffle=True): pass steps_per_epoch=trainways.data.steps_per_epoch(n, batch_size)"
            )

    @property
    def stream(self) -> bool:
        """Whether ``train`` is an endless stream of epochs (each takes ``steps_per_epoch``)."""
        return self.steps_per_epoch is not None and self.clock is None

    def set_epoch(self, epoch: int) -> None:
        """Tell the clock, if any, that epoch ``epoch`` is the next pass."""
        if self.clock is not None:
            self.clock.set_epoch(epoch)

    def epochs(self, first: int = 0) -> Iterator[Iterator[tuple[Any, Any]]]:
        """Yield, per epoch from ``first`` on, the iterator to draw that epoch's batches from.

        For a stream it is the same iterator every epoch (each epoch takes ``steps_per_epoch``
        batches from it); otherwise a fresh pass over ``train``, of that epoch when there is a
        clock (set when the epoch's iterator is asked for, not before).
        """
        if not self.stream:
            for epoch in itertools.count(first):
                self.set_epoch(epoch)
                yield iter(self.train)
        stream = iter(self.train)
        while True:
            yield stream


def compile_model(model: keras.Model, spec: TrainSpec) -> None:
    """Compile ``model`` with the spec's loss, optimizer and metrics, unless its user has.

    A model its user compiled keeps everything ``compile`` was given (loss, per-output losses,
    ``loss_weights``, metrics, optimizer, ``jit_compile``, ``steps_per_execution``): every
    method then trains on Keras's own compiled loss and metrics. The spec only fills in what a
    model nobody compiled lacks (a model trainways builds, or the library's defaults).
    """
    if getattr(model, "compiled", False):
        return
    model.compile(
        optimizer=spec.optimizer,
        loss=spec.loss,
        metrics=spec.metrics(),
        jit_compile=spec.jit_compile,
        steps_per_execution=spec.steps_per_execution,
    )


def build_compiled(model: keras.Model, batch: Any) -> None:
    """Build what ``fit`` builds before its first step — the model, the compiled loss and
    metrics, the optimizer — from one batch's shapes, as ``fit`` does: symbolically
    (``Model._symbolic_build``), so nothing runs and no weight or metric changes.

    A model with its own ``train_step`` that cannot be called (a GAN, with no ``call()``) is
    left to build itself in its first step, as ``fit`` on TensorFlow leaves it.
    """
    from trainways.steps import has_own_step

    try:
        model._symbolic_build(data_batch=batch)
    except RuntimeError:  # Keras's "Unable to automatically build the model"
        if not has_own_step(model):
            raise


def example_batch(element_spec: Any) -> Any:
    """A batch of one, of zeros, shaped as ``element_spec`` (a ``tf.data`` spec, possibly
    nested): what a model is built and a step traced on."""
    import numpy as np

    def zeros(spec: Any) -> Any:
        return np.zeros([1, *spec.shape[1:]], dtype=spec.dtype.as_numpy_dtype)

    return keras.tree.map_structure(zeros, element_spec)


def build_before_training(model: keras.Model, element_spec: Any) -> None:
    """Build what ``fit`` builds on first use — compiled loss and metrics, the optimizer — once,
    from the shapes of a batch (:func:`build_compiled`)."""
    build_compiled(model, example_batch(element_spec))


def steps_of(dataset: Any) -> int | None:
    """Number of batches per pass, or ``None`` when the dataset does not know it."""
    cardinality = getattr(dataset, "cardinality", None)
    if not callable(cardinality):  # a distributed dataset does not say
        return None
    n = int(cardinality())
    return n if n >= 0 else None


def make_callback_list(
    callbacks: Iterable[keras.callbacks.Callback] | None,
    model: keras.Model,
    *,
    epochs: int,
    steps: int | None,
    verbose: int = 0,
) -> keras.callbacks.CallbackList:
    """A ``CallbackList`` with the History, progress bar and params that ``fit`` would give its
    callbacks."""
    return keras.callbacks.CallbackList(
        list(callbacks or []),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
    )


class Stepper(Protocol):
    """One method's step: runs batches and aggregates true running metrics since ``reset``."""

    def reset(self) -> None:
        """Forget the running metrics (start of an epoch or a validation pass)."""

    def train_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        """Run up to ``steps`` optimisation steps on batches from ``iterator``.

        Returns:
            How many ran: fewer than ``steps`` only when the iterator ran out.
        """

    def test_steps(self, iterator: Iterator[tuple[Any, Any]], steps: int) -> int:
        """Score up to ``steps`` batches without updating weights; returns how many ran."""

    def results(self) -> dict[str, float]:
        """Sample-weighted means of loss and metrics since the last ``reset``."""


def run_executions(
    run: Callable[[Iterator[tuple[Any, Any]], int], int],
    iterator: Iterator[tuple[Any, Any]],
    *,
    steps: int | None,
    steps_per_execution: int,
    on_begin: Callable[[int], None],
    on_end: Callable[[int], None],
    should_stop: Callable[[], bool],
) -> None:
    """Run one pass (``steps`` batches, or until ``iterator`` ends) in executions, with hooks.

    Mirrors ``fit``'s epoch loop: ``on_begin(first)`` before each execution and
    ``on_end(first + steps_per_execution - 1)`` after it; an execution that finds the data
    exhausted ends the pass without ``on_end``, as ``fit`` does on ``StopIteration``.
    """
    step = 0
    while steps is None or step < steps:
        on_begin(step)
        ran = run(iterator, steps_per_execution)
        if ran == 0:
            return
        on_end(step + steps_per_execution - 1)
        step += ran
        if ran < steps_per_execution or should_stop():
            return


def evaluate(
    model: keras.Model,
    stepper: Stepper,
    dataset: Any,
    callbacks: keras.callbacks.CallbackList,
    steps_per_execution: int = 1,
    steps: int | None = None,
) -> dict[str, float]:
    """One validation pass (``steps`` batches, or the whole pass), with the test hooks
    ``Model.evaluate`` calls."""
    model.stop_evaluating = False
    callbacks.on_test_begin()
    stepper.reset()
    run_executions(
        stepper.test_steps,
        iter(dataset),
        steps=steps or steps_of(dataset),
        steps_per_execution=steps_per_execution,
        on_begin=callbacks.on_test_batch_begin,
        on_end=lambda last: callbacks.on_test_batch_end(last, stepper.results()),
        should_stop=lambda: model.stop_evaluating,
    )
    logs = stepper.results()
    callbacks.on_test_end(logs)
    return logs


def drive(
    model: keras.Model,
    stepper: Stepper,
    data: TrainData,
    spec: TrainSpec,
    callbacks: Iterable[keras.callbacks.Callback] | None,
) -> keras.callbacks.History:
    """Run epochs of ``stepper`` over ``data`` exactly as ``Model.fit`` drives its callbacks.

    Returns:
        The History callback, whose ``history`` has one list per log key.
    """
    steps = data.steps_per_epoch or steps_of(data.train)
    callback_list = make_callback_list(
        callbacks, model, epochs=spec.epochs, steps=steps, verbose=spec.verbose
    )
    model.stop_training = False
    callback_list.on_train_begin()
    training_logs = None
    epochs = data.epochs(spec.initial_epoch)
    for epoch in range(spec.initial_epoch, spec.epochs):
        stepper.reset()
        callback_list.on_epoch_begin(epoch)
        run_executions(
            stepper.train_steps,
            next(epochs),
            steps=steps,
            steps_per_execution=spec.steps_per_execution,
            on_begin=callback_list.on_train_batch_begin,
            on_end=lambda last: callback_list.on_train_batch_end(last, stepper.results()),
            should_stop=lambda: model.stop_training,
        )
        epoch_logs = stepper.results()
        if data.validation is not None and spec.validates_after(epoch):
            val_logs = evaluate(
                model,
                stepper,
                data.validation,
                callback_list,
                spec.steps_per_execution,
                data.validation_steps,
            )
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training:
            break
    if spec.epochs > spec.initial_epoch:
        # As fit does: a no-op for Nadam, but it swaps in EMA weights for optimizers that keep them.
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=training_logs)
    return model.history
