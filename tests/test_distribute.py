"""tf.distribute: the three methods under MirroredStrategy and MultiWorkerMirroredStrategy.

Configuration and cluster planning are tested directly. Distributed training runs in child
``trainways`` processes (logical CPU devices and a worker cluster can only be set up before
TensorFlow starts) on the synthetic corpus, against single-device runs of the same seed and global
batch trained in this process: 6 steps per epoch, so two replicas must match one device within
1e-4 after three whole epochs. The real-data check is the first 20 steps of each method.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainways import rundir
from trainways.backends.tensorflow.devices import is_chief, resolve_cluster
from trainways.cli import main
from trainways.config import ConfigError, DeviceConfig

from helpers import (
    CHILD_TIMEOUT,
    Children,
    checkpoint_epochs,
    largest_difference,
    load_weights,
    read_history,
    read_status,
    train_args,
)

METHODS = ("fit", "batch", "loop")
WEIGHT_TOLERANCE = 1e-4  # the bound: 2 replicas vs one device
ACCURACY_TOLERANCE = 0.01

# ----------------------------------------------------------------------- configuration


def test_cluster_from_workers_and_from_tf_config():
    config = DeviceConfig(strategy="multiworker", workers=("h0:1", "h1:2"), task_index=1)
    cluster = resolve_cluster(config, environ={})
    assert cluster.tf_config == {
        "cluster": {"worker": ["h0:1", "h1:2"]},
        "task": {"type": "worker", "index": 1},
    }
    assert (cluster.num_workers, cluster.task_index, cluster.is_chief) == (2, 1, False)
    env = {"TF_CONFIG": json.dumps({**cluster.tf_config, "task": {"type": "worker", "index": 0}})}
    assert is_chief(DeviceConfig(strategy="multiworker"), environ=env)
    chief_task = {"cluster": {"chief": ["c:1"], "worker": ["w:2"]}}
    env = {"TF_CONFIG": json.dumps({**chief_task, "task": {"type": "worker", "index": 0}})}
    assert not is_chief(DeviceConfig(strategy="multiworker"), environ=env)
    assert is_chief(DeviceConfig(), environ={}) and resolve_cluster(DeviceConfig()) is None


def test_multiworker_without_a_cluster_or_with_a_bad_one_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"give workers \(host:port,host:port\) and task_index"):
        resolve_cluster(DeviceConfig(strategy="multiworker"), environ={})
    with pytest.raises(ConfigError, match=r"\$TF_CONFIG is not a cluster spec"):
        resolve_cluster(DeviceConfig(strategy="multiworker"), environ={"TF_CONFIG": "{}"})


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--strategy", "mirrored", "--gpus", "0,x"], "expected GPU indices like 0,1"),
        (["train", "--strategy", "multiworker", "--workers", "hostonly"], "host:port"),
        (["train", "--strategy", "mirrored", "--cpu-devices", "0"], "must be positive"),
    ],
)
def test_bad_distribution_flags_are_one_line_errors(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


# ------------------------------------------------------------------------------ training

EPOCHS = 3  # the killed worker dies in epoch 2
OPTIONS = ("--max-len", "60", "--deterministic")  # as test_resume's: the same reference runs
MIRRORED = ("--strategy", "mirrored", "--cpu-devices", "2")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TUTORIAL_STEP = f"{EXAMPLES / 'tutorial_step.py'}:train_step"


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _cluster() -> tuple[str, ...]:
    """Options of a cluster of two workers on 127.0.0.1."""
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    return ("--strategy", "multiworker", "--workers", workers)


def _columns(run: Path, *keys: str) -> np.ndarray:
    return np.array([[float(row[key]) for key in keys] for row in read_history(run)])


def _assert_same_training(run: Path, reference: Path, what: str) -> None:
    """``run`` trained what ``reference`` did: final weights within 1e-4 after its three epochs,
    the same accuracies every epoch (one validation wire more or less would be 0.02)."""
    weights = largest_difference(load_weights(run), load_weights(reference))
    keys = ("accuracy", "top5_accuracy", "val_accuracy", "val_top5_accuracy")
    metrics = np.max(np.abs(_columns(run, *keys) - _columns(reference, *keys)))
    print(f"{what}: weights {weights:.2e}, accuracies {metrics:.4f}")
    assert len(read_history(run)) == EPOCHS
    assert weights <= WEIGHT_TOLERANCE
    assert metrics <= ACCURACY_TOLERANCE


@pytest.fixture(scope="module")
def single_device_runs(corpus, unbroken_run):
    """Each method on one device, trained in this process: what every distributed run matches."""
    return {method: unbroken_run(corpus, method, EPOCHS, *OPTIONS) for method in METHODS}


@pytest.fixture(scope="module")
def mirrored_runs(corpus, tmp_path_factory) -> dict[str, Path]:
    """Each method mirrored over two logical CPU devices: three child processes started together
    (they spend most of their time starting TensorFlow)."""
    root = tmp_path_factory.mktemp("mirrored")
    spawned = Children(root / "cache")
    try:
        processes = [
            spawned.spawn(*train_args(corpus, root / method, method, EPOCHS, *OPTIONS, *MIRRORED))
            for method in METHODS
        ]
        # The tutorial's GradientTape step as a user's step function, run per replica.
        step = (*OPTIONS, *MIRRORED, "--step", TUTORIAL_STEP)
        processes.append(spawned.spawn(*train_args(corpus, root / "step", "loop", EPOCHS, *step)))
        for process in processes:
            assert spawned.wait(process) == 0, process.stderr_text
    finally:
        spawned.kill_all()
    return {name: root / name for name in (*METHODS, "step")}


@pytest.mark.realdata
def test_the_first_steps_of_two_replicas_match_one_device(reuters_dir, tmp_path):
    # On the real data this training is chaotic: on one device, moving a single weight by 1e-7
    # moves the weights after an epoch by ~1e-2, and two replicas sum the gradient in another
    # order than one device. So the step-by-step equivalence is checked where rounding has not
    # yet been amplified: 20 steps, every method.
    script = Path(__file__).with_name("distributed_steps.py")
    env = {**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(script), str(reuters_dir), "20"],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    differences = json.loads(result.stdout.strip().splitlines()[-1])
    print("two replicas vs one device after 20 steps:", differences)
    assert set(differences) == set(METHODS)
    for method, difference in differences.items():
        assert difference <= WEIGHT_TOLERANCE, f"{method}: {difference:.2e}"


@pytest.mark.parametrize("method", METHODS)
def test_mirrored_over_two_cpu_devices_matches_one_device(
    method, single_device_runs, mirrored_runs
):
    run = mirrored_runs[method]
    log = (run / rundir.LOG).read_text()
    assert "MirroredStrategy over 2 logical CPU device(s), 2 replica(s)" in log
    assert "replicas: 2; batch 32 is the global batch, 16 per replica" in log
    _assert_same_training(run, single_device_runs[method], f"mirrored {method} vs one device")


def test_a_users_step_runs_per_replica_and_matches_one_device(single_device_runs, mirrored_runs):
    # On one device the tutorial's step equals the built-in one bit for bit (test_steps.py).
    run = mirrored_runs["step"]
    assert "replicas: 2" in (run / rundir.LOG).read_text()
    _assert_same_training(run, single_device_runs["loop"], "mirrored user step vs one device")
    keys = ("loss", "val_loss")
    np.testing.assert_allclose(
        _columns(run, *keys), _columns(single_device_runs["loop"], *keys), atol=1e-4
    )


@pytest.mark.parametrize("method", METHODS)
def test_mirrored_runs_log_the_loss_of_one_device(method, single_device_runs, mirrored_runs):
    keys = ("loss", "val_loss")
    ours = _columns(mirrored_runs[method], *keys)
    np.testing.assert_allclose(ours, _columns(single_device_runs[method], *keys), atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_two_workers_match_and_only_the_chief_writes(
    method, corpus, single_device_runs, mirrored_runs, children, tmp_path
):
    out = tmp_path / "multiworker"
    args = (*train_args(corpus, out, method, EPOCHS, *OPTIONS), *_cluster())
    chief, worker = (children.spawn(*args, "--task-index", str(i)) for i in (0, 1))
    assert children.wait(chief) == 0, chief.stderr_text
    assert children.wait(worker) == 0, worker.stderr_text
    assert read_status(out)["state"] == "completed"
    log = (out / rundir.LOG).read_text()
    assert "worker 0 of 2 (chief), 2 replica(s)" in log
    assert "worker 1 of 2" not in log  # the other worker logged to its scratch directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "multiworker"]
    _assert_same_training(out, single_device_runs[method], f"2 workers {method} vs one device")
    # Two workers and two local replicas split each batch alike: the same training.
    _assert_same_training(out, mirrored_runs[method], f"2 workers {method} vs 2 replicas")


def test_a_killed_worker_fails_the_job_and_all_workers_resume(
    corpus, single_device_runs, children, tmp_path
):
    out, marker = tmp_path / "run", tmp_path / "paused"
    args = (*train_args(corpus, out, "loop", EPOCHS, *OPTIONS), *_cluster())
    chief = children.spawn(*args, "--task-index", "0")
    # The worker waits in the middle of epoch 2 (batch 3 of 6); the chief waits for it.
    worker = children.spawn(*args, "--task-index", "1", pause_at="2:3", marker=marker)
    children.wait_for(marker, chief, worker)
    os.killpg(worker.pid, signal.SIGKILL)
    assert children.wait(chief) == 1, chief.stderr_text
    status = read_status(out)
    assert status["state"] == "failed" and status["error"].startswith("lost a worker")
    assert status["epochs_completed"] == 1
    assert checkpoint_epochs(out) == [1]
    assert "Restart every worker with --resume" in (out / rundir.LOG).read_text()

    workers = _cluster()[-2:]  # --workers ...: the strategy comes from the run's config
    resumed = [
        children.spawn("train", "--resume", str(out), "--quiet", *workers, "--task-index", str(i))
        for i in (0, 1)
    ]
    for process in resumed:
        assert children.wait(process) == 0, process.stderr_text
    assert read_status(out)["state"] == "completed"
    assert "resuming after epoch 1 from" in (out / rundir.LOG).read_text()
    # Resumed from the epoch-1 checkpoint, the cluster ends where one device does.
    _assert_same_training(out, single_device_runs["loop"], "resumed 2 workers vs one device")


def test_resuming_a_multiworker_run_needs_this_workers_index(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run = tmp_path / "run"
    run.mkdir()
    device = {"strategy": "multiworker", "workers": ["a:1", "b:2"], "task_index": 0}
    (run / rundir.CONFIG).write_text(json.dumps({"device": device}))
    (run / rundir.STATUS).write_text(json.dumps({"state": "failed"}))
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "give this worker's workers and task_index (or set $TF_CONFIG), on every worker "
        "(--workers, --task-index)"
        in err
        and "\n" not in err
    )
