"""What the tests share: small synthetic problems, a callback spy, run-directory readers and
child ``trainways`` processes (no real data here)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainways import rundir
from trainways.checkpoint import CHECKPOINTS

HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class Spy(keras.callbacks.Callback):
    """Records every hook call as ``(hook, index or None)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.batch_logs: list[dict[str, float]] = []

    def _record(self, hook: str, index: Any = None, logs: Any = None) -> None:
        self.calls.append((hook, index))
        if hook == "on_train_batch_end":
            self.batch_logs.append(dict(logs or {}))


def _make_hook(hook: str, indexed: bool):
    if indexed:

        def method(self, index, logs=None):
            self._record(hook, index, logs)
    else:

        def method(self, logs=None):
            self._record(hook, None, logs)

    method.__name__ = hook
    return method


for _hook in HOOKS:
    setattr(Spy, _hook, _make_hook(_hook, "batch" in _hook or "epoch" in _hook))


def toy_problem(n: int = 200, max_len: int = 20, vocab: int = 40, classes: int = 6, seed: int = 0):
    """Sequences whose class is the token that dominates them: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.integers(3, vocab, size=(n, max_len))
    mask = rng.random((n, max_len)) < 0.6
    x[mask] = np.repeat(3 + y[:, None], max_len, axis=1)[mask]
    return x.astype("int32"), y.astype("int32")


TOPIC_WORDS = {
    "copper": "copper mine output smelter tonnes",
    "grain": "wheat corn harvest bushels farmers",
    "crude": "oil barrels opec refinery crude",
    "money-fx": "dollar yen currency exchange intervention",
    "ship": "vessel port cargo shipping strike",
    "sugar": "sugar cane beet refined raw",
}


def write_corpus(directory, wires_per_topic: int = 24, seed: int = 0):
    """A Reuters-21578-format corpus of six learnable topics, in two ``reut2-*.sgm`` files."""
    rng = np.random.default_rng(seed)
    filler = [
        "the",
        "said",
        "a",
        "of",
        "to",
        "in",
        "and",
        "for",
        "on",
        "pct",
        "mln",
        "dlrs",
        "year",
        "company",
    ]
    wires = []
    for index in range(wires_per_topic * len(TOPIC_WORDS)):
        topic = list(TOPIC_WORDS)[index % len(TOPIC_WORDS)]
        words = rng.choice(TOPIC_WORDS[topic].split() + filler, size=int(rng.integers(15, 60)))
        wires.append(
            f'<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="{index + 1}">\n'
            f"<DATE>26-FEB-1987 15:01:01.79</DATE>\n<TOPICS><D>{topic}</D></TOPICS>\n"
            f"<TEXT>&#2;\n<TITLE>WIRE {index}</TITLE>\n<BODY>{' '.join(words)}.\n"
            " Reuter\n&#3;</BODY></TEXT>\n</REUTERS>\n"
        )
    directory = Path(directory)
    half = len(wires) // 2
    for number, chunk in enumerate((wires[:half], wires[half:])):
        text = '<!DOCTYPE lewis SYSTEM "lewis.dtd">\n' + "".join(chunk)
        (directory / f"reut2-{number:03d}.sgm").write_bytes(text.encode("latin-1"))
    return directory


# --------------------------------------------------------------- runs through the command line


def train_args(data, out, method: str, epochs: int, *extra: str, seed: int = 5) -> list[str]:
    """``trainways train`` arguments for a quiet seeded run of ``method`` into ``out``."""
    return [
        "train",
        "--method",
        method,
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def load_weights(run) -> list[np.ndarray]:
    """The final weights of a completed run directory."""
    import trainways.model  # noqa: F401  (registers the presets' own layers, TfidfBag's)

    return keras.models.load_model(run / rundir.MODEL, compile=False).get_weights()


def read_history(run) -> list[dict[str, str]]:
    """``history.csv`` of a run directory, row by row, as written."""
    with (run / rundir.HISTORY).open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_status(run) -> dict[str, Any]:
    return json.loads((run / rundir.STATUS).read_text())


def checkpoint_epochs(run) -> list[int]:
    """The epochs whose checkpoint is on disk (complete or not), in order."""
    return sorted(int(p.name.split("-")[1]) for p in (run / CHECKPOINTS).glob("epoch-*"))


def assert_same_run(run, reference) -> None:
    """``run`` ended exactly as ``reference``: the same history.csv and the same final weights."""
    assert read_history(run) == read_history(reference)
    for ours, theirs in zip(load_weights(run), load_weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def use_the_clis_thread_pools() -> str:
    """Give this process the TensorFlow thread pools ``trainways train`` picks (``auto``), before
    TensorFlow starts; returns the note the CLI would log ("" if none or too late).

    The intra-op thread count changes float rounding, and runs trained in the test process are
    compared bit for bit with runs that ``trainways train`` children trained.
    """
    import tensorflow as tf

    from trainways.backends.tensorflow.devices import apply_threads
    from trainways.config import DeviceConfig

    return apply_threads(DeviceConfig(), tf.config)


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- child processes

#: ``python tests/pause_at_batch.py ARGV``: ``trainways ARGV`` that waits at a chosen batch.
PAUSE_SCRIPT = Path(__file__).with_name("pause_at_batch.py")
CHILD_TIMEOUT = 300.0


class Children:
    """Child ``trainways`` processes, each in its own session, all killed by :meth:`kill_all`.

    Args:
        cache: Their ``TRAINWAYS_CACHE_DIR``.
    """

    def __init__(self, cache) -> None:
        self.cache = cache
        self.processes: list[Any] = []

    def spawn(self, *args: str, pause_at: str | None = None, marker=None, script=None, env=None):
        """Start ``trainways ARGS``; with ``pause_at="EPOCH:BATCH"``, through ``PAUSE_SCRIPT``.

        The paused child writes ``marker`` when it reaches that batch (see pause_at_batch.py).
        With ``script``, start ``python SCRIPT ARGS`` instead; ``env`` adds environment variables.
        """
        extra = env or {}
        env = {**os.environ, "TRAINWAYS_CACHE_DIR": str(self.cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_CONFIG", None)
        env.update(extra)
        program = [sys.executable, "-m", "trainways.cli"]
        if pause_at is not None:
            program = [sys.executable, str(PAUSE_SCRIPT)]
            env.update(TRAINWAYS_TEST_PAUSE_AT=pause_at, TRAINWAYS_TEST_PAUSE_MARKER=str(marker))
        if script is not None:
            program = [sys.executable, str(script)]
        process = subprocess.Popen(
            [*program, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def wait(self, process, timeout: float = CHILD_TIMEOUT) -> int:
        """Wait for ``process`` to exit; its stderr is then in ``process.stderr_text``."""
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"child timed out: {process.args}") from None
        process.stderr_text = err
        return process.returncode

    def wait_for(self, path, *processes, timeout: float = CHILD_TIMEOUT) -> None:
        """Wait until ``path`` exists while every one of ``processes`` is still running."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            for process in processes:
                if process.poll() is not None:
                    _, err = process.communicate()
                    raise AssertionError(f"child exited early ({process.returncode}): {err}")
            if time.monotonic() > deadline:
                self.kill_all()
                raise AssertionError(f"timed out waiting for {path}")
            time.sleep(0.05)

    def kill_all(self) -> None:

        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
