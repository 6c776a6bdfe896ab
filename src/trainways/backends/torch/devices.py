"""Devices on PyTorch: the one device Keras was told to use (:mod:`.environment`)."""

from __future__ import annotations

from trainways.backends import Devices, OneDevice
from trainways.backends.torch.environment import plan_environment
from trainways.config import DeviceConfig


def make_strategy(config: DeviceConfig) -> Devices:
    """The one PyTorch device Keras runs on (:func:`.environment.environment` chose it).

    Raises:
        ConfigError: What :func:`plan_environment` refuses.
    """
    import keras
    import torch

    plan_environment(config, torch.cuda.device_count())  # refuses what PyTorch cannot do
    device = str(keras.ops.zeros(()).device)  # where Keras puts its tensors
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        what = f"GPU {index} ({torch.cuda.get_device_name(index)})"
    elif config.cpu:
        what = "CPU (GPUs hidden by cpu)"
    else:
        note = f"; gpu {config.gpu} ignored" if config.gpu is not None else ""
        what = f"CPU (no GPU found{note})"
    return Devices(OneDevice(), f"{what}, PyTorch {torch.__version__}")


def is_chief(config: DeviceConfig) -> bool:
    return True


def probe() -> None:
    """Start PyTorch and TensorFlow (whose ``tf.data`` makes ``fit``'s batches): the start-up
    messages of both come here."""
    import tensorflow as tf
    import torch

    torch.cuda.is_available()
    tf.config.list_physical_devices("GPU")
