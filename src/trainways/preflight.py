"""The one pre-flight: everything a run's configuration is checked against before any file is
written.

``trainways train``, ``--resume``, ``agree`` and ``compare`` all start with :func:`preflight`:
the data loaded and checked (it is Keras's dataset, or the run's own; or the user's data
function called, ``--data FILE.py:FUNCTION``), the devices set up, and the model built once on
a throwaway (its shape, the optimizer and compiler settings the backend may refuse, a user's
step traced; the user's model set up on the user's data as every method sets it up), so that
bad input is one line and no run directory.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import keras

from trainways.backends import current
from trainways.config import ConfigError, DataConfig, RunConfig, is_code_ref
from trainways.steps import describe_error
from trainways.training import (
    build_model_for,
    build_optimizer_for,
    build_training,
    load_run_data,
    refuse_compile_options,
)
from trainways.user_data import UserData


@dataclass(frozen=True)
class Prepared:
    """A configuration that passed the pre-flight, and what it loaded.

    Attributes:
        config: The configuration, seed drawn, backend and data fingerprint recorded.
        reuters: The loaded data: the Reuters data, or the user's
            (:class:`~trainways.user_data.UserData`).
        devices: The devices and strategy (the backend's ``devices.make_strategy``), or ``None``
            where the command trains in child processes that set up their own.
        backend: The module of the backend this process runs on
            (:func:`trainways.backends.current`, looked up here once and passed down).
    """

    config: RunConfig
    reuters: Any
    devices: Any | None
    backend: ModuleType


def preflight(config: RunConfig, *, devices: bool = True, resuming: Path | None = None) -> Prepared:
    """Check ``config`` against its data, devices and model before any file is written.

    Args:
        config: The configuration; a missing seed is drawn, the running backend recorded.
        devices: Set the devices up (a command whose children train leaves them to them).
        resuming: The run directory of a run being resumed: its configuration is taken as it
            was recorded, the data must be the run's own, and only a user's step (whose file
            may have changed) is traced again.

    Raises:
        ConfigError, DataError: What is wrong, in one line.
    """
    backend = current()
    if resuming is None:
        config = with_backend(with_seed(config))
    # A bad --data fails before any run directory exists.
    reuters = load_run_data(config.data)
    if resuming is None:
        check(config, reuters)
        config = with_fingerprint(config, reuters)
    else:
        check_run_data(config, reuters, resuming)
    made = backend.devices.make_strategy(config.device) if devices else None
    if resuming is None:
        check_model(config, reuters, made, backend)
    elif config.train.step or config.train.test_step:
        check_steps(config, reuters, made, backend)
    return Prepared(config, reuters, made, backend)


def load_data(config: DataConfig) -> Any:
    """The Reuters data a configuration asks for (:func:`trainways.data.load_reuters`); a
    command that reads Reuters only (``evaluate``, ``baseline``) loads it with this."""
    from trainways.data import load_reuters

    return load_reuters(config.source, num_words=config.num_words, skip_top=config.skip_top)


def check(config: RunConfig, reuters: Any) -> None:
    """Settings that depend on the data, checked before any file is written.

    Raises:
        DataError: The data is not the Keras Reuters dataset and ``allow_other_data`` (or
            ``$TRAINWAYS_ALLOW_OTHER_DATA``) does not say that is intended; or the validation
            split holds no wire out.
    """
    from trainways.data import check_identity, held_out_wires

    if isinstance(reuters, UserData):
        return  # the user's data: nothing to hold it to

    check_identity(
        reuters.fingerprint,
        config.data.source or reuters.source,
        allow_other=config.data.allow_other_data,
    )
    held_out_wires(len(reuters.y_train), config.data.validation_split)


def check_step_signatures(config: RunConfig, backends: Sequence[str]) -> None:
    """Refuse a user's step that cannot run on one of ``backends`` (``compare --backends``: a
    step for TensorFlow is not JAX's), before any of them trains.

    Raises:
        ConfigError: The step's arguments are not those of one of the backends.
    """
    from trainways.backends import named
    from trainways.steps import load_step

    for role in ("step", "test_step"):
        ref = getattr(config.train, role)
        for name in backends if ref else ():
            load_step(ref, role=role, arguments=named(name).STEP_ARGUMENTS, backend=name)


def check_run_data(config: RunConfig, reuters: Any, run_dir: Path) -> None:
    """Refuse data other than the data the run in ``run_dir`` was trained on.

    A run made before runs recorded their data's fingerprint is accepted if the data is the
    Keras dataset, or other data is allowed (as in :func:`check`).

    Raises:
        DataError: The data's fingerprint differs from the one in the run's ``config.json``.
    """
    from trainways.data import check_identity, check_same_data

    if isinstance(reuters, UserData):
        return  # what a function returns has no fingerprint to check (docs/data.md)

    source = config.data.source or reuters.source
    if config.data.fingerprint is None:
        check_identity(reuters.fingerprint, source, allow_other=config.data.allow_other_data)
    check_same_data(reuters.fingerprint, config.data.fingerprint, source, str(run_dir))


def _scope(devices: Any) -> contextlib.AbstractContextManager[Any]:
    return devices.strategy.scope() if devices is not None else contextlib.nullcontext()


def check_model(config: RunConfig, reuters: Any, devices: Any, backend: ModuleType) -> None:
    """Build the model once to see that it takes the data's shape, before any file is written.

    Raises:
        ConfigError: The preset is unknown, or cannot take sequences of ``max_len`` ids (the
            tutorial CNN's pooling leaves nothing of fewer than 12), or does not output one
            probability per topic; or the user's model does not build, or cannot be set up
            on the user's data.
    """
    if isinstance(reuters, UserData):
        _check_user_model(config, reuters, devices, backend)
        return
    try:
        with _scope(devices):
            model = build_model_for(config, reuters)
    except ConfigError:
        raise
    except Exception as error:  # Keras says it in a page of text; the first line is the point
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if is_code_ref(config.model.preset):
            raise ConfigError(
                f"model {config.model.preset!r} failed: {type(error).__name__}: {first}",
                keys=("preset",),
            ) from None
        raise ConfigError(
            f"model {config.model.preset!r} cannot take sequences of max_len "
            f"{config.data.max_len} ({first}): choose a larger max_len",
            keys=("max_len", "preset"),
        ) from None
    if getattr(model, "compiled", False):  # its compile() wins: a conflicting option is refused
        refuse_compile_options(config.train, config.model.preset)
    shape = _output_shape(model, config.data.max_len)
    if shape != (None, reuters.num_classes):
        raise ConfigError(
            f"model {config.model.preset!r} outputs shape {shape}, not one "
            f"probability per topic (None, {reuters.num_classes})",
            keys=("preset",),
        )
    with _scope(devices):
        _check_probabilities(config, model)
    # The backend may refuse an optimizer or compiler setting (xla_optimizer on JAX, xla on
    # PyTorch).
    with _scope(devices):
        build_optimizer_for(config.train, backend)
    backend.check_training(config.train.jit_compile, config.train.steps_per_execution)
    if config.train.step or config.train.test_step:
        check_steps(config, reuters, devices, backend)
    # Forget the throwaway models' layer names: the run's model is then named the same whatever
    # was checked (variable paths are compared between runs, and a --step checks one more).
    keras.backend.clear_session()


#: How far a row of outputs may be from a probability distribution (float16 rounding included).
PROBABILITY_TOLERANCE = 1e-2


def _check_probabilities(config: RunConfig, model: keras.Model) -> None:
    """Refuse a model whose outputs are not probabilities (a builder without its softmax): the
    loss and ``predict`` take them as such, and would train on and print nonsense."""
    import numpy as np

    zeros = keras.ops.zeros((2, config.data.max_len), dtype="int32")
    rows = np.asarray(keras.ops.convert_to_numpy(model(zeros, training=False)), dtype="float64")
    sums = rows.sum(axis=-1)
    total, least = float(sums[np.argmax(np.abs(sums - 1.0))]), float(rows.min())
    if (
        not np.isfinite(rows).all()
        or least < -PROBABILITY_TOLERANCE
        or abs(total - 1.0) > (PROBABILITY_TOLERANCE)
    ):
        raise ConfigError(
            f"model {config.model.preset!r} does not output probabilities (on a batch of "
            f"zeros a row sums to {total:.4g}, its least value is {least:.4g}): end it with "
            "keras.layers.Dense(num_classes, activation='softmax')",
            keys=("preset",),
        )


def _output_shape(model: keras.Model, max_len: int) -> tuple[int | None, ...]:
    """The model's output shape, batch dimension ``None``; a subclassed model (a user's) may
    know it only once called."""
    try:
        return tuple(model.output_shape)
    except (AttributeError, ValueError):
        shape = keras.ops.shape(model(keras.ops.zeros((1, max_len), dtype="int32")))
        return (None, *(int(n) for n in shape[1:]))


def _check_user_model(config: RunConfig, data: UserData, devices: Any, backend: ModuleType) -> None:
    """:func:`check_model` for the user's data: the model built and set up on the data as every
    method sets it up (compiled unless its builder compiled it, built on a batch shaped as the
    data's, the optimizer built), on a throwaway."""
    from trainways.data import DataError
    from trainways.trainers import prepare

    preset, source = config.model.preset, config.data.source
    with _scope(devices):
        try:
            training = build_training(config, data, backend=backend)
        except (ConfigError, DataError):
            raise
        except Exception as error:  # the user's builder: its error in one line
            raise ConfigError(
                f"model {preset!r} failed: {describe_error(error)}", keys=("preset",)
            ) from None
        try:
            prepare(training.model, training.data, training.spec, backend)
        except (ConfigError, DataError):
            raise
        except Exception as error:
            raise ConfigError(
                f"model {preset!r} does not take the data of {source!r}: {describe_error(error)}",
                keys=("preset", "source"),
            ) from None
    if config.train.step or config.train.test_step:
        check_steps(config, data, devices, backend)
    keras.backend.clear_session()  # as check_model: the throwaway's names are forgotten


def check_steps(config: RunConfig, reuters: Any, devices: Any, backend: ModuleType) -> None:
    """Load the user's step functions and trace them once on a throwaway model, so that a broken
    step (a missing file or function, a wrong signature, logs without a loss) is refused before
    any file is written.

    Raises:
        ConfigError: What is wrong with the step, in one line.
    """
    from trainways.trainers import loop, prepare

    with _scope(devices):
        training = build_training(config, reuters, backend=backend)
        loop.make_stepper(prepare(training.model, training.data, training.spec, backend)).check(
            training.data
        )
    keras.backend.clear_session()  # as check_model: the throwaway's names are forgotten


def with_fingerprint(config: RunConfig, reuters: Any) -> RunConfig:
    """``config`` with the loaded data's fingerprint recorded (``config.json`` keeps it; the
    user's data has none)."""
    fingerprint = getattr(reuters, "fingerprint", None)
    found = fingerprint.to_dict() if fingerprint is not None else None
    return replace(config, data=replace(config.data, fingerprint=found))


def with_backend(config: RunConfig) -> RunConfig:
    """``config`` with the Keras backend this process runs on recorded (``config.json`` keeps
    it, so that ``--resume`` and ``compare``'s children use the same)."""
    return replace(config, device=replace(config.device, backend=keras.backend.backend()))


def with_seed(config: RunConfig) -> RunConfig:
    """``config`` with a random seed drawn if it has none (the run records it)."""
    if config.train.seed is not None:
        return config
    return replace(config, train=replace(config.train, seed=secrets.randbelow(2**31)))
