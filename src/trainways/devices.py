"""Choose the training device: one GPU with memory growth (or a memory cap), or the CPU.

Planning is pure Python so it can be tested without a GPU; :func:`apply_plan` is the only part
that touches ``tf.config``, and it takes the config module as an argument for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainways.config import ConfigError, DeviceConfig


@dataclass(frozen=True)
class DevicePlan:
    """What to make visible and how.

    Attributes:
        gpu: Index of the physical GPU to keep visible, or ``None`` to train on the CPU.
        memory_limit_mb: Cap on that GPU's memory; ``None`` means memory growth instead.
        description: One line saying which device training uses, for the log.
    """

    gpu: int | None
    memory_limit_mb: int | None
    description: str


def plan_devices(config: DeviceConfig, gpu_names: Sequence[str]) -> DevicePlan:
    """Decide the device from the request and the GPUs TensorFlow can see.

    A machine without GPUs trains on the CPU even when ``--gpu`` was given, and says so: the same
    command then works on a laptop and on a GPU server.

    Raises:
        ConfigError: ``--gpu`` names a GPU that does not exist on a machine that has GPUs.
    """
    if config.cpu:
        return DevicePlan(None, None, "CPU (GPUs hidden by --cpu)")
    if not gpu_names:
        note = f"; --gpu {config.gpu} ignored" if config.gpu is not None else ""
        return DevicePlan(None, None, f"CPU (no GPU found{note})")
    index = 0 if config.gpu is None else config.gpu
    if index >= len(gpu_names):
        raise ConfigError(
            f"--gpu {index}: this machine has {len(gpu_names)} GPU(s), "
            f"indices 0..{len(gpu_names) - 1}; pick one of them or pass --cpu"
        )
    memory = (
        f"memory capped at {config.gpu_memory_limit} MB"
        if config.gpu_memory_limit
        else "memory growth on"
    )
    return DevicePlan(index, config.gpu_memory_limit, f"GPU {index} ({gpu_names[index]}), {memory}")


def apply_plan(plan: DevicePlan, tf_config: Any) -> None:
    """Make only the planned GPU visible and set its memory policy.

    Args:
        plan: From :func:`plan_devices`.
        tf_config: ``tf.config`` (or a stand-in with the same methods, in tests).

    Raises:
        ConfigError: TensorFlow had already initialised its devices, so the policy cannot change.
    """
    gpus = tf_config.list_physical_devices("GPU")
    try:
        if plan.gpu is None:
            if gpus:
                tf_config.set_visible_devices([], "GPU")
            return
        gpu = gpus[plan.gpu]
        tf_config.set_visible_devices([gpu], "GPU")
        if plan.memory_limit_mb:
            tf_config.set_logical_device_configuration(
                gpu, [tf_config.LogicalDeviceConfiguration(memory_limit=plan.memory_limit_mb)]
            )
        else:
            tf_config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:
        raise ConfigError(
            f"cannot set the GPU policy ({error}): choose devices before TensorFlow runs anything"
        ) from None


def configure_devices(config: DeviceConfig) -> str:
    """Plan and apply the device choice with TensorFlow; returns the description line."""
    import tensorflow as tf

    names = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    plan = plan_devices(config, names)
    apply_plan(plan, tf.config)
    return plan.description
