"""Kill it at any moment: SIGKILL anywhere in a run's life, resume, and get the unbroken run.

Each chain trains a seeded deterministic run in a child process (``tests/kill_at.py``) that
SIGKILLs itself at a named moment; the next child resumes it (``train --resume``, or the Loop
script run again) and kills itself at a later moment; the last resume runs to the end here, in
this process. The run directory must then equal the unbroken run's: ``history.csv``, the final
weights and ``best.keras``'s, bit for bit. One chain per method on TensorFlow and one for a
``trainways.Loop`` script; on JAX and on PyTorch one chain each, of a method the seed draws
(one kill each: a child costs seconds, so every method of those backends is covered across
test runs). Each test run draws its moments: the first of a chain from the start-up and the
whole of epoch 1 (commit window included), the next from what follows. The seed is
``$TRAINWAYS_KILL_SEED`` (default: the time) and is printed with the moments, so that a failure
replays; ``benchmarks/kill_sweep.py`` kills every method at every moment.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kill_at import timeline
from trainways import rundir
from trainways.cli import main

from helpers import Children, assert_same_run, read_status, train_args

KILL_SCRIPT = Path(__file__).with_name("kill_at.py")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
EPOCHS = 3
SMALL = ("--max-len", "60", "--deterministic", "--steps-per-execution", "4")  # as test_resume
OTHER_BACKENDS = {
    "jax": ("--max-len", "60", "--backend", "jax", "--steps-per-execution", "4"),
    "torch": ("--max-len", "60", "--backend", "torch"),
}


def _seed() -> int:
    return int(os.environ.get("TRAINWAYS_KILL_SEED") or time.time_ns() % 1_000_000)


def draw(rng: random.Random, moments: list[str], kills: int) -> list[str]:
    """``kills`` moments in the order a run meets them: the first in the start-up or epoch 1,
    each next one later (the resumed run passes it again, whatever its last checkpoint)."""
    early = moments.index("batch:2")
    chosen = [rng.randrange(early)]
    for _ in range(kills - 1):
        chosen.append(rng.randrange(chosen[-1] + 1, len(moments)))
    return [moments[index] for index in chosen]


def _example_args(corpus, out) -> list[str]:
    return ["--data", str(corpus), "--epochs", str(EPOCHS), "--max-len", "60", "--seed", "5",
            "--out", str(out), "--deterministic"]  # fmt: skip


def _cli(corpus, run, method, options):
    return ("cli", *train_args(corpus, run, method, EPOCHS, *options))


def _resume(run):
    return ("cli", "train", "--resume", str(run), "--quiet")


def _chains(corpus, root: Path, seed: int) -> dict[str, dict]:
    """Every chain: how to start it, resume it, and where it kills itself."""
    rng = random.Random(seed)
    chains = {}
    for method in ("fit", "batch", "loop"):
        run = root / method
        chains[method] = {
            "run": run,
            "first": _cli(corpus, run, method, SMALL),
            "again": _resume(run),
            "moments": draw(rng, timeline(EPOCHS, best=True), 2),
            "env": {},
        }
    run = root / "Loop"
    args = ("example", "tutorial_gradient_tape", *_example_args(corpus, run))
    chains["Loop"] = {
        "run": run,
        "first": args,
        "again": args,
        "moments": draw(rng, timeline(EPOCHS, best=False), 2),
        "env": {},
    }
    for backend, options in OTHER_BACKENDS.items():
        run = root / backend
        method = rng.choice(("fit", "batch", "loop"))
        chains[backend] = {
            "run": run,
            "method": method,
            "first": _cli(corpus, run, method, options),
            "again": _resume(run),
            "moments": draw(rng, timeline(EPOCHS, best=True), 1),
            "env": {"KERAS_BACKEND": backend},
            "options": options,
        }
    return chains


@pytest.fixture(scope="module")
def chains(corpus, tmp_path_factory):
    """Every chain's kills, children of the same step started together; then each TensorFlow
    chain's run left killed for the last resume (here), the others' completed by a child that
    then trains their unbroken run beside them."""
    seed = _seed()
    root = tmp_path_factory.mktemp("kill")
    chains = _chains(corpus, root, seed)
    print(f"\nkill-anywhere: TRAINWAYS_KILL_SEED={seed}")
    for name, chain in chains.items():
        what = f"{name} {chain['method']}" if "method" in chain else name
        print(f"  {what}: killed at {', '.join(chain['moments'])}, then resumed to the end")
    spawned = Children(root / "cache")

    def spawn(args, env, moment=""):
        return spawned.spawn(
            *args, script=KILL_SCRIPT, env={**env, "TRAINWAYS_TEST_KILL_AT": moment}
        )

    try:
        for step in range(2):
            running = {}
            for name, chain in chains.items():
                moments = chain["moments"]
                if step < len(moments):
                    args = chain["first"] if step == 0 else chain["again"]
                    running[name] = (spawn(args, chain["env"], moments[step]), moments[step])
                elif name in OTHER_BACKENDS:
                    # Resumed to the end by a child of its backend, which then trains the
                    # unbroken run (warm, in the same process).
                    unbroken = _cli(
                        corpus, root / f"{name}-unbroken", chain["method"], chain["options"]
                    )
                    running[name] = (
                        spawn((*chain["again"], "++", *unbroken[1:]), chain["env"]),
                        None,
                    )
            for name, (child, moment) in running.items():
                code = spawned.wait(child)
                expected = 0 if moment is None else -signal.SIGKILL
                assert code == expected, (
                    f"{name} at {moment}: exit {code}\n{child.stderr_text[-3000:]}"
                )
    finally:
        spawned.kill_all()
    return {**chains, "root": root}


def _best_weights(run: Path) -> list[np.ndarray]:
    import trainways.model  # noqa: F401  (registers the presets' own layers)

    return keras.models.load_model(run / rundir.BEST, compile=False).get_weights()


def _assert_same(run: Path, reference: Path, *, best: bool = True) -> None:
    assert read_status(run)["state"] == "completed"
    assert_same_run(run, reference)
    if best:
        for ours, theirs in zip(_best_weights(run), _best_weights(reference), strict=True):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_a_run_killed_anywhere_resumes_to_the_unbroken_run(method, chains, corpus, unbroken_run):
    run = chains[method]["run"]
    assert main(["train", "--resume", str(run), "--quiet"]) == 0, chains[method]["moments"]
    _assert_same(run, unbroken_run(corpus, method, EPOCHS, *SMALL))


def test_a_loop_script_killed_anywhere_run_again_ends_as_the_unbroken_run(chains, corpus, tmp_path):
    import tutorial_gradient_tape

    run = chains["Loop"]["run"]
    tutorial_gradient_tape.main(_example_args(corpus, run))
    reference = tmp_path / "unbroken"
    tutorial_gradient_tape.main(_example_args(corpus, reference))
    _assert_same(run, reference, best=False)


@pytest.mark.parametrize("backend", sorted(OTHER_BACKENDS))
def test_other_backends_killed_anywhere_resume_to_the_unbroken_run(backend, chains):
    run, reference = chains[backend]["run"], chains["root"] / f"{backend}-unbroken"
    _assert_same(run, reference)


def test_the_draw_starts_in_epoch_one_and_moves_forward():
    moments = timeline(EPOCHS, best=True)
    assert moments[:4] == ["start", "batch:1", "validation:1", "row:1"]
    assert moments[-3:] == ["prune:3", "model", "metrics"]
    for seed in range(50):
        first, second = draw(random.Random(seed), moments, 2)
        assert moments.index(first) < moments.index("batch:2")
        assert moments.index(first) < moments.index(second)
