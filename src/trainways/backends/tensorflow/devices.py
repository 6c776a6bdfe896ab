"""Choose the training devices and the ``tf.distribute`` strategy that spreads work over them.

One device: one GPU with memory growth (or a memory cap), or the CPU. Several: a
``MirroredStrategy`` over chosen GPUs (or over logical CPU devices, for testing), or a
``MultiWorkerMirroredStrategy`` over several machines. Planning is pure Python so it can be
tested without a GPU or a cluster; :func:`apply_plan` and :func:`make_strategy` are the parts that
touch TensorFlow, and they must run before TensorFlow executes anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainways.config import ConfigError, DeviceConfig


@dataclass(frozen=True)
class DevicePlan:
    """What to make visible and how.

    Attributes:
        gpu: Index of the physical GPU to keep visible, or ``None`` to train on the CPU.
        memory_limit_mb: Cap on that GPU's memory; ``None`` means memory growth instead.
        description: One line saying which device training uses, for the log.
    """

    gpu: int | None
    memory_limit_mb: int | None
    description: str


def plan_devices(config: DeviceConfig, gpu_names: Sequence[str]) -> DevicePlan:
    """Decide the device from the request and the GPUs TensorFlow can see.

    A machine without GPUs trains on the CPU even when ``--gpu`` was given, and says so: the same
    command then works on a laptop and on a GPU server.

    Raises:
        ConfigError: ``--gpu`` names a GPU that does not exist on a machine that has GPUs.
    """
    if config.cpu:
        return DevicePlan(None, None, "CPU (GPUs hidden by cpu)")
    if not gpu_names:
        note = f"; gpu {config.gpu} ignored" if config.gpu is not None else ""
        return DevicePlan(None, None, f"CPU (no GPU found{note})")
    index = 0 if config.gpu is None else config.gpu
    if index >= len(gpu_names):
        raise ConfigError(
            f"gpu {index}: this machine has {len(gpu_names)} GPU(s), "
            f"indices 0..{len(gpu_names) - 1}; pick one of them or set cpu",
            keys=("gpu", "cpu"),
        )
    memory = (
        f"memory capped at {config.gpu_memory_limit} MB"
        if config.gpu_memory_limit
        else "memory growth on"
    )
    return DevicePlan(index, config.gpu_memory_limit, f"GPU {index} ({gpu_names[index]}), {memory}")


def apply_plan(plan: DevicePlan, tf_config: Any) -> None:
    """Make only the planned GPU visible and set its memory policy.

    Args:
        plan: From :func:`plan_devices`.
        tf_config: ``tf.config`` (or a stand-in with the same methods, in tests).

    Raises:
        ConfigError: TensorFlow had already initialised its devices, so the policy cannot change.
    """
    gpus = tf_config.list_physical_devices("GPU")
    try:
        if plan.gpu is None:
            if gpus:
                tf_config.set_visible_devices([], "GPU")
            return
        gpu = gpus[plan.gpu]
        tf_config.set_visible_devices([gpu], "GPU")
        if plan.memory_limit_mb:
            tf_config.set_logical_device_configuration(
                gpu, [tf_config.LogicalDeviceConfiguration(memory_limit=plan.memory_limit_mb)]
            )
        else:
            tf_config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:
        raise ConfigError(
            f"cannot set the GPU policy ({error}): choose devices before TensorFlow runs anything"
        ) from None


def auto_threads(cores: int) -> tuple[int, int]:
    """The thread pools ``auto`` picks for ``cores`` usable cores: ``(intra-op, inter-op)``,
    ``0`` for TensorFlow's choice.

    On 2 cores, one thread per op and two ops at a time beat TensorFlow's choice (every op split
    over both cores) for every method in screening runs (benchmarks/RESULTS.md, issue 14): the
    tutorial model's ops are small. Other core counts were not measured: TensorFlow's choice.
    """
    return (1, 2) if cores == 2 else (0, 0)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def apply_threads(config: DeviceConfig, tf_config: Any) -> str:
    """Set TensorFlow's intra-/inter-op thread pools; returns a note for the device line.

    A pool left to ``auto`` (``None``) takes :func:`auto_threads`' choice, unless TensorFlow has
    started already (a second run in one process), where it keeps the pools it has.

    Raises:
        ConfigError: A pool was set explicitly but TensorFlow had already created its pools.
    """
    auto = auto_threads(_usable_cores())
    notes = []
    pools = {"intra": config.intra_op_threads, "inter": config.inter_op_threads}
    for (kind, given), chosen in zip(pools.items(), auto, strict=True):
        threads = chosen if given is None else given
        if not threads:
            continue
        setter = getattr(tf_config.threading, f"set_{kind}_op_parallelism_threads")
        try:
            setter(threads)
        except RuntimeError as error:
            if given is None:
                continue
            raise ConfigError(
                f"cannot set thread pools ({error}): set them before TensorFlow runs anything"
            ) from None
        notes.append(f"{threads} {kind}-op" + (" (auto)" if given is None else ""))
    return f", threads: {' / '.join(notes)}" if notes else ""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker cluster.

    Attributes:
        tf_config: The ``TF_CONFIG`` value (cluster and task) TensorFlow reads.
        task_index: This worker's index.
        num_workers: Workers in the cluster.
        is_chief: Whether this worker writes the run directory (worker 0, or the ``chief``
            task when the cluster names one).
    """

    tf_config: dict[str, Any]
    task_index: int
    num_workers: int
    is_chief: bool


