"""User code inside training: a model's own step, a step function, and loading them from files.

trainways gives three levels of control (``docs/custom-steps.md``); this module holds what the
first two share and check, whatever the backend:

1. **The model's own step.** A model whose class overrides ``train_step`` / ``test_step``
   (Keras's "customizing what happens in ``fit()``") runs that step in every method: ``fit`` and
   ``train_on_batch`` call it natively, the ``loop`` method calls it instead of its built-in step
   (:func:`has_own_step`). Its logs are Keras's: the results of ``model.metrics``.
2. **A step function** for the ``loop`` method: ``step(model, x, y) -> logs``, a forward pass,
   gradients and an optimizer update as the tutorial wrote them. trainways compiles it (one graph
   for every batch size), runs it per replica under a strategy, and drives everything around it.
3. **The user's own loop** (:class:`trainways.Loop`) takes the same logs.

The logs contract (levels 2 and 3) is the smallest that makes epoch means right. A step returns a
dict; ``"loss"`` is required: the batch's mean loss, as a Keras loss object returns it (under a
``tf.distribute`` strategy Keras divides it by the number of replicas, so that the summed
gradients are the global batch's; trainways logs it undivided, as Keras's own ``train_step``
does). Every other scalar is logged as its epoch mean, weighted by batch size. ``"y_pred"``, if
returned, is the batch's predictions: it updates the run's metrics (accuracy, top-5) and is not
logged itself.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from trainways.config import ConfigError

LOSS = "loss"
PREDICTIONS = "y_pred"

StepFn = Callable[[keras.Model, Any, Any], Mapping[str, Any]]

# What a model builder given as FILE.py:FUNCTION may ask for, by parameter name.
BUILDER_ARGUMENTS = ("vocab_size", "num_classes", "max_len", "embedding_dim", "dropout")


def has_own_step(model: keras.Model) -> bool:
    """Whether the model's class overrides Keras's ``train_step`` or ``test_step``."""
    return any(
        getattr(type(model), name) is not getattr(keras.Model, name)
        for name in ("train_step", "test_step")
    )


def split_code_ref(text: str) -> tuple[Path, str]:
    """``FILE.py:FUNCTION`` as (file, function name)."""
    path, _, name = text.rpartition(":")
    return Path(path), name


def _import_file(path: Path, ref: str, role: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{role} {ref!r}: no file {path}: give FILE.py:FUNCTION", keys=(role,))
    # One module per file, under a stable name: Keras finds classes the file defines (a model
    # with its own train_step) by their module when it saves and loads them.
    name = f"trainways_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{role} {ref!r}: importing {path} failed: {type(error).__name__}: {first}",
            keys=(role,),
        ) from None
    return module


def load_function(ref: str, *, role: str) -> Callable[..., Any]:
    """The function ``FILE.py:FUNCTION`` names, its file imported afresh.

    Args:
        ref: ``FILE.py:FUNCTION``.
        role: The configuration field it came from (``step``, ``test_step``, ``preset``): errors
            name it, and the CLI its flag.

    Raises:
        ConfigError: No such file, the file fails to import, or it has no such function.
    """
    path, name = split_code_ref(ref)
    module = _import_file(path, ref, role)
    function = getattr(module, name, None)
    if not callable(function):
        defined = sorted(
            attr
            for attr, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__
        )
        found = f"it defines {', '.join(defined)}" if defined else "it defines no function"
        raise ConfigError(f"{role} {ref!r}: no function {name!r} in {path} ({found})", keys=(role,))
    return function


def describe_error(error: BaseException) -> str:
    """``Type: first line`` of an error the user's code raised: what a one-line refusal quotes."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{type(error).__name__}: {first}"


def _python_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    # A step the user already wrapped in tf.function: check the function it wraps.
    return getattr(fn, "python_function", fn)


def check_step(
    fn: Callable[..., Any],
    *,
    role: str = "step",
    arguments: Sequence[str],
    backend: str | None = None,
) -> None:
    """Refuse a step function that cannot be called as the backend's steps are.

    Args:
        fn: The step function.
        role: ``step`` or ``test_step``, named in errors.
        arguments: The backend's ``STEP_ARGUMENTS``: ``(model, x, y)`` on TensorFlow and
            PyTorch, ``(model, state, x, y)`` on JAX.
        backend: The backend's name, for the message (default: the one Keras runs on).

    Raises:
        ConfigError: It is not callable or takes other arguments.
    """
    wanted = f"({', '.join(arguments)})"
    if not callable(fn):
        raise ConfigError(f"{role} must be a function step{wanted}, got {fn!r}", keys=(role,))
    try:
        signature = inspect.signature(_python_function(fn))
    except (TypeError, ValueError):  # no signature to read (a builtin): let the first call tell
        return
    try:
        signature.bind(*[None] * len(arguments))
    except TypeError:
        raise ConfigError(
            f"{role} {_name(fn)}{signature} must take {wanted} on the "
            f"{backend or keras.backend.backend()} backend (docs/custom-steps.md)",
            keys=(role,),
        ) from None


def load_step(
    ref: str, *, role: str = "step", arguments: Sequence[str], backend: str | None = None
) -> StepFn:
    """Load and check the step function ``FILE.py:FUNCTION`` (see :func:`load_function`), which
    must take ``arguments`` on ``backend`` (see :func:`check_step`)."""
    fn = load_function(ref, role=role)
    check_step(fn, role=role, arguments=arguments, backend=backend)
    return fn


