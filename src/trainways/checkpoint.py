"""Per-epoch checkpoints of a training run, and resuming from them bit for bit.

:class:`EpochCheckpoint` writes, after every epoch, everything a run needs to continue as if it had
never stopped: the model's weights, every optimizer variable (iterations, learning rate, Nadam's
momentums, velocities and its ``u_product``), the History so far and the state of the callbacks
that carry some (``EarlyStopping``). It is a plain ``keras.callbacks.Callback``, so all three
training methods drive it alike.

Layout, inside the run directory::

    checkpoints/
        epoch-0003/
            arrays.npz    weights.NNNN, optimizer.NNNN, optimizer<K>.NNNN (K-th extra
                          optimizer of a user step), callbacks.<key>.<field>.NNNN
            state.json    format, epoch, learning rate, history, callback states, sha256
        epoch-0004/

A checkpoint is built in a hidden temporary directory beside them and renamed into place once its
files are on disk, so a directory named ``epoch-NNNN`` is always complete (or damaged afterwards,
which :func:`load_checkpoint` detects). Only the newest two are kept.

Resuming (see :class:`EpochCheckpoint`)::

    checkpoint = latest_checkpoint(run_dir)
    spec = TrainSpec(..., initial_epoch=checkpoint.epoch)
    callbacks = [..., early_stopping]
    callbacks.append(EpochCheckpoint(run_dir, callbacks, restore_from=checkpoint))
    get_trainer(method, backend)(fresh_model, data, spec, callbacks)
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainways import rundir
from trainways.callbacks import EpochLogger
from trainways.files import default_mode, write_atomic

LOG = logging.getLogger("trainways")

CHECKPOINTS = rundir.CHECKPOINTS
ARRAYS = "arrays.npz"
STATE = "state.json"
FORMAT_VERSION = 1
KEEP = 2

_NAME = re.compile(r"^epoch-(\d+)$")
# Hidden names: listing complete checkpoints never sees a half-written or half-deleted one.
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"

History = dict[str, list[float]]
CallbackState = dict[str, Any]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One verified checkpoint, loaded into memory.

    Attributes:
        path: Its directory, ``<run_dir>/checkpoints/epoch-NNNN``.
        epoch: Number of completed epochs: resume with ``TrainSpec(initial_epoch=epoch)``.
        learning_rate: The optimizer's learning rate at the end of that epoch.
        history: Every epoch's logs so far, one list per key, as ``History.history``.
        callback_states: Saved state per tracked callback, keyed ``<TypeName>#<n>`` (the n-th
            tracked callback of that type); array fields hold lists of arrays.
        optimizer_class: Class name of the optimizer whose variables these are.
        weights: ``model.get_weights()``, in that order.
        optimizer_variables: The values of ``optimizer.variables``, in that order.
        extra_optimizers: Per optimizer a user's step applies besides the model's
            (:func:`trainways.steps.keeps`): its class name and variables' values.
        random_states: The model's random generators' states (its ``SeedGenerator`` s, which
            dropout draws from; not among ``get_weights()``), so that a resumed run draws the
            masks the unbroken run draws.
    """

    path: Path
    epoch: int
    learning_rate: float
    history: History
    callback_states: dict[str, CallbackState]
    optimizer_class: str
    weights: tuple[np.ndarray, ...]
    optimizer_variables: tuple[np.ndarray, ...]
    extra_optimizers: tuple[tuple[str, tuple[np.ndarray, ...]], ...] = ()
    random_states: tuple[np.ndarray, ...] = ()


