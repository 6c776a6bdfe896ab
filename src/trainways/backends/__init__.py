"""One folder per Keras backend: what training needs that only that backend can do.

Shared code never asks which backend runs (no ``if backend == ...``): it asks :func:`current`
for the backend's module, and each module offers the same names:

=========================  =========================================================================
``prepare(model, data)``   a :class:`Placement`-like object: the strategy the model was built under
                           (``None`` for one device), the one build before training, the
                           work-arounds a strategy needs; ``distribute(data)`` splits batches over
                           replicas, ``batch_size(y)`` counts a (distributed) batch
``LoopStepper``            the ``loop`` method's step (a hand-written gradient update, compiled)
``compile_step(fn, m, p)`` a user's step for :class:`trainways.Loop` on model ``m``, compiled, per
                           replica under ``p``'s strategy; ``p.gather(y)`` joins a distributed
                           batch, ``p.spans_workers`` says whether it spans processes
``XlaNadam``               Nadam with its update compiled as one function (``--xla-optimizer``)
``enable_determinism()``   deterministic kernels (``--deterministic``)
``check_training(...)``    refuses speed options the backend has no use for (``--xla`` on PyTorch)
``jit_compile(requested)`` the ``jit_compile`` Keras gets for ``--xla`` (always on for JAX)
``STEP_ARGUMENTS``         a user's step function's arguments (:func:`trainways.steps.check_step`)
``is_cluster_failure(e)``  whether ``e`` means a peer of a multi-worker job was lost
``devices``                devices and strategies: ``make_strategy(config)``, ``is_chief(config)``
``environment``            ``environment(config)``: the variables to set before Keras is imported
                           (a module that imports neither Keras nor the backend's package)
=========================  =========================================================================

and ``auto_steps_per_execution(model)``, what ``--steps-per-execution auto`` means there.

Adding a backend adds a sibling folder with these names. Each keeps its ``__init__`` free of Keras
and of its framework (:func:`load_lazily`), so that :func:`select` can import its ``environment``
first: PyTorch and JAX read their device settings when they are imported.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from trainways.config import ConfigError, DeviceConfig

# The backends trainways runs on, each a sibling folder here.
SUPPORTED = ("tensorflow", "jax", "torch")

# How to install a backend's package.
INSTALL = {"jax": "pip install -e '.[jax]'", "torch": "pip install -e '.[torch]'"}


def select(name: str | None, device: DeviceConfig | None = None) -> str:
    """Make ``name`` (default: ``$KERAS_BACKEND``, else ``tensorflow``) this process's Keras
    backend; call it before Keras is imported. Returns the backend chosen.

    Args:
        name: The backend.
        device: The device options; the backend's ``environment`` turns them into the variables
            its package reads when it starts (set here, before Keras imports it).

    Raises:
        ConfigError: Keras already runs on another backend in this process, the backend's
            package is not installed (the message gives the install command), or the device
            options ask for what the backend cannot do.
    """
    import importlib.util
    import os
    import sys

    name = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if importlib.util.find_spec(name) is None:
        install = INSTALL.get(name, f"pip install {name}")
        raise ConfigError(f"backend {name} is not installed: {install}", keys=("backend",))
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != name:
            raise ConfigError(
                f"backend {name}: Keras already runs on {running} in this process; start a new "
                f"one with KERAS_BACKEND={name}",
                keys=("backend",),
            )
        return name
    os.environ["KERAS_BACKEND"] = name
    if device is not None and name in SUPPORTED:
        environment = importlib.import_module(f"{__name__}.{name}.environment")
        os.environ.update(environment.environment(device))
    return name


def current() -> ModuleType:
    """The module of the Keras backend this process runs on.

    Raises:
        ConfigError: trainways has no support for that backend yet.
    """
    import keras

    name = keras.backend.backend()
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise ConfigError(
            f"the Keras backend {name!r} is not supported yet: use backend {', '.join(SUPPORTED)}",
            keys=("backend",),
        ) from None


def load_lazily(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package``'s submodule ``names[name]`` when
    ``name`` is first used, so that importing the package itself imports no Keras."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__


class OneDevice:
    """Stands where a ``tf.distribute`` strategy stands, for one device: its scope changes
    nothing."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass(frozen=True)
class Devices:
    """What training runs on (the JAX and PyTorch backends'; see the TensorFlow backend's).

    Attributes:
        strategy: A :class:`OneDevice`, or the backend's stand-in for a distribution.
        description: One line for the log.
        replicas: Replicas the global batch is split over.
        is_chief: Whether this process writes the run directory.
    """

    strategy: Any
    description: str
    replicas: int = 1
    is_chief: bool = True
