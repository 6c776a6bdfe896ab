"""What TensorFlow must be told before Keras imports it: nothing.

TensorFlow takes its device choices at run time, through ``tf.config`` before it runs anything
(:func:`trainways.backends.tensorflow.devices.make_strategy`), so no variable is needed.
"""

from __future__ import annotations

from trainways.config import DeviceConfig


def environment(config: DeviceConfig) -> dict[str, str]:
    """No variables: see the module."""
    return {}
