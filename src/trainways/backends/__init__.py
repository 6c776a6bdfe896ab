"""One folder per Keras backend: what training needs that only that backend can do.

Shared code never asks which backend runs (no ``if backend == ...``). The run layer asks
:func:`current` once for the backend's module and passes it down: to
:func:`trainways.trainers.get_trainer`, :func:`trainways.steps.check_step` (its
``STEP_ARGUMENTS``), :func:`trainways.model.build_optimizer`. Nothing below the run looks the
backend up. Every backend offers the names of :data:`INTERFACE` (what each is, written there
once), in the same files: :data:`FILES`, where :data:`LAZY` says which file holds which lazily
loaded name. Code two backends would share lives once, in :mod:`trainways.backends.common`
(``tests/test_backend_interface.py`` checks both: every name there, no code copied).

Adding a backend adds a sibling folder with these files and names. Each keeps its ``__init__``
free of Keras and of its framework (:func:`load_lazily`), so that :func:`select` can import its
``environment`` first: PyTorch and JAX read their device settings when they are imported.
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

#: The names every backend module offers, and what each is: the one statement of the interface.
INTERFACE: Mapping[str, str] = {
    "prepare": "prepare(model, data) -> Placement: the strategy the model was built under (None "
    "for one device), the one build before training, the work-arounds a strategy needs",
    "Placement": "where the steps run: distribute(data) splits batches over replicas, "
    "gather(y) joins a distributed batch, spans_workers says "
    "whether it spans processes",
    "LoopStepper": "the loop method's step (a hand-written gradient update, compiled): "
    "LoopStepper(model, spec, element_spec, placement), a trainers.base.Stepper",
    "compile_step": "compile_step(fn, model, placement, element_spec): a user's step for "
    "trainways.Loop, compiled, per replica under the placement's strategy",
    "XlaNadam": "Nadam with its update compiled as one function (--xla-optimizer), or a refusal",
    "DenseNadam": "Nadam that applies every gradient dense (--dense-gradients)",
    "enable_determinism": "enable_determinism(): deterministic kernels (--deterministic)",
    "check_training": "check_training(jit_compile, steps_per_execution): refuses speed options "
    "the backend has no use for (--xla on PyTorch)",
    "jit_compile": "jit_compile(requested): the jit_compile Keras gets for --xla",
    "auto_steps_per_execution": "auto_steps_per_execution(model): what --steps-per-execution "
    "auto means there",
    "STEP_ARGUMENTS": "a user's step function's arguments (trainways.steps.check_step)",
    "is_cluster_failure": "is_cluster_failure(error): whether error means a peer of a "
    "multi-worker job was lost",
    "devices": "the module of devices and strategies: make_strategy(config), is_chief(config), "
    "probe()",
    "environment": "the module whose environment(config) gives the variables to set before Keras "
    "is imported (it imports neither Keras nor the backend's package)",
}

#: Which file of a backend's folder holds each name its ``__init__`` loads lazily (importing the
#: file imports Keras and the framework).
LAZY: Mapping[str, str] = {
    "prepare": "placement",
    "Placement": "placement",
    "is_cluster_failure": "placement",
    "LoopStepper": "loop",
    "compile_step": "own_loop",
    "XlaNadam": "optimizers",
    "DenseNadam": "optimizers",
}

#: The files of every backend's folder.
FILES = (
    "__init__.py",
    "devices.py",
    "environment.py",
    "loop.py",
    "optimizers.py",
    "own_loop.py",
    "placement.py",
)


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

    return named(keras.backend.backend())


def named(name: str) -> ModuleType:
    """The module of backend ``name``, whichever backend this process runs: importing it imports
    neither Keras nor the framework (its names that need them load when first used), so a
    process can read another backend's plain settings, such as ``STEP_ARGUMENTS``.

    Raises:
        ConfigError: trainways has no support for that backend.
    """
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise ConfigError(
            f"the Keras backend {name!r} is not supported yet: use backend {', '.join(SUPPORTED)}",
            keys=("backend",),
        ) from None


def load_lazily(package: str, names: Mapping[str, str] = LAZY) -> Callable[[str], Any]:
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
