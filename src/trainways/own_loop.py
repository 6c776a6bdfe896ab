"""Level 3: the user's own training loop, with trainways' callbacks, run directory and resume.

:class:`Loop` hands the user the epochs and the batches and takes back each batch's logs; around
that it does what ``Model.fit`` and ``trainways train`` do: callbacks in ``fit``'s order, true
epoch means, the progress bar and epoch lines, History, and with ``out`` the run directory
(``status.json``, ``train.log``, ``history.csv``, checkpoints with the optimizer's state,
``best.keras``, ``model.keras``, ``metrics.json``), resuming where a killed run stopped, and a
clean stop on SIGINT / SIGTERM::

    loop = trainways.Loop(model, x, y, validation_data=(x_val, y_val), epochs=10, out="runs/a")
    for epoch in loop.epochs():
        for x_batch, y_batch in loop.batches():
            loop.log(model.train_on_batch(x_batch, y_batch, return_dict=True))
        loop.validate(lambda x, y: model.test_on_batch(x, y, return_dict=True))

It takes every input ``Model.fit`` takes, prepared as ``trainways.fit`` prepares it
(:func:`trainways.data.prepare_inputs`), and hands each batch over as ``fit`` hands it to a
``train_step``: ``(x, y)``, ``(x, y, sample_weight)``, or ``x`` alone.

The logs are those of :mod:`trainways.steps`: a dict with ``"loss"``, other scalars, and
optionally ``"y_pred"`` for the loop's metrics. ``docs/own-loop.md`` is the manual.

It runs past 500 lines because :class:`Loop` is one object the user drives, and how its run
ends (a stop, an error in the script, a resume with other settings) belongs to it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from trainways import rundir, steps
from trainways.callbacks import MlflowTracking
from trainways.config import ConfigError, RunConfig, TrainConfig
from trainways.lifecycle import (
    LOG,
    LibraryRun,
    RunLife,
    configure_logging,
    open_library_run,
    script_command,
    script_name,
)
from trainways.stops import TrainingStopped
from trainways.trainers.batch import WeightedMeans


class LoopError(RuntimeError):
    """The loop was driven out of order (a one-line message says how to drive it)."""


class Loop:
    """Drive your own training loop with trainways' callbacks, run directory and resume.

    The data arguments are ``Model.fit``'s and mean what they mean there (and in
    ``trainways.fit``): the same batches, in the same order for the same ``seed``.

    Args:
        model: A Keras model compiled with its optimizer (``model.compile(optimizer=...)``,
            and a loss for ``train_on_batch``): checkpoints keep that optimizer's state. Build
            it in a ``MirroredStrategy``'s scope to train on several devices.
        x: Training inputs: arrays (or dicts, lists of them), a ``tf.data.Dataset``, a
            ``keras.utils.PyDataset``, a generator, a torch ``DataLoader`` or a Grain dataset.
        y: Targets, with arrays only (any structure, one per output), or ``None``.
        sample_weight: Per-sample weights, with arrays only: the batches are then
            ``(x, y, sample_weight)``.
        class_weight: ``{class: weight}``, turned into sample weights (one output only).
        validation_data: ``(x_val, y_val)``, ``(x_val, y_val, sample_weight)`` or data of any
            kind above, for :meth:`validate`; or ``None``.
        validation_split: The fraction of the arrays, their last rows, kept for validation.
        shuffle: Reshuffle array inputs (and a finite PyDataset's batch order) every epoch, in
            an order that is a pure function of ``seed`` and the epoch.
        steps_per_epoch: Batches an epoch (``None``: one pass over the data); with a
            generator, each epoch takes that many from it.
        epochs: Epochs to train (the last one's index + 1, as ``fit``'s ``epochs``).
        batch_size: Examples per batch (the global batch under a strategy), with arrays only
            (``None``: 32, as ``fit``).
        seed: Seeds Python, NumPy, the backend and the per-epoch order. ``None`` draws the
            shuffle seed from NumPy's global generator (so a script seeded with
            ``keras.utils.set_random_seed`` repeats itself); with ``out``, the drawn seed is
            recorded there and a resumed run keeps the recorded one.
        deterministic: Also make the backend's kernels deterministic, so that a seeded run
            repeats, and resumes, bit for bit.
        metrics: Keras metric objects updated from logs that carry ``"y_pred"`` (with the
            batch's ``y`` and sample weights).
        callbacks: Keras callbacks, driven as ``fit`` drives them.
        out: The run directory. A new or empty one starts a run; one left by a stopped run
            resumes it; a completed one is refused. ``None`` writes nothing.
        verbose: Print the epoch lines (and a progress bar on a terminal).
        optimizers: Optimizers your step applies besides ``model.optimizer``: checkpointed too
            (build them before the loop, so that a resumed run can restore them).
        tracking: Log the run to MLflow at this tracking URI (``True``:
            ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` beside ``out``, or in ``runs/``), as
            ``trainways train --mlflow`` does; a resumed run continues its MLflow run.

    Attributes:
        model: The model being trained.
        last_logs: The last finished epoch's logs (``None`` before one finished).

    Raises:
        ConfigError: A bad argument, an uncompiled model, or a multi-worker strategy.
        DataError: Data or a data option ``fit`` refuses, or that trainways cannot honour.
        RunDirError: ``out`` holds a completed run or is not writable;
            :class:`trainways.rundir.RunDirBusy` when another process (or an unfinished Loop of
            this one) writes it: the run holds ``out``'s lock until it ends.
    """

    def __init__(
        self,
        model: keras.Model,
        x: Any,
        y: Any = None,
        *,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        validation_data: Any = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        steps_per_epoch: int | None = None,
        epochs: int = 1,
        batch_size: int | None = None,
        seed: int | None = None,
        deterministic: bool = False,
        metrics: Sequence[keras.metrics.Metric] = (),
        callbacks: Iterable[keras.callbacks.Callback] | None = None,
        out: str | Path | None = None,
        verbose: bool = True,
        optimizers: Sequence[keras.optimizers.Optimizer] = (),
        tracking: str | bool | None = None,
    ) -> None:
        if getattr(model, "optimizer", None) is None:
            raise ConfigError(
                "Loop needs the model compiled with its optimizer, whose state checkpoints "
                "keep: model.compile(optimizer=optimizer) (add loss= for train_on_batch)"
            )
        self.model = model
        self._out = Path(out) if out is not None else None
        self._resume_from = None
        self._lock: rundir.RunDirLock | None = None
        opened = self._open_run_dir(seed, epochs) if self._out is not None else None
        try:
            inputs = self._prepare(
                opened.seed(seed) if opened is not None else seed,  # fit's rule, one for both
                epochs=epochs,
                deterministic=deterministic,
                data_arguments={
                    "x": x,
                    "y": y,
                    "sample_weight": sample_weight,
                    "class_weight": class_weight,
                    "batch_size": batch_size,
                    "shuffle": shuffle,
                    "steps_per_epoch": steps_per_epoch,
                    "validation_split": validation_split,
                    "validation_data": validation_data,
                },
            )
        except BaseException:
            self._release()  # nothing was written: the same call may be made again
            raise
        self._metrics = list(metrics)
        self._extra_optimizers = tuple(optimizers)
        self._verbose = verbose
        self._user_callbacks = list(callbacks or [])
        self._tracking = tracking if tracking is not False else None
        self._setup_callbacks(epochs, inputs.kind)
        if opened is not None:
            opened.say_how_inputs_resume(self._out, inputs, quiet=not verbose)
        # Where the user is: None outside epochs(), else the epoch; the batch being trained.
        self._epoch: int | None = None
        self._batch: tuple[Any, ...] | None = None
        self._logged = False
        self._running = WeightedMeans()  # this epoch's (or validation's) logs so far
        self._epoch_logs: dict[str, float] = {}
        self._train_logs: dict[str, float] | None = None  # set by validate(), before it runs
        self._stream: Iterator[tuple[Any, ...]] | None = None  # a stream's one iterator
        self._pass: Iterator[tuple[Any, ...]] | None = None  # this epoch's pass, once opened
        self._consumed: int | None = None  # batches taken this epoch; None: batches() not called
        self.last_logs: dict[str, float] | None = None

    def _prepare(
        self,
        seed: int | None,
        *,
        epochs: int,
        deterministic: bool,
        data_arguments: dict[str, Any],
    ) -> Any:
        """Seed the run, prepare its data as ``trainways.fit`` does, and place it; return the
        :class:`trainways.data.Inputs`."""
        from trainways.backends import current
        from trainways.data import prepare_inputs
        from trainways.trainers import steps_of
        from trainways.training import seed_everything, train_data_from

        batch_size = data_arguments["batch_size"]
        self._config = RunConfig(
            train=TrainConfig(
                method="loop",
                epochs=epochs,
                batch_size=batch_size or 32,
                seed=seed,
                deterministic=deterministic,
            )
        )
        seed_everything(self._config)
        inputs = prepare_inputs(**data_arguments, seed=seed, tensorflow=True)
        data = train_data_from(inputs, None)
        self._backend = current()
        self._placement = self._backend.prepare(self.model, data)
        if self._placement.spans_workers:
            raise ConfigError(
                "Loop runs on one machine: one device, or MirroredStrategy over its devices; "
                "for several workers use trainways train --strategy multiworker"
            )
        # The batches the user's steps take: NumPy / PyTorch tensors on JAX and PyTorch,
        # tf.data (split per replica under a strategy) on TensorFlow.
        self._data = self._placement.distribute(data)
        self._validation = self._data.validation
        self._element_spec = inputs.train.element_spec  # the whole batch tuple's
        # Batches an epoch: a clocked pass's length, what a stream's epoch takes, or what the
        # data says of its passes (None: it does not know; the pass ends the epoch).
        self._steps = inputs.steps_per_epoch or steps_of(inputs.numpy.train)
        self._first_epoch = self._resume_from.epoch if self._resume_from else 0
        return inputs

    # ----------------------------------------------------------------- the run directory

    def _open_run_dir(self, seed: int | None, epochs: int) -> LibraryRun:
        """Start or resume the run in ``out``."""
        assert self._out is not None
        opened = open_library_run(
            self._out,
            kind="loop",
            caller=f"Loop(out={str(self._out)!r})",
            fixed={"seed": seed, "epochs": epochs},
        )
        self._lock, self._resume_from = opened.lock, opened.resume_from
        return opened

    def _release(self) -> None:
        """Let another process (or Loop) write ``out``: the run has ended here."""
        if self._lock is not None:
            self._lock.release()

    def _setup_callbacks(self, epochs: int, inputs: str) -> None:
        out = self._out
        self._life = RunLife(
            out,
            self._config,
            quiet=not self._verbose,
            resume_from=self._resume_from,
            resume_hint=f"{script_command()} (Loop resumes {out})" if out else None,
        )
        if out is not None:
            settings = {"epochs": epochs, **_loop_settings(self._config), "inputs": inputs}
            rundir.write_json(out / rundir.CONFIG, {"loop": {**settings, "script": script_name()}})
        self._life.start(self._make_tracker)
        callbacks = self._life.callbacks(
            self._user_callbacks,
            extra_optimizers=self._extra_optimizers,
            # No best.keras: what is "best" depends on what the user logs (own-loop.md).
            best_monitor=None,
        )
        self._callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=False,
            model=self.model,
            verbose=0,
            epochs=epochs,
            steps=self._steps,
        )
        self._epochs = epochs

    def _make_tracker(self) -> Any:
        """The MLflow callback ``tracking`` asks for (its params: the run's config.json)."""
        if self._tracking is None:
            return None
        from trainways.tracking import params_of_run_dir, run_params

        if self._out is not None:
            params = params_of_run_dir(self._out)
        else:
            loop = _loop_settings(self._config)
            params = run_params(
                {"loop": loop}, backend=loop["backend"], method="loop", seed=loop["seed"]
            )
        return MlflowTracking.for_library(self._tracking, params=params, run_dir=self._out)

    # ----------------------------------------------------------------- what the user drives

    def epochs(self) -> Iterator[int]:
        """Yield each epoch's index, from where a resumed run stopped; run the epoch's hooks.

        A stop — SIGINT or SIGTERM (at the end of the batch under way), a non-finite loss — is
        recorded in ``out`` and ends the process with the exit status ``trainways train`` uses
        (130, 143, 1), after saying how to resume.
        """
        if self._epoch is not None:
            raise LoopError("loop.epochs() is already running: call it once, as the outer loop")
        model = self.model
        model.stop_training = False
        self._watch_errors()
        try:
            self._call(self._callbacks.on_train_begin)
            for epoch in range(self._first_epoch, self._epochs):
                self._epoch = epoch
                self._running, self._epoch_logs = WeightedMeans(), {}
                self._train_logs = None
                self._consumed, self._pass = None, None
                for metric in self._metrics:
                    metric.reset_state()
                self._call(self._callbacks.on_epoch_begin, epoch)
                yield epoch
                self._end_epoch()
                trained = self._means() if self._train_logs is None else self._train_logs
                logs = {**trained, **self._epoch_logs}
                self._call(self._callbacks.on_epoch_end, epoch, logs)
                self.last_logs = logs
                if model.stop_training:
                    break
            self._epoch = None
            self._call(self._callbacks.on_train_end, self.last_logs)
            self._finish()
        except GeneratorExit:
            # The script left the loop: an error of its own (sys.excepthook, still watching,
            # then says which) or a break, before the last epoch. The run has ended here: the
            # script may start it again (a resume) in this very process.
            self._record_failure(None)
            self._epoch = None
            self._release()
            raise
        except SystemExit:
            self._unwatch_errors()
            raise  # a stop, recorded by _call
        except BaseException as error:
            self._record_failure(error)
            self._unwatch_errors()
            self._release()
            raise
        finally:
            self._epoch = None
            self._pass = self._stream = None  # the run has ended here: nothing left reading
        self._unwatch_errors()

    def batches(self) -> Iterator[Any]:
        """Yield this epoch's batches as ``fit`` hands them to a ``train_step``; run batch hooks.

        A batch is ``(x, y)``, ``(x, y, sample_weight)`` (sample or class weights given, or
        yielded by the data), or ``x`` alone (no targets); ``x`` and ``y`` keep the data's
        structure (a dict of inputs stays a dict). The batches come in the order the seed and
        the epoch give (arrays, a PyDataset), or as the data yields them.

        Under a strategy each batch is split per replica: run your step with :meth:`step`.
        """
        if self._epoch is None:
            raise LoopError("loop.batches() runs inside an epoch: for epoch in loop.epochs(): ...")
        if self._consumed is not None:
            raise LoopError("loop.batches() was already called in this epoch: call it once")
        self._consumed = 0
        batches = self._epoch_batches()
        for index in itertools.count() if self._steps is None else range(self._steps):
            batch = next(batches, None)
            if batch is None:  # the pass ended (a shorter last piece, a stream that ran out)
                return
            self._consumed += 1
            self._call(self._callbacks.on_train_batch_begin, index)
            self._batch, self._logged = tuple(batch), False
            yield self._batch if len(self._batch) > 1 else self._batch[0]
            if not self._logged:
                self._batch = None
                raise LoopError(
                    f"batch {index} of epoch {self._epoch + 1} was not logged: call "
                    "loop.log(logs) once per batch, with the step's logs"
                )
            self._batch = None
            self._call(self._callbacks.on_train_batch_end, index, self._means())
            if self.model.stop_training:
                return

    def log(self, logs: Mapping[str, Any]) -> None:
        """Record the current batch's logs: ``"loss"``, other scalars, optional ``"y_pred"``.

        Each scalar's epoch mean weighs a batch by its number of examples (the rows of its first
        input), as ``fit`` weighs its loss. ``"y_pred"`` updates ``metrics=`` with the batch's
        ``y`` (and sample weights), when it has a ``y``.

        Raises:
            LoopError: Called outside :meth:`batches`, or twice for one batch.
            ConfigError: ``logs`` breaks the contract (no ``"loss"``, a non-scalar value).
        """
        if self._batch is None:
            raise LoopError("loop.log() records a batch: call it inside for x, y in loop.batches()")
        if self._logged:
            raise LoopError("loop.log() was already called for this batch: call it once per batch")
        logs = steps.check_logs(
            logs, role="step", source=self.log, who="the step whose logs reached loop.log()"
        )
        self._add(logs, self._batch)
        self._logged = True

    def validate(self, test_step: Callable[..., Mapping[str, Any]]) -> dict[str, float]:
        """Score the validation data with ``test_step``, with the test hooks.

        ``test_step`` takes each validation batch's parts: ``test_step(x, y)``,
        ``test_step(x, y, sample_weight)`` or ``test_step(x)``, and returns its logs. The means
        go into this epoch's logs as ``val_<name>``.

        Returns:
            The validation means, without the ``val_`` prefix.
        """
        if self._epoch is None:
            raise LoopError("loop.validate() scores an epoch: call it inside loop.epochs()")
        if self._validation is None:
            raise LoopError(
                "loop.validate() needs Loop(..., validation_data=(x_val, y_val)) or "
                "validation_split"
            )
        self._train_logs = self._means()  # before the metric objects turn to validation
        saved, self._running = self._running, WeightedMeans()
        for metric in self._metrics:
            metric.reset_state()
        self.model.stop_evaluating = False
        self._call(self._callbacks.on_test_begin)
        for index, batch in enumerate(self._validation):
            parts = tuple(batch)
            self._call(self._callbacks.on_test_batch_begin, index)
            logs = steps.check_logs(
                test_step(*parts), role="test_step", source=test_step, who="loop.validate's step"
            )
            self._add(logs, parts)
            self._call(self._callbacks.on_test_batch_end, index, self._means())
            if self.model.stop_evaluating:
                break
        results = self._means()
        self._call(self._callbacks.on_test_end, results)
        self._running = saved
        self._epoch_logs = {f"val_{name}": value for name, value in results.items()}
        return results

    def step(self, fn: Callable[..., Mapping[str, Any]]) -> Callable[..., Any]:
        """``fn`` compiled (``tf.function``), and run per replica under a strategy.

        ``fn`` takes a batch's parts as :meth:`batches` yields them (``fn(x, y)``,
        ``fn(x, y, sample_weight)`` or ``fn(x)``) and returns its logs. Under
        ``MirroredStrategy`` a batch from :meth:`batches` is split per replica; the returned
        callable runs ``fn`` on each part and gives back the whole batch's logs.
        """
        return self._backend.compile_step(fn, self.model, self._placement, self._element_spec)

    @property
    def history(self) -> dict[str, list[float]]:
        """Every epoch's logs so far (a resumed run's earlier epochs included)."""
        if self._life.checkpointer is not None:
            return self._life.checkpointer.history
        return dict(self.model.history.history)

    # ----------------------------------------------------------------- inside

    def _epoch_batches(self) -> Iterator[tuple[Any, ...]]:
        """The iterator this epoch takes its batches from, as the trainers take theirs
        (:meth:`trainways.trainers.TrainData.epochs`): a stream's one iterator, whose epochs
        follow one another; else the epoch's own pass, opened once (the clock set first)."""
        data = self._data
        if data.stream:
            if self._stream is None:
                self._stream = iter(data.train)
            return self._stream
        if self._pass is None:
            data.set_epoch(self._epoch)
            self._pass = iter(data.train)
        return self._pass

    def _end_epoch(self) -> None:
        """Take what is left of this epoch's batches: a loop that left ``batches()`` early (a
        ``break``) must not shift a stream's next epoch, and a pass ends as ``fit`` ends it
        (a PyDataset's ``on_epoch_end``, nothing left prefetching). A pass never opened stays
        closed: each epoch's batches depend on the seed and the epoch only."""
        if self.model.stop_training:  # the last epoch: nothing follows it
            self._pass = None
            return
        if self._data.stream:
            batches = self._epoch_batches()
            for _ in range(self._steps - (self._consumed or 0)):
                if next(batches, None) is None:
                    break
        elif self._pass is not None:
            for _ in self._pass:
                pass
        self._pass = None

    def _add(self, logs: Mapping[str, Any], batch: tuple[Any, ...]) -> None:
        """Add a batch's logs to the running means, weighed by its examples, and its
        predictions to the metrics."""
        gather = self._placement.gather
        # The first input's rows, as fit weighs its loss: a batch may have no y.
        size = int(keras.ops.shape(gather(keras.tree.flatten(batch[0])[0]))[0])
        # Python floats: a PyTorch loss still has its graph.
        scalars = {
            key: float(keras.ops.convert_to_numpy(value))
            for key, value in logs.items()
            if key != steps.PREDICTIONS
        }
        self._running.add(scalars, size)
        if steps.PREDICTIONS not in logs or len(batch) < 2 or not self._metrics:
            return
        y, weights = (
            None if part is None else keras.tree.map_structure(gather, part)
            for part in (*batch[1:], None)[:2]
        )
        for metric in self._metrics:
            metric.update_state(y, logs[steps.PREDICTIONS], sample_weight=weights)

    def _means(self) -> dict[str, float]:
        means = self._running.result()
        for metric in self._metrics:
            means[metric.name] = float(metric.result())
        return means

    def _call(self, hook: Callable[..., None], *args: Any) -> None:
        """Run a hook; a stop it raises is recorded and ends the process."""
        try:
            hook(*args)
        except TrainingStopped as stop:
            raise SystemExit(self._stopped(stop)) from None

    def _watch_errors(self) -> None:
        """Record an error that ends the script while it drives the loop: it is raised in the
        script's frame, not in :meth:`epochs`, so only ``sys.excepthook`` sees it."""
        self._failure: tuple[BaseException | None] | None = None  # what was recorded, if any
        if self._out is None:
            return
        previous = sys.excepthook

        def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
            if sys.excepthook is hook:
                sys.excepthook = previous
            self._record_failure(error, refine=True)
            previous(kind, error, trace)

        self._excepthook = (hook, previous)
        sys.excepthook = hook

    def _unwatch_errors(self) -> None:
        hook, previous = getattr(self, "_excepthook", (None, None))
        if hook is not None and sys.excepthook is hook:
            sys.excepthook = previous

    def _record_failure(self, error: BaseException | None, *, refine: bool = False) -> None:
        """Record in ``out`` that the run ended before its last epoch: ``interrupted`` for a
        Ctrl-C, else ``failed`` with the error (``None``: the script left :meth:`epochs`)."""
        life = self._life
        if life.out is None or (self._failure is not None and not refine):
            return
        if self._failure is not None and self._failure[0] is error:
            return  # raised in epochs(), recorded there, then uncaught
        if refine and rundir.read_status(life.out).get("state") == rundir.COMPLETED:
            return
        self._failure = (error,)
        configure_logging(life.out / rundir.LOG, quiet=not self._verbose)  # a refinement's too
        if life.signals is not None:
            life.signals.restore_handlers()
        if isinstance(error, KeyboardInterrupt):
            life.interrupted()
        elif error is None:
            epoch = self._epoch + 1 if self._epoch is not None else self._first_epoch + 1
            life.failed(
                LoopError(f"the script left loop.epochs() in epoch {epoch} of {self._epochs}")
            )
        else:
            life.failed(error)
        life.end()
        configure_logging(None, quiet=True)

    def _stopped(self, stop: TrainingStopped) -> int:
        self._failure = (stop,)  # recorded here: leaving epochs() on the way out is not a failure
        self._unwatch_errors()
        code = self._life.stopped(stop)
        self._life.end()
        self._release()
        return code

    def _finish(self) -> None:
        life = self._life
        life.complete(self.model)
        life.end()
        self._release()
        if self._out is not None:
            LOG.info("run saved in %s", self._out)
            configure_logging(None, quiet=True)


def _loop_settings(config: RunConfig) -> dict[str, Any]:
    return {
        "batch_size": config.train.batch_size,
        "seed": config.train.seed,
        "backend": keras.backend.backend(),
    }
