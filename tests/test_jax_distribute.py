"""Distribution on JAX: Keras's ``DataParallel`` over two CPU devices, and over two processes.

This pytest process runs Keras on TensorFlow, so every run is a child ``trainways train
--backend jax`` on the synthetic corpus (6 steps of 32 per epoch; validation 32 + 16), all
started together: their time is mostly starting Python and compiling. Each method on one device
is the reference; with ``--strategy mirrored --cpu-devices 2`` each method must end its first
epoch within 1e-5 of it, and of the other methods; two processes on 127.0.0.1
(``--strategy multiworker``, the ``loop`` method: the cheapest) must too, the chief alone writing
the run directory; and a step function (level 2) on two devices matches the built-in ``loop`` on
one.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from trainways import rundir
from trainways.checkpoint import first_epoch_weights

from helpers import Children, read_history, train_args

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed: pip install -e '.[jax]'"
)

METHODS = ("fit", "batch", "loop")
OPTIONS = ("--max-len", "60", "--backend", "jax")
MIRRORED = ("--strategy", "mirrored", "--cpu-devices", "2")
TOLERANCE = 1e-5  # the bound: two devices vs one, after one epoch


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> dict[str, Path]:
    """``one-METHOD``, ``mirrored-METHOD`` and ``workers`` (the chief's run), one epoch each."""
    root = tmp_path_factory.mktemp("jax-distribute")
    children = Children(root / "cache")
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    cluster = ("--strategy", "multiworker", "--workers", workers)
    try:
        started = {}
        for method in METHODS:
            started[f"one-{method}"] = children.spawn(
                *train_args(corpus, root / f"one-{method}", method, 1, *OPTIONS)
            )
            started[f"mirrored-{method}"] = children.spawn(
                *train_args(corpus, root / f"mirrored-{method}", method, 1, *OPTIONS, *MIRRORED)
            )
        # A step function (level 2) on two devices: the batch arrives sharded, the state
        # replicated, and the same pure step runs data-parallel.
        example = Path(__file__).resolve().parents[1] / "examples" / "tutorial_step_jax.py"
        step = ("--step", f"{example}:train_step", "--test-step", f"{example}:test_step")
        started["mirrored-step"] = children.spawn(
            *train_args(corpus, root / "mirrored-step", "loop", 1, *OPTIONS, *MIRRORED, *step)
        )
        # Both workers name the same --out: only the chief may create it.
        argv = train_args(corpus, root / "workers", "loop", 1, *OPTIONS, *cluster)
        for index in (0, 1):
            started[f"worker-{index}"] = children.spawn(*argv, "--task-index", str(index))
        for name, process in started.items():
            assert children.wait(process) == 0, f"{name}: {process.stderr_text[-3000:]}"
    finally:
        children.kill_all()
    names = [name for name in started if not name.startswith("worker-")]
    return {name: root / name for name in [*names, "workers"]}


def _largest_difference(run: Path, reference: Path) -> float:
    ours, theirs = first_epoch_weights(run), first_epoch_weights(reference)
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    return max(float(np.max(np.abs(a - b))) for (_, a), (_, b) in zip(ours, theirs, strict=True))


def _log(run: Path) -> str:
    return (run / rundir.LOG).read_text()


def test_each_method_completes_on_two_devices_and_says_so(runs):
    for method in METHODS:
        run = runs[f"mirrored-{method}"]
        assert json.loads((run / rundir.STATUS).read_text())["state"] == "completed"
        assert len(read_history(run)) == 1
        log = _log(run)
        assert "DataParallel over 2 CPU device(s), 2 replica(s)" in log, method
        assert "replicas: 2; batch 32 is the global batch, 16 per replica" in log, method


def test_two_devices_match_one_device_after_one_epoch(runs):
    for method in METHODS:
        difference = _largest_difference(runs[f"mirrored-{method}"], runs[f"one-{method}"])
        print(f"{method}: 2 devices vs 1, largest weight difference {difference:.2e}")
        assert difference <= TOLERANCE, method


def test_the_three_methods_agree_on_two_devices(runs):
    for method in ("batch", "loop"):
        difference = _largest_difference(runs[f"mirrored-{method}"], runs["mirrored-fit"])
        assert difference <= TOLERANCE, method


def test_a_step_function_runs_data_parallel_and_matches_one_device(runs):
    assert "DataParallel over 2 CPU device(s), 2 replica(s)" in _log(runs["mirrored-step"])
    assert _largest_difference(runs["mirrored-step"], runs["one-loop"]) <= TOLERANCE


def test_two_processes_on_loopback_match_one_device(runs):
    run = runs["workers"]
    assert json.loads((run / rundir.STATUS).read_text())["state"] == "completed"
    log = _log(run)
    assert "DataParallel over 2 processes (2 CPU device(s)); this is worker 0 (chief)" in log
    assert "replicas: 2; batch 32 is the global batch, 16 per replica" in log
    difference = _largest_difference(run, runs["one-loop"])
    print(f"loop: 2 processes vs 1 device, largest weight difference {difference:.2e}")
    assert difference <= TOLERANCE