def check_logs(logs: Any, *, role: str, source: Any, who: str | None = None) -> dict[str, Any]:
    """The logs a step returned, checked against the contract (module docstring).

    Called while the step is traced, so a broken step fails before it trains anything.

    Args:
        logs: What the step returned.
        role: ``step`` or ``test_step``.
        source: The step, named in errors.
        who: What errors say returned the logs (default: ``role`` and the step's name).

    Raises:
        ConfigError: ``logs`` is not a dict, has no ``"loss"``, or a value other than
            ``"y_pred"`` is not a scalar.
    """
    name = who or f"{role} {_name(source)}"
    if not isinstance(logs, Mapping):
        raise ConfigError(
            f"{name} returned {type(logs).__name__}, not a dict of logs: return "
            "{'loss': loss, 'y_pred': y_pred}",
            keys=(role,),
        )
    if LOSS not in logs:
        raise ConfigError(
            f"{name} returned no loss (keys: {', '.join(map(str, logs)) or 'none'}): "
            "return {'loss': loss, ...}",
            keys=(role,),
        )
    for key, value in logs.items():
        if key == PREDICTIONS:
            continue
        shape = getattr(value, "shape", ())
        if len(shape) != 0:
            raise ConfigError(
                f"{name} returned {key!r} of shape {tuple(shape)}: logs other than "
                f"{PREDICTIONS!r} must be scalars (the batch's mean)",
                keys=(role,),
            )
    return dict(logs)


def check_own_step_logs(logs: Any, metric_names: list[str], *, role: str) -> None:
    """Refuse logs of a model's own step that trainways cannot average over an epoch.

    Keras's convention: a ``train_step`` returns the results of ``model.metrics``, running means
    that the epoch ends with. A value that is not one of them would be the last batch's, logged
    as if it were the epoch's.

    Raises:
        ConfigError: ``logs`` names something that is not one of ``model.metrics``.
    """
    if not isinstance(logs, Mapping):
        return
    stray = [key for key in logs if key not in metric_names]
    if stray:
        raise ConfigError(
            f"the model's {role} returned {', '.join(map(repr, stray))}, not one of its metrics "
            f"({', '.join(metric_names)}): track each value in a keras.metrics.Mean in "
            "model.metrics and return their results, as Keras's guide does",
            keys=(role,),
        )


def build_from_function(builder: Callable[..., keras.Model], ref: str, **available: Any) -> Any:
    """Call a model builder with the arguments it names, of those ``available`` (with the
    Reuters data, :data:`BUILDER_ARGUMENTS`; with the user's own, ``embedding_dim`` and
    ``dropout``).

    Raises:
        ConfigError: The builder asks for something else, or returns no Keras model.
    """
    signature = inspect.signature(builder)
    wanted = {}
    for parameter in signature.parameters.values():
        if parameter.name in available:
            wanted[parameter.name] = available[parameter.name]
        elif parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise ConfigError(
                f"model {ref!r}: parameter {parameter.name!r} of {_name(builder)}{signature} is "
                f"not one trainways gives: a builder may ask for {', '.join(available)}"
                + _for_own_data(parameter.name),
                keys=("preset",),
            )
    if available.get("dropout") is not None and "dropout" not in wanted:
        raise ConfigError(
            f"model {ref!r}: dropout {available['dropout']!r} was given but "
            f"{_name(builder)}{signature} takes no dropout parameter: add one, or leave "
            "--dropout out",
            keys=("dropout",),
        )
    model = builder(**wanted)
    if not isinstance(model, keras.Model):
        raise ConfigError(
            f"model {ref!r} returned {type(model).__name__}, not a keras.Model", keys=("preset",)
        )
    return model


def _for_own_data(name: str) -> str:
    """Why a Reuters argument is not given: the data is the user's own."""
    if name not in BUILDER_ARGUMENTS:
        return ""
    return " (vocab_size, num_classes and max_len describe the Reuters data, not yours)"


def keeps(*optimizers: keras.optimizers.Optimizer) -> Callable[[StepFn], StepFn]:
    """Declare the optimizers a step applies besides ``model.optimizer``.

    Their state is then checkpointed with the run's, and a resumed run continues it exactly::

        embedding_optimizer = keras.optimizers.Nadam(learning_rate=1e-2)

        @keeps(embedding_optimizer)
        def train_step(model, x, y): ...
    """
    for optimizer in optimizers:
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"keeps() takes Keras optimizers, got {optimizer!r}")

    def decorate(step: StepFn) -> StepFn:
        step.trainways_optimizers = tuple(optimizers)
        return step

    return decorate


def extra_optimizers(*steps: StepFn | None) -> tuple[keras.optimizers.Optimizer, ...]:
    """The optimizers ``steps`` declared with :func:`keeps`, each once, in order."""
    found: list[keras.optimizers.Optimizer] = []
    for step in steps:
        for optimizer in getattr(step, "trainways_optimizers", ()):
            if not any(optimizer is seen for seen in found):
                found.append(optimizer)
    return tuple(found)


def _name(fn: Any) -> str:
    return getattr(_python_function(fn), "__name__", repr(fn))