def resolve_cluster(
    config: DeviceConfig, environ: Mapping[str, str] = os.environ
) -> Cluster | None:
    """The cluster for ``--strategy multiworker``, from ``--workers`` or ``$TF_CONFIG``.

    Returns:
        ``None`` for the single-machine strategies.

    Raises:
        ConfigError: No cluster is given, or ``$TF_CONFIG`` is not valid.
    """
    if config.strategy != "multiworker":
        return None
    if config.workers is not None:
        tf_config: Any = {
            "cluster": {"worker": list(config.workers)},
            "task": {"type": "worker", "index": config.task_index},
        }
    else:
        raw = environ.get("TF_CONFIG")
        if not raw:
            raise ConfigError(
                "strategy multiworker needs the cluster: give workers (host:port,host:port) "
                "and task_index, or set $TF_CONFIG",
                keys=("workers", "task_index"),
            )
        try:
            tf_config = json.loads(raw)
        except ValueError:
            tf_config = None
    try:
        cluster = tf_config["cluster"]
        kind, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
        workers = len(cluster["worker"]) + len(cluster.get("chief", []))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"$TF_CONFIG is not a cluster spec ({str(environ.get('TF_CONFIG'))[:80]!r}): it "
            'needs {"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}'
        ) from None
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return Cluster(tf_config, index, workers, chief)


def is_chief(config: DeviceConfig, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process writes the run directory (always, unless a non-chief worker)."""
    cluster = resolve_cluster(config, environ)
    return cluster is None or cluster.is_chief


@dataclass(frozen=True)
class Devices:
    """What training runs on.

    Attributes:
        strategy: The ``tf.distribute`` strategy (the default one for a single device).
        description: One line for the log.
        replicas: Replicas the global batch is split over.
        is_chief: Whether this process writes the run directory.
    """

    strategy: Any
    description: str
    replicas: int
    is_chief: bool = True


def _choose_gpus(config: DeviceConfig, tf: Any) -> list[str]:
    """Make the ``--gpus`` (default: all) visible, with memory growth or the cap; their names."""
    physical = tf.config.list_physical_devices("GPU")
    if config.cpu or not physical:
        if physical:
            tf.config.set_visible_devices([], "GPU")
        return []
    indices = list(config.gpus) if config.gpus is not None else list(range(len(physical)))
    missing = [i for i in indices if i >= len(physical)]
    if missing:
        raise ConfigError(
            f"gpus {','.join(map(str, indices))}: this machine has {len(physical)} GPU(s), "
            f"indices 0..{len(physical) - 1}",
            keys=("gpus",),
        )
    chosen = [physical[i] for i in indices]
    tf.config.set_visible_devices(chosen, "GPU")
    for gpu in chosen:
        if config.gpu_memory_limit:
            tf.config.set_logical_device_configuration(
                gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=config.gpu_memory_limit)]
            )
        else:
            tf.config.experimental.set_memory_growth(gpu, True)
    return [f"/gpu:{i}" for i in range(len(chosen))]


def make_strategy(config: DeviceConfig) -> Devices:
    """Set devices and thread pools up and build the strategy; call before TensorFlow runs.

    Raises:
        ConfigError: The devices asked for do not exist, or TensorFlow already started.
    """
    import tensorflow as tf

    threads = apply_threads(config, tf.config)
    if config.strategy == "default":
        names = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
        plan = plan_devices(config, names)
        apply_plan(plan, tf.config)
        return Devices(tf.distribute.get_strategy(), plan.description + threads, 1)
    try:
        if config.strategy == "mirrored":
            return _mirrored(config, tf, threads)
        return _multiworker(config, tf, threads)
    except RuntimeError as error:
        raise ConfigError(
            f"cannot set devices up ({error}): choose them before TensorFlow runs anything"
        ) from None


def _mirrored(config: DeviceConfig, tf: Any, threads: str) -> Devices:
    if config.cpu_devices:
        if tf.config.list_physical_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices
        )
        devices = [f"/cpu:{i}" for i in range(config.cpu_devices)]
        # NCCL is for GPUs: CPU replicas reduce on one device.
        strategy = tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0")
        )
        what = f"{config.cpu_devices} logical CPU device(s)"
    else:
        devices = _choose_gpus(config, tf)
        if not devices:
            strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
            what = "the CPU (no GPU found)"
        else:
            strategy = tf.distribute.MirroredStrategy(devices)
            what = f"GPUs {','.join(map(str, config.gpus or range(len(devices))))}"
    replicas = strategy.num_replicas_in_sync
    return Devices(
        strategy, f"MirroredStrategy over {what}, {replicas} replica(s){threads}", replicas
    )


def _multiworker(config: DeviceConfig, tf: Any, threads: str) -> Devices:
    cluster = resolve_cluster(config)
    assert cluster is not None  # strategy == "multiworker"
    # TensorFlow reads the cluster from the environment when the strategy is built.
    os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config)
    gpus = _choose_gpus(config, tf)
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.NCCL
        if gpus
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )
    replicas = strategy.num_replicas_in_sync
    role = "chief" if cluster.is_chief else "writes nothing to the run directory"
    return Devices(
        strategy,
        f"MultiWorkerMirroredStrategy: worker {cluster.task_index} of {cluster.num_workers} "
        f"({role}), {replicas} replica(s) on {'GPUs' if gpus else 'CPUs'}{threads}",
        replicas,
        cluster.is_chief,
    )


def configure_devices(config: DeviceConfig) -> str:
    """Plan and apply the device choice with TensorFlow; returns the description line."""
    return make_strategy(config).description


def probe() -> None:
    """List the physical devices (allowed before any device choice); TensorFlow's CUDA probe,
    and whatever it prints, happens here."""
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")
