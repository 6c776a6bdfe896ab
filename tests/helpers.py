"""Small synthetic problems and spies shared by the tests (no real data here)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

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
    from pathlib import Path

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
