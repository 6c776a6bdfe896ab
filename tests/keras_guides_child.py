"""Run a Keras guide script, or its trainways port, section by section; save what it trained.

    KERAS_BACKEND=jax python tests/keras_guides_child.py SCRIPT OUT [--method fit|batch|loop]

Run by tests/test_keras_guides.py, one child per script (each guide needs its own backend), in
a scratch directory (a guide may write files there). It makes the original and the port see the
same data in the same order, and leaves the scripts unchanged:

- every section (``# %%`` line) starts from the same random state: ``keras.utils.set_random_seed``
  of its index, after the state it was left in is fingerprinted (so that a port which reseeds the
  program's random generators is told apart from one that trains differently);
- no shuffling: ``Model.fit`` and ``trainways.fit`` get ``shuffle=False``, ``tf.data``'s
  ``shuffle`` and PyTorch's ``DataLoader(shuffle=True)`` keep the order, and ``trainways.Loop``
  visits each epoch in order (``trainways.data.pipeline.epoch_order`` is the identity: Loop has no
  ``shuffle`` argument);
- ``trainways.fit`` gets ``method=--method`` unless the port passes one.

A section that raises is recorded (its error's type and first line, and its traceback), and the
next section runs all the same. At each section's end the Keras models bound to the script's
global names are saved when no earlier section saved them as they are (new, or trained since),
and so is a JAX ``state`` tuple's first element (the loop guide keeps its trained variables
there).
``OUT.npz`` holds the arrays (``<section>/<name>/<i>``), ``OUT.json`` the sections (name,
seconds, error, traceback, random-state fingerprint, the arrays saved).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "# %%"


def split(source: str) -> list[tuple[str, int, str]]:
    """``(name, first line, code)`` per section; the header belongs to the first."""
    lines = source.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(MARKER)] or [0]
    starts[0] = 0
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        marker = lines[starts[k]] if k else next((x for x in lines if x.startswith(MARKER)), "")
        name = marker[len(MARKER) :].strip() or "setup"
        out.append((name, start + 1, "".join(lines[start:end])))
    return out


def fingerprint() -> str:
    """The program's global random state (Python's and NumPy's), hashed."""
    digest = hashlib.sha256(repr(random.getstate()).encode())
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    digest.update(keys.tobytes() + repr((kind, pos, has_gauss, gauss)).encode())
    return digest.hexdigest()[:16]


def force(function: Any, **forced: Any) -> Any:
    """``function`` called with ``forced`` keyword arguments, whatever the caller passed."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **{**kwargs, **forced})

    wrapper.forced = forced
    return wrapper


def patch(source: str, method: str | None) -> list[str]:
    """Install the patches the script needs (see the module); returns what was patched."""
    import keras

    done = ["keras.Model.fit(shuffle=False)"]
    keras.Model.fit = force(keras.Model.fit, shuffle=False)
    if "tensorflow" in source:
        import tensorflow as tf

        tf.data.Dataset.shuffle = lambda self, *args, **kwargs: self
        done.append("tf.data.Dataset.shuffle = identity")
    if "torch.utils.data" in source:
        import torch

        torch.utils.data.DataLoader.__init__ = force(
            torch.utils.data.DataLoader.__init__, shuffle=False
        )
        done.append("torch DataLoader(shuffle=False)")
    if "import trainways" in source:
        import trainways
        import trainways.data.pipeline

        fit = getattr(trainways, "fit", None)
        if fit is not None:

            @functools.wraps(fit)
            def forced_fit(*args: Any, **kwargs: Any) -> Any:
                kwargs["shuffle"] = False
                if method is not None:
                    kwargs.setdefault("method", method)
                return fit(*args, **kwargs)

            trainways.fit = forced_fit
            done.append(f"trainways.fit(shuffle=False, method={method!r})")
        if "trainways.Loop" in source:  # not for trainways.fit: its shuffle=False is tested
            trainways.data.pipeline.epoch_order = lambda n, seed, epoch: np.arange(n)
            done.append("trainways.data.pipeline.epoch_order = identity")
    return done


def arrays_of(value: Any, *, state: bool) -> list[np.ndarray] | None:
    """A model's weights, or (``state``) a JAX state tuple's trainable values; else ``None``."""
    import keras

    if isinstance(value, keras.Model):
        return [np.asarray(keras.ops.convert_to_numpy(w)) for w in value.weights]
    if state and isinstance(value, tuple) and value and isinstance(value[0], list | tuple):
        try:
            return [np.asarray(keras.ops.convert_to_numpy(v)) for v in value[0]]
        except Exception:  # not a state of arrays: not ours to save
            return None
    return None


def run(script: Path, method: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run ``script`` section by section; return its report and the arrays to save."""
    source = script.read_text()
    report: dict[str, Any] = {
        "script": str(script),
        "backend": os.environ.get("KERAS_BACKEND"),
        "method": method,
        "patched": patch(source, method),
        "sections": [],
    }
    import keras

    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(script)}
    # What was last saved of each model, by id (the model is kept: its id is not reused).
    latest: dict[int, tuple[Any, list[np.ndarray]]] = {}
    arrays: dict[str, np.ndarray] = {}
    sys.argv = [str(script)]
    keras.utils.set_random_seed(0)  # the setup's fingerprint too is the same in every run
    for index, (name, first_line, code) in enumerate(split(source)):
        entry: dict[str, Any] = {"name": name, "random_state": fingerprint(), "error": None}
        keras.utils.set_random_seed(index)
        start = time.perf_counter()
        try:
            exec(compile("\n" * (first_line - 1) + code, str(script), "exec"), namespace)
        except BaseException as error:  # a SystemExit too: Loop ends the process on a stop
            # The message's first line: some (a PyTorch optimizer's repr) run on for lines.
            message = (str(error).strip().splitlines() or [""])[0]
            entry["error"] = f"{type(error).__name__}: {message}".strip().rstrip(":")
            entry["traceback"] = traceback.format_exc()
        entry["seconds"] = round(time.perf_counter() - start, 2)
        entry["arrays"] = {}
        for key, value in list(namespace.items()):
            saved = None if key.startswith("__") else arrays_of(value, state=key == "state")
            _, last = latest.get(id(value), (None, None))
            if saved is None or (last is not None and _same(saved, last)):
                continue  # not a model, or one an earlier section saved as it is now
            latest[id(value)] = (value, saved)
            entry["arrays"][key] = len(saved)
            for i, array in enumerate(saved):
                arrays[f"{name}/{key}/{i}"] = array
        report["sections"].append(entry)
    return report, arrays


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", type=Path)
    parser.add_argument("out", type=Path, help="writes OUT.npz and OUT.json")
    parser.add_argument("--method", choices=["fit", "batch", "loop"])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report, arrays = run(args.script.resolve(), args.method)
    report["seconds"] = round(time.perf_counter() - start, 2)
    np.savez(args.out.with_suffix(".npz"), **arrays)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