def _random_states(model: keras.Model) -> list[Any]:
    """The model's variables that are neither weights nor optimizer state: its random
    generators' states, in the model's order."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


# --- Callback state adapters ------------------------------------------------------------------


@dataclass(frozen=True)
class StateAdapter:
    """How to read and write the resumable state of one callback type.

    A state is a dict whose values are JSON-serialisable, or lists of numpy arrays (saved in
    ``arrays.npz``; a ``None`` stays ``None``).

    Attributes:
        get: Returns the callback's state.
        set: Puts a state returned by ``get`` back into a callback of the same configuration.
    """

    get: Callable[[keras.callbacks.Callback], CallbackState]
    set: Callable[[keras.callbacks.Callback, CallbackState], None]


_ADAPTERS: dict[type, StateAdapter] = {}


def register_state_adapter(callback_type: type, adapter: StateAdapter) -> None:
    """Make :class:`EpochCheckpoint` save and restore callbacks of ``callback_type``.

    Subclasses use the adapter of their nearest registered base class.
    """
    _ADAPTERS[callback_type] = adapter


def _adapter_for(callback: keras.callbacks.Callback) -> StateAdapter | None:
    for klass in type(callback).__mro__:
        if klass in _ADAPTERS:
            return _ADAPTERS[klass]
    return None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _get_early_stopping(callback: keras.callbacks.EarlyStopping) -> CallbackState:
    # getattr: best_epoch only exists once on_train_begin has run.
    return {
        "wait": int(callback.wait),
        "best": _optional_float(getattr(callback, "best", None)),
        "best_epoch": int(getattr(callback, "best_epoch", 0)),
        "stopped_epoch": int(callback.stopped_epoch),
        "best_weights": (
            None
            if callback.best_weights is None
            else [np.asarray(w) for w in callback.best_weights]
        ),
    }


def _set_early_stopping(callback: keras.callbacks.EarlyStopping, state: CallbackState) -> None:
    # monitor_op and the sign of min_delta are not state: EarlyStopping derives them from its
    # configuration at its first epoch end, in a resumed run as in the original one.
    callback.wait = state["wait"]
    callback.best = state["best"]
    callback.best_epoch = state["best_epoch"]
    callback.stopped_epoch = state["stopped_epoch"]
    best_weights = state.get("best_weights")
    callback.best_weights = None if best_weights is None else list(best_weights)


register_state_adapter(
    keras.callbacks.EarlyStopping, StateAdapter(_get_early_stopping, _set_early_stopping)
)
register_state_adapter(
    keras.callbacks.ModelCheckpoint,
    StateAdapter(
        lambda callback: {"best": _optional_float(callback.best)},
        lambda callback, state: setattr(callback, "best", state["best"]),
    ),
)


def _restore_epoch_logger(callback: EpochLogger, state: dict[str, Any]) -> None:
    callback.epoch_seconds = list(state["epoch_seconds"])
    callback.first_step_loss = state.get("first_step_loss")  # absent from older checkpoints


register_state_adapter(
    EpochLogger,
    StateAdapter(
        lambda callback: {
            "epoch_seconds": [float(s) for s in callback.epoch_seconds],
            "first_step_loss": callback.first_step_loss,
        },
        _restore_epoch_logger,
    ),
)
# trainways.callbacks.HalveLearningRate (any LearningRateScheduler) needs no adapter: its
# schedule is a pure function of the epoch index and the current rate, and the rate is one of the
# optimizer variables that every checkpoint holds.


def _tracked(
    callbacks: Iterable[keras.callbacks.Callback],
) -> dict[str, tuple[keras.callbacks.Callback, StateAdapter]]:
    """The callbacks that have an adapter, keyed ``<TypeName>#<n>`` in their order of appearance.

    Keys count per type, so adding or removing stateless callbacks between runs changes nothing.
    """
    tracked: dict[str, tuple[keras.callbacks.Callback, StateAdapter]] = {}
    counts: dict[str, int] = {}
    for callback in callbacks:
        adapter = _adapter_for(callback)
        if adapter is None:
            continue
        name = type(callback).__name__
        tracked[f"{name}#{counts.get(name, 0)}"] = (callback, adapter)
        counts[name] = counts.get(name, 0) + 1
    return tracked


def _callback_states(callbacks: Iterable[keras.callbacks.Callback]) -> dict[str, CallbackState]:
    return {key: adapter.get(callback) for key, (callback, adapter) in _tracked(callbacks).items()}


def _is_array_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value)


# --- Writing ----------------------------------------------------------------------------------


def _checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX only: Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_dir(path: Path) -> None:
    """Delete a directory by first renaming it to a hidden name, so it vanishes atomically."""
    doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{_OLD_PREFIX}{path.name}-"))
    os.replace(path, doomed / path.name)
    _fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def _complete_dirs(checkpoints: Path) -> list[tuple[int, Path]]:
    """``(epoch, directory)`` of every directory named like a checkpoint, newest first."""
    if not checkpoints.is_dir():
        return []
    found = []
    for entry in checkpoints.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, key=lambda item: item[0], reverse=True)


def _prune(checkpoints: Path, newest: int) -> None:
    """Keep the checkpoint just written and the newest ones before it, ``KEEP`` in all.

    Checkpoints of later epochs belong to a run that was resumed from an earlier one: they are
    an abandoned future and would otherwise be mistaken for the latest.
    """
    older = [path for epoch, path in _complete_dirs(checkpoints) if epoch < newest]
    later = [path for epoch, path in _complete_dirs(checkpoints) if epoch > newest]
    for path in later + older[KEEP - 1 :]:
        _remove_dir(path)
    # Leftovers of a crash mid-write or mid-delete: nothing reads them, so free the space.
    for entry in checkpoints.iterdir():
        if entry.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _ensure_built(model: keras.Model) -> keras.optimizers.Optimizer:
    optimizer = model.optimizer
    if optimizer is None:
        raise ValueError("the model has no optimizer: compile it before saving or restoring")
    # With the TensorFlow backend and no distribution strategy, every method (fit included)
    # builds the optimizer lazily, at the first training step; before that it holds only
    # iterations and the learning rate.
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return optimizer


def save_checkpoint(
    run_dir: Path | str,
    model: keras.Model,
    *,
    epoch: int,
    history: Mapping[str, Sequence[float]],
    callbacks: Iterable[keras.callbacks.Callback] = (),
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
) -> Path:
    """Write the checkpoint of ``epoch`` completed epochs atomically, then prune older ones.

    Args:
        run_dir: The run directory; checkpoints go to its ``checkpoints/``.
        model: A compiled model (its optimizer is built first if no step has built it yet).
        epoch: Number of completed epochs (1-based).
        history: Logs of every completed epoch, one list per key.
        callbacks: Callbacks whose state to save; those without a registered adapter are skipped.
        extra_optimizers: Optimizers a user's step applies besides ``model.optimizer``.

    Returns:
        The checkpoint's directory.
    """
    optimizer = _ensure_built(model)
    checkpoints = Path(run_dir) / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = _checkpoint_name(epoch)

    arrays: dict[str, np.ndarray] = {}
    weights = model.get_weights()
    for i, value in enumerate(weights):
        arrays[f"weights.{i:04d}"] = np.asarray(value)
    variables = [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
    for i, value in enumerate(variables):
        arrays[f"optimizer.{i:04d}"] = value
    random_states = [np.asarray(keras.ops.convert_to_numpy(v)) for v in _random_states(model)]
    for i, value in enumerate(random_states):
        arrays[f"random.{i:04d}"] = value
    extras = []
    for k, extra in enumerate(extra_optimizers, start=1):
        values = [np.asarray(keras.ops.convert_to_numpy(v)) for v in extra.variables]
        for i, value in enumerate(values):
            arrays[f"optimizer{k}.{i:04d}"] = value
        extras.append({"class": type(extra).__name__, "variables": len(values)})
    callback_json: dict[str, dict[str, Any]] = {}
    for key, state in _callback_states(callbacks).items():
        values, counts = {}, {}
        for field, value in state.items():
            if _is_array_list(value):
                counts[field] = len(value)
                for i, item in enumerate(value):
                    arrays[f"callbacks.{key}.{field}.{i:04d}"] = np.asarray(item)
            else:
                values[field] = value
        callback_json[key] = {"values": values, "arrays": counts}

    tmp = Path(tempfile.mkdtemp(dir=checkpoints, prefix=f"{_TMP_PREFIX}{name}-"))
    os.chmod(tmp, default_mode(directory=True))
    try:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(tmp / ARRAYS, buffer.getvalue())
        state = {
            "format": FORMAT_VERSION,
            "epoch": epoch,
            "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            "history": {key: [float(v) for v in values] for key, values in history.items()},
            "callbacks": callback_json,
            "optimizer": {"class": type(optimizer).__name__, "variables": len(variables)},
            "extra_optimizers": extras,
            "weights": len(weights),
            "random_states": len(random_states),
            "keras_version": keras.__version__,
            # Hashed from the file as written, so it vouches for the bytes on disk.
            "arrays_sha256": _sha256(tmp / ARRAYS),
        }
        write_atomic(tmp / STATE, json.dumps(state, indent=1) + "\n")
        _fsync_dir(tmp)
        final = checkpoints / name
        if final.exists():
            # Rewriting an epoch after resuming from an earlier checkpoint. A crash between this
            # and the rename below leaves that earlier checkpoint as the latest: still correct.
            _remove_dir(final)
        os.replace(tmp, final)
        _fsync_dir(checkpoints)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(checkpoints, epoch)
    return final


def named_weights(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """``(variable path, value)`` of every model variable, in ``model.weights`` order."""
    return [(v.path, np.asarray(keras.ops.convert_to_numpy(v))) for v in model.weights]


def save_first_epoch_weights(run_dir: Path | str, model: keras.Model) -> Path:
    """Keep the weights after epoch 1 in ``first_epoch.npz``, by variable path.

    The epoch-1 checkpoint is pruned as training goes on; these stay, so a report can say how far
    apart several methods were after one epoch, not only at the end.
    """
    named = named_weights(model)
    arrays = {f"weights.{i:04d}": value for i, (_, value) in enumerate(named)}
    arrays["names"] = np.array([name for name, _ in named], dtype=str)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = Path(run_dir) / rundir.FIRST_EPOCH
    write_atomic(path, buffer.getvalue())
    return path


def first_epoch_weights(run_dir: Path | str) -> list[tuple[str, np.ndarray]] | None:
    """``(variable path, value)`` after epoch 1 (see :func:`save_first_epoch_weights`), or
    ``None`` if the run has not finished an epoch."""
    path = Path(run_dir) / rundir.FIRST_EPOCH
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        names = [str(name) for name in arrays["names"]]
        return [(name, arrays[f"weights.{i:04d}"]) for i, name in enumerate(names)]


# --- Reading ----------------------------------------------------------------------------------


class _Unusable(Exception):
    """A checkpoint failed verification; the message says why, in a few words."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _Unusable(reason)


