"""Devices on JAX: one device for now; a request for several is refused."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from trainways.config import ConfigError, DeviceConfig


class _OneDevice:
    """Stands where a ``tf.distribute`` strategy stands: its scope changes nothing."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass(frozen=True)
class Devices:
    """What training runs on (see the TensorFlow backend's ``Devices``)."""

    strategy: Any
    description: str
    replicas: int = 1
    is_chief: bool = True


def make_strategy(config: DeviceConfig) -> Devices:
    """One JAX device: the first GPU if there is one (and ``cpu`` is off), else the CPU.

    Raises:
        ConfigError: A strategy other than ``default`` (not supported on JAX yet).
    """
    import jax

    if config.strategy != "default":
        raise ConfigError(
            f"strategy {config.strategy} is not supported on the JAX backend yet: use "
            "strategy default, or backend tensorflow",
            keys=("strategy", "backend"),
        )
    device = jax.devices()[0]
    return Devices(_OneDevice(), f"{device.platform.upper()} ({device}, JAX {jax.__version__})")


def is_chief(config: DeviceConfig) -> bool:
    return True


def probe() -> None:
    """List JAX's devices, and start TensorFlow, whose ``tf.data`` makes the batches for now:
    the start-up messages of both come here."""
    import jax
    import tensorflow as tf

    jax.devices()
    tf.config.list_physical_devices("GPU")  # TensorFlow's CUDA probe, and what it prints
