"""Child process for test_own_loop: an example's own loop, paused or split over two devices.

python tests/own_loop_child.py pause EPOCH:BATCH MARKER EXAMPLE [EXAMPLE ARGS...]
    runs examples/EXAMPLE.py's main() with one more callback: at the first training batch
    BATCH or later (0-based) of epoch EPOCH (1-based) it writes MARKER and waits (up to 120 s,
    or until the Loop's StopOnSignal has a signal), so that a test can stop it there.

python tests/own_loop_child.py mirrored DATA
    splits the CPU in two and trains examples/tutorial_gradient_tape.py's loop for one epoch
    on one device and under a MirroredStrategy over both halves; prints one JSON line with
    the largest weight difference and both Histories; then checks that a
    MultiWorkerMirroredStrategy is refused and prints its message.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import keras  # noqa: E402

from pause_at_batch import PauseAtBatch  # noqa: E402


class _LoopsStopper:
    """The Loop's StopOnSignal, found as the installed SIGINT handler once training began."""

    @property
    def received(self):
        stopper = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
        return getattr(stopper, "received", None)


def pause(at: str, marker: str, example: str, *args: str) -> None:
    epoch, batch = (int(part) for part in at.split(":"))
    module = __import__(example)
    module.main(list(args), callbacks=[PauseAtBatch(epoch, batch, Path(marker), _LoopsStopper())])


def mirrored(data: str) -> None:
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tutorial_gradient_tape

    argv = ["--data", data, "--epochs", "1", "--max-len", "60", "--seed", "3"]
    one = tutorial_gradient_tape.main(argv)
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0"),
    )
    keras.backend.clear_session()
    with strategy.scope():
        two = tutorial_gradient_tape.main(argv)
    difference = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(one.model.get_weights(), two.model.get_weights(), strict=True)
    )
    refused = ""
    try:
        with tf.distribute.MultiWorkerMirroredStrategy().scope():
            tutorial_gradient_tape.main(argv)
    except Exception as error:  # the message is what the test checks
        refused = f"{type(error).__name__}: {error}"
    print(
        json.dumps(
            {"difference": difference, "one": one.history, "two": two.history, "refused": refused}
        )
    )


if __name__ == "__main__":
    {"pause": pause, "mirrored": mirrored}[sys.argv[1]](*sys.argv[2:])