def _read(path: Path, epoch: int) -> Checkpoint:
    """Load and verify one checkpoint directory.

    Raises:
        _Unusable: Any file is missing, unparsable, inconsistent or fails its checksum.
    """
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _Unusable(f"{STATE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Unusable(f"{STATE} is unreadable: {_one_line(error)}") from None
    _require(isinstance(state, dict), f"{STATE} is not an object")
    _require(
        state.get("format") == FORMAT_VERSION,
        f"{STATE} has format {state.get('format')!r}, expected {FORMAT_VERSION}",
    )
    _require(state.get("epoch") == epoch, f"{STATE} says epoch {state.get('epoch')!r}")
    try:
        n_weights = int(state["weights"])
        n_optimizer = int(state["optimizer"]["variables"])
        optimizer_class = str(state["optimizer"]["class"])
        learning_rate = float(state["learning_rate"])
        history = {str(k): [float(v) for v in vs] for k, vs in state["history"].items()}
        callbacks = {
            str(key): (dict(entry["values"]), {str(f): int(n) for f, n in entry["arrays"].items()})
            for key, entry in state["callbacks"].items()
        }
        expected_sha = str(state["arrays_sha256"])
        # Absent from checkpoints written before user steps existed: none then.
        extra_counts = [
            (str(entry["class"]), int(entry["variables"]))
            for entry in state.get("extra_optimizers", [])
        ]
        # Absent from checkpoints written before models had dropout: none then.
        n_random = int(state.get("random_states", 0))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _Unusable(f"{STATE} lacks a valid field: {_one_line(error)}") from None

    if not (path / ARRAYS).is_file():
        raise _Unusable(f"{ARRAYS} is missing")
    _require(_sha256(path / ARRAYS) == expected_sha, f"{ARRAYS} does not match its sha256")
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _Unusable(f"{ARRAYS} is unreadable: {_one_line(error)}") from None

    def take(prefix: str, count: int) -> tuple[np.ndarray, ...]:
        keys = [f"{prefix}.{i:04d}" for i in range(count)]
        missing = [key for key in keys if key not in arrays]
        _require(not missing, f"{ARRAYS} lacks {', '.join(missing[:3])}")
        return tuple(arrays.pop(key) for key in keys)

    weights = take("weights", n_weights)
    optimizer_variables = take("optimizer", n_optimizer)
    random_states = take("random", n_random)
    extra_optimizers = tuple(
        (name, take(f"optimizer{k}", count))
        for k, (name, count) in enumerate(extra_counts, start=1)
    )
    callback_states: dict[str, CallbackState] = {}
    for key, (values, counts) in callbacks.items():
        callback_states[key] = dict(values)
        for field, count in counts.items():
            callback_states[key][field] = list(take(f"callbacks.{key}.{field}", count))
    _require(not arrays, f"{ARRAYS} has unexpected arrays {', '.join(sorted(arrays)[:3])}")
    return Checkpoint(
        path=path,
        epoch=epoch,
        learning_rate=learning_rate,
        history=history,
        callback_states=callback_states,
        optimizer_class=optimizer_class,
        weights=weights,
        optimizer_variables=optimizer_variables,
        extra_optimizers=extra_optimizers,
        random_states=random_states,
    )


def load_checkpoint(run_dir: Path | str, *, warn: Callable[[str], None]) -> Checkpoint | None:
    """The newest checkpoint of ``run_dir`` that verifies, or ``None`` if there is none.

    Each candidate, newest first, must have a parsable ``state.json``, an ``arrays.npz`` matching
    the sha256 recorded there, and every array it lists. Hidden temporary directories left by a
    crash are never candidates.

    Args:
        run_dir: The run directory.
        warn: Receives one line if any newer checkpoint had to be skipped, naming it, why, and
            what is used instead; it is not called when everything verifies or nothing exists.
    """
    bad: list[str] = []
    found: Checkpoint | None = None
    for epoch, path in _complete_dirs(Path(run_dir) / CHECKPOINTS):
        try:
            found = _read(path, epoch)
            break
        except _Unusable as error:
            bad.append(f"{path} ({error})")
    if bad:
        outcome = (
            f"falling back to the previous one, {found.path.name}"
            if found is not None
            else "no usable checkpoint is left"
        )
        noun = "checkpoint" if len(bad) == 1 else "checkpoints"
        warn(_one_line(f"{noun} {'; '.join(bad)} unusable: {outcome}"))
    return found


def latest_checkpoint(run_dir: Path | str) -> Checkpoint | None:
    """:func:`load_checkpoint`, warning through the ``trainways`` logger."""
    return load_checkpoint(run_dir, warn=LOG.warning)


# --- Restoring --------------------------------------------------------------------------------


def _matching_variables(
    where: str,
    what: str,
    owner: str,
    optimizer: keras.optimizers.Optimizer,
    saved_class: str,
    saved: Any,
) -> list[Any]:
    """``optimizer``'s variables, checked against a checkpoint's saved class and shapes."""
    if type(optimizer).__name__ != saved_class:
        raise ValueError(
            f"checkpoint {where} holds a {saved_class} {what}, the {owner} has "
            f"{type(optimizer).__name__}"
        )
    variables = optimizer.variables
    shapes = [tuple(v.shape) for v in variables]
    saved_shapes = [tuple(a.shape) for a in saved]
    if shapes != saved_shapes:
        if len(shapes) != len(saved_shapes):
            detail = f"{len(saved_shapes)} {what} variables, the {owner}'s {len(shapes)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(saved_shapes, shapes, strict=True)) if a != b)
            detail = f"{what} variable {i} of shape {saved_shapes[i]}, the {owner}'s {shapes[i]}"
        raise ValueError(
            f"checkpoint {where} holds {detail}: is it the same model, data, step and optimizer "
            "configuration?"
        )
    return variables


def restore_model(
    checkpoint: Checkpoint,
    model: keras.Model,
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
) -> None:
    """Put the checkpoint's weights and optimizer variables (learning rate included) into ``model``.

    Builds the optimizer first if no training step has built it yet.

    Args:
        checkpoint: The checkpoint.
        model: The compiled model.
        extra_optimizers: The optimizers a user's step applies besides the model's, built (a
            traced step has built them), in the order they were saved.

    Raises:
        ValueError: The model has no optimizer, or model or optimizers do not match the
            checkpoint.
    """
    optimizer = _ensure_built(model)
    where = checkpoint.path.name
    assignments = list(
        zip(
            _matching_variables(
                where,
                "optimizer",
                "model",
                optimizer,
                checkpoint.optimizer_class,
                checkpoint.optimizer_variables,
            ),
            checkpoint.optimizer_variables,
            strict=True,
        )
    )
    if len(extra_optimizers) != len(checkpoint.extra_optimizers):
        raise ValueError(
            f"checkpoint {where} holds {len(checkpoint.extra_optimizers)} optimizer(s) besides "
            f"the model's, the run's step keeps {len(extra_optimizers)}: resume with the same step"
        )
    for k, (extra, (saved_class, saved)) in enumerate(
        zip(extra_optimizers, checkpoint.extra_optimizers, strict=True), start=1
    ):
        what = f"optimizer {k} of the step"
        variables = _matching_variables(where, what, "step", extra, saved_class, saved)
        assignments += zip(variables, saved, strict=True)
    states = _random_states(model)
    if len(states) != len(checkpoint.random_states):
        raise ValueError(
            f"checkpoint {where} holds {len(checkpoint.random_states)} random generator "
            f"state(s), the model has {len(states)}: resume with the same model"
        )
    assignments += zip(states, checkpoint.random_states, strict=True)
    model.set_weights(list(checkpoint.weights))
    for variable, value in assignments:
        variable.assign(value)


def restore_callbacks(
    checkpoint: Checkpoint, callbacks: Iterable[keras.callbacks.Callback]
) -> None:
    """Put the saved states back into the tracked callbacks (``EarlyStopping`` and registered).

    Call it after the callbacks' ``on_train_begin``: ``EarlyStopping`` resets itself there.

    Raises:
        ValueError: The tracked callbacks differ from those the checkpoint saved.
    """
    tracked = _tracked(callbacks)
    if set(tracked) != set(checkpoint.callback_states):
        raise ValueError(
            f"checkpoint {checkpoint.path.name} saved state for "
            f"[{', '.join(sorted(checkpoint.callback_states))}] but the run has "
            f"[{', '.join(sorted(tracked))}]: resume with the same callbacks"
        )
    for key, (callback, adapter) in tracked.items():
        adapter.set(callback, checkpoint.callback_states[key])


def restore(
    checkpoint: Checkpoint,
    model: keras.Model,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
) -> None:
    """Restore weights, optimizer variables, learning rate and callback states, right now.

    Within a training run, use ``EpochCheckpoint(restore_from=...)`` instead: it calls this at
    the right moment, after the trainer has attached the optimizer and after ``EarlyStopping``
    has reset itself in ``on_train_begin``.
    """
    restore_model(checkpoint, model, extra_optimizers)
    restore_callbacks(checkpoint, callbacks)


# --- The callback -----------------------------------------------------------------------------


def _state_fingerprint(callbacks: Iterable[keras.callbacks.Callback]) -> str:
    """A comparable rendering of the tracked callbacks' states (arrays by identity)."""
    return json.dumps(_callback_states(callbacks), sort_keys=True, default=id)


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoint every finished epoch into ``<run_dir>/checkpoints/``; optionally resume first.

    It must come after every callback in ``callbacks`` in the list given to the trainer (append
    it last): at an epoch's end it saves their state, which they update in their own
    ``on_epoch_end``; when resuming it restores their state after they reset it in
    ``on_train_begin``. A resumed run that breaks this order fails at its first epoch.

    Args:
        run_dir: The run directory.
        callbacks: The run's other callbacks; the state of those with a registered adapter
            (``EarlyStopping``) is saved and restored, the rest are ignored.
        restore_from: A checkpoint to resume from. At ``on_train_begin`` it restores the weights,
            the optimizer (building it if needed) and the callback states; the trainer must start
            at ``initial_epoch=restore_from.epoch``.
        initial_history: Logs of the epochs before this run; defaults to ``restore_from.history``.
        extra_optimizers: Optimizers a user's step applies besides the model's
            (:func:`trainways.steps.keeps`); saved and restored with it.
    """

    def __init__(
        self,
        run_dir: Path | str,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        *,
        restore_from: Checkpoint | None = None,
        initial_history: Mapping[str, Sequence[float]] | None = None,
        extra_optimizers: Sequence[keras.optimizers.Optimizer] = (),
    ) -> None:
        super().__init__()
        self._extra_optimizers = tuple(extra_optimizers)
        self.run_dir = Path(run_dir)
        self._callbacks = list(callbacks)
        self._restore_from = restore_from
        if initial_history is None and restore_from is not None:
            initial_history = restore_from.history
        self._history: History = {
            key: [float(v) for v in values] for key, values in (initial_history or {}).items()
        }
        # Set between restoring and the first epoch, which checks that the restore stuck.
        self._restored_fingerprint: str | None = None
        self.last_saved: Path | None = None

    @property
    def history(self) -> History:
        """Every epoch's logs so far, the initial history included."""
        return copy.deepcopy(self._history)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._restore_from is None:
            return
        restore(self._restore_from, self.model, self._callbacks, self._extra_optimizers)
        self._restored_fingerprint = _state_fingerprint(self._callbacks)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        checkpoint = self._restore_from
        if checkpoint is None or self._restored_fingerprint is None:
            return
        if epoch != checkpoint.epoch:
            raise ValueError(
                f"resuming from {checkpoint.path.name} needs initial_epoch={checkpoint.epoch}, "
                f"but training started at epoch {epoch}"
            )
        if _state_fingerprint(self._callbacks) != self._restored_fingerprint:
            raise RuntimeError(
                "a callback reset its restored state after EpochCheckpoint.on_train_begin: "
                "put EpochCheckpoint after the callbacks it tracks"
            )
        # Restore once: a second training call with this callback continues, it does not rewind.
        self._restore_from = None
        self._restored_fingerprint = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        if epoch == 0:
            save_first_epoch_weights(self.run_dir, self.model)
        self.last_saved = save_checkpoint(
            self.run_dir,
            self.model,
            epoch=epoch + 1,
            history=self._history,
            callbacks=self._callbacks,
            extra_optimizers=self._extra_optimizers,
        )
