"""Child process for test_own_loop and test_steps: user code, paused or over two devices.

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

from helpers import use_the_clis_thread_pools  # noqa: E402

use_the_clis_thread_pools()  # as the test process does (conftest.py), before the example runs


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


def _two_devices():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0"),
    )


def own_step() -> None:
    import numpy as np
    from clipped_model import ClippedSequential

    import trainways

    from helpers import toy_problem

    strategy = _two_devices()
    x, y = toy_problem()
    weights = {}
    for method in ("fit", "loop"):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            model = ClippedSequential(
                [
                    keras.Input((20,), dtype="int32"),
                    keras.layers.Embedding(40, 8),
                    keras.layers.GlobalAveragePooling1D(),
                    keras.layers.Dense(6, activation="softmax"),
                ]
            )
            model.compile(optimizer="nadam", loss="sparse_categorical_crossentropy")
            trainways.fit(model, x, y, method=method, epochs=2, seed=3, batch_size=16, verbose=0)
        weights[method] = model.get_weights()
    difference = max(
        float(np.max(np.abs(a - b))) for a, b in zip(weights["fit"], weights["loop"], strict=True)
    )
    print(json.dumps({"difference": difference}))


def mirrored(data: str) -> None:
    import numpy as np
    import tensorflow as tf

    strategy = _two_devices()
    import tutorial_gradient_tape

    argv = ["--data", data, "--epochs", "1", "--max-len", "60", "--seed", "3"]
    one = tutorial_gradient_tape.main(argv)
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
    {"pause": pause, "mirrored": mirrored, "own-step": own_step}[sys.argv[1]](*sys.argv[2:])
