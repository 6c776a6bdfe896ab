"""Child process for test_distribute: the first steps of each method, one device vs two replicas.

Logical CPU devices can only be made before TensorFlow starts, so this runs in its own process:
it splits the CPU in two, trains each method for ``STEPS`` steps on one device and under a
``MirroredStrategy`` over both halves (same seed, same global batch, same data), and prints one
JSON line: method -> largest weight difference.

    python tests/distributed_steps.py REUTERS_DIR STEPS
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from trainways.backends import current
from trainways.config import METHODS, RunConfig
from trainways.data import load_reuters
from trainways.trainers import get_trainer
from trainways.training import build_training, seed_everything


def _train(method: str, reuters, strategy, steps: int) -> list[np.ndarray]:
    config = RunConfig.from_dict({"train": {"method": method, "seed": 7, "epochs": 1}})
    seed_everything(config)
    with strategy.scope():
        training = build_training(config, reuters)
        # The first STEPS batches of epoch 1: the pass as a stream that each epoch takes STEPS of.
        data = dataclasses.replace(
            training.data, steps_per_epoch=steps, validation=None, clock=None
        )
        get_trainer(method, current())(training.model, data, training.spec, [])
    return training.model.get_weights()


def main() -> None:
    data, steps = sys.argv[1], int(sys.argv[2])
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0"),
    )
    reuters = load_reuters(data)
    differences = {}
    for method in METHODS:
        one = _train(method, reuters, tf.distribute.get_strategy(), steps)
        two = _train(method, reuters, mirrored, steps)
        differences[method] = max(
            float(np.max(np.abs(a - b))) for a, b in zip(one, two, strict=True)
        )
    print(json.dumps(differences))


if __name__ == "__main__":
    main()
