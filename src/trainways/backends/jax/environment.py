"""What JAX must be told before it starts: the platform, the GPU, and no preallocation.

JAX reads these variables when it is imported, so :func:`trainways.backends.select` sets them
before Keras imports it. ``--cpu``: ``JAX_PLATFORMS=cpu``; ``--gpu N``: GPU ``N`` alone visible
(``CUDA_VISIBLE_DEVICES``); always ``XLA_PYTHON_CLIENT_PREALLOCATE=false``, JAX's analogue of
TensorFlow's memory growth (by default JAX takes 75% of a GPU's memory when it starts). The
planning is pure Python, so it is tested without a GPU.
"""

from __future__ import annotations

from trainways.config import ConfigError, DeviceConfig


def environment(config: DeviceConfig) -> dict[str, str]:
    """The variables that put JAX on the devices ``config`` asks for.

    Raises:
        ConfigError: A GPU memory cap (TensorFlow's option; JAX takes memory as it needs it).
    """
    if config.gpu_memory_limit is not None:
        raise ConfigError(
            f"gpu_memory_limit {config.gpu_memory_limit} is TensorFlow's: on JAX memory is taken "
            "as needed (preallocation off); drop it, or use backend tensorflow",
            keys=("gpu_memory_limit", "backend"),
        )
    variables = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if config.cpu:
        variables["JAX_PLATFORMS"] = "cpu"
    elif config.gpu is not None:
        variables["CUDA_VISIBLE_DEVICES"] = str(config.gpu)
    elif config.gpus is not None:
        variables["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, config.gpus))
    return variables
