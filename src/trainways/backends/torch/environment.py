"""What PyTorch must be told before Keras imports it: the device.

Keras's PyTorch backend picks its device once, when it is imported: ``KERAS_TORCH_DEVICE`` if set,
else the first GPU, else the CPU. :func:`plan_environment` turns ``--gpu N`` / ``--cpu`` into that
variable, and :func:`trainways.backends.select` sets it before Keras is imported. The planning is
pure Python, so it is tested without a GPU.
"""

from __future__ import annotations

from trainways.config import ConfigError, DeviceConfig


def plan_environment(config: DeviceConfig, gpu_count: int) -> dict[str, str]:
    """The environment that puts Keras's PyTorch backend on the device ``config`` asks for.

    ``--cpu``: the CPU; ``--gpu N``: ``cuda:N``; neither: the first GPU. A machine without GPUs
    trains on the CPU even when ``--gpu`` was given, as on every backend, so that one command
    works on a laptop and on a GPU server. PyTorch's caching allocator takes GPU memory as it
    needs it, which is what TensorFlow's memory growth gives: there is nothing to switch on.

    Args:
        config: The device options.
        gpu_count: How many GPUs PyTorch sees.

    Raises:
        ConfigError: A strategy other than ``default`` (a multi-device PyTorch run is not
            supported yet), a GPU memory cap, or ``--gpu`` naming a GPU that does not exist.
    """
    if config.strategy != "default":
        raise ConfigError(
            f"strategy {config.strategy} is not supported on the PyTorch backend yet: use "
            "strategy default (one device), or backend tensorflow or jax",
            keys=("strategy", "backend"),
        )
    if config.gpu_memory_limit is not None:
        raise ConfigError(
            f"gpu_memory_limit {config.gpu_memory_limit} is not supported on the PyTorch backend: "
            "drop it (PyTorch takes memory as it needs it), or use backend tensorflow",
            keys=("gpu_memory_limit", "backend"),
        )
    if config.cpu or not gpu_count:
        return {"KERAS_TORCH_DEVICE": "cpu"}
    index = config.gpu or 0
    if index >= gpu_count:
        raise ConfigError(
            f"gpu {index}: this machine has {gpu_count} GPU(s), indices 0..{gpu_count - 1}; pick "
            "one of them or set cpu",
            keys=("gpu", "cpu"),
        )
    return {"KERAS_TORCH_DEVICE": f"cuda:{index}"}


def environment(config: DeviceConfig) -> dict[str, str]:
    """:func:`plan_environment` for this machine's GPUs (imports PyTorch, not Keras)."""
    import torch

    return plan_environment(config, torch.cuda.device_count())
