"""Devices on JAX: one device, or Keras's ``DataParallel`` over several.

``--strategy mirrored`` is a :class:`keras.distribution.DataParallel` over this machine's devices
(``--gpus``, or ``--cpu-devices N`` logical CPU devices); ``--strategy multiworker`` joins the
processes of ``--workers`` with :func:`keras.distribution.initialize` (``jax.distributed`` on
CPU collectives through Gloo) and spreads the data over every device of every process. Either way
variables are replicated and each batch is split along its first axis.

JAX fixes its devices when its backend starts (the first ``jax.devices()``), so :func:`probe`
leaves it unstarted and :func:`make_strategy` sets the device count and the cluster first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trainways.backends import Devices, OneDevice
from trainways.config import ConfigError, DeviceConfig


@dataclass(frozen=True)
class DataParallelStrategy:
    """A Keras ``DataParallel`` distribution seen as a strategy (what ``run`` enters).

    Attributes:
        distribution: The distribution; its mesh's one axis is the batch axis.
    """

    distribution: Any

    @property
    def num_replicas_in_sync(self) -> int:
        return int(self.distribution.device_mesh.devices.size)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Make the distribution current: Keras creates variables replicated in it, and ``fit``
        and ``train_on_batch`` split their batches by it.

        ``keras.backend.clear_session`` (the run calls it after its checks) forgets the global
        distribution, so the run enters this scope again around building and training.
        """
        import keras

        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(self.distribution)
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)


def _data_parallel(devices: list[Any]) -> Any:
    """A ``DataParallel`` over ``devices`` that replicates a batch its devices cannot split.

    A batch whose size does not divide by the number of devices (an epoch's last) cannot be
    sharded along the batch axis; on one process it is then placed whole on every device: the
    step computes the same update, without the speed-up, where an error would stop the run.
    ``fit`` takes one layout per pass from the pass's first batch, so this serves ``batch`` and
    ``loop``; see docs/backends.md. Across processes every batch must divide (each process
    feeds its own part).
    """
    import keras

    class DataParallel(keras.distribution.DataParallel):
        def get_data_layout(self, data_shape: Any) -> Any:
            size = int(self.device_mesh.devices.size)
            if self.num_processes == 1 and data_shape and data_shape[0] % size:
                return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
            return super().get_data_layout(data_shape)

        def distribute_dataset(self, dataset: Any) -> Any:
            """Each process's part of every batch (``fit``'s datasets).

            Keras's own sharding rebatches and deals whole pieces out to the processes in
            turn, which misaligns them at an epoch's short last batch; every process here
            builds the same global batches, so each takes the same slice of each instead.
            """
            if self.num_processes == 1:
                return dataset
            return dataset.map(
                lambda x, y: _process_part(x, y, self.num_processes, self._process_id)
            )

    return DataParallel(devices=devices)


def _process_part(x: Any, y: Any, processes: int, index: int) -> tuple[Any, Any]:
    """Process ``index``'s equal part of a global ``tf.data`` batch ``(x, y)``.

    A batch that does not divide by ``processes`` fails here, in ``tf.data``, with a message
    saying so, rather than as a shape mismatch between processes inside a step.
    """
    import tensorflow as tf

    size = tf.shape(y)[0]
    check = tf.debugging.assert_equal(
        size % processes,
        0,
        message=f"a batch does not divide by {processes} processes: choose batch_size so that "
        "every batch, an epoch's last included, does",
    )
    with tf.control_dependencies([check]):
        part = size // processes
    return x[index * part : (index + 1) * part], y[index * part : (index + 1) * part]


def _local_devices(config: DeviceConfig) -> tuple[list[Any], str]:
    """This machine's devices for ``mirrored``, and how to describe them."""
    import jax

    if config.cpu_devices:
        count = jax.local_device_count("cpu")
        if count != config.cpu_devices:
            raise ConfigError(
                f"cpu_devices {config.cpu_devices}: JAX already started with {count} CPU "
                "device(s) in this process; choose the devices before JAX runs anything",
                keys=("cpu_devices",),
            )
        return jax.local_devices(backend="cpu"), f"{config.cpu_devices} CPU device(s)"
    try:
        gpus = [] if config.cpu else jax.local_devices(backend="gpu")
    except RuntimeError:  # no GPU backend in this jaxlib
        gpus = []
    if not gpus:
        cpus = jax.local_devices(backend="cpu")
        return cpus, f"{len(cpus)} CPU device(s) (no GPU found)"
    indices = list(config.gpus) if config.gpus is not None else list(range(len(gpus)))
    if any(i >= len(gpus) for i in indices):
        raise ConfigError(
            f"gpus {','.join(map(str, indices))}: this machine has {len(gpus)} GPU(s), "
            f"indices 0..{len(gpus) - 1}",
            keys=("gpus",),
        )
    return [gpus[i] for i in indices], f"GPUs {','.join(map(str, indices))}"


def _start_cluster(config: DeviceConfig) -> None:
    """Join the processes of ``workers`` (worker 0 coordinates, at its address).

    Raises:
        ConfigError: No ``workers`` list, ``gpus`` given, or the cluster cannot be joined.
    """
    import keras

    if config.workers is None:
        raise ConfigError(
            "strategy multiworker on JAX needs workers (host:port,host:port, worker 0 first) "
            "and task_index: $TF_CONFIG is TensorFlow's",
            keys=("workers", "task_index"),
        )
    if config.gpus is not None:
        raise ConfigError(
            f"gpus {','.join(map(str, config.gpus))} with strategy multiworker on JAX: every "
            "process takes all its GPUs; limit them with CUDA_VISIBLE_DEVICES instead",
            keys=("gpus",),
        )
    try:
        keras.distribution.initialize(
            ",".join(config.workers), len(config.workers), config.task_index
        )
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"workers {','.join(config.workers)}: cannot join the cluster as worker "
            f"{config.task_index} ({first}); start every worker with the same workers, before "
            "JAX runs anything",
            keys=("workers", "task_index"),
        ) from None


def make_strategy(config: DeviceConfig) -> Devices:
    """Choose the devices and the distribution; call before JAX runs anything.

    ``default``: one device, the first GPU if there is one (and ``cpu`` is off), else the CPU.
    ``mirrored``: ``DataParallel`` over this machine's devices. ``multiworker``: the cluster of
    ``workers`` joined, ``DataParallel`` over every process's devices.

    Raises:
        ConfigError: The devices asked for do not exist, JAX started before they were chosen,
            or the cluster cannot be joined.
    """
    import jax

    if config.strategy == "default":
        device = jax.devices()[0]
        return Devices(OneDevice(), f"{device.platform.upper()} ({device}, JAX {jax.__version__})")
    if config.strategy == "mirrored":
        if config.cpu_devices:
            _set_cpu_devices(config.cpu_devices)
        devices, what = _local_devices(config)
        chief, role = True, ""
    else:
        _start_cluster(config)
        devices = jax.devices()
        chief = jax.process_index() == 0
        what = (
            f"{jax.process_count()} processes ({jax.device_count()} {devices[0].platform.upper()} "
            f"device(s)); this is worker {jax.process_index()}"
        )
        role = " (chief)" if chief else ", which writes nothing to the run directory"
    strategy = DataParallelStrategy(_data_parallel(devices))
    replicas = strategy.num_replicas_in_sync
    return Devices(
        strategy,
        f"DataParallel over {what}{role}, {replicas} replica(s), JAX {jax.__version__}",
        replicas,
        chief,
    )


def _set_cpu_devices(count: int) -> None:
    """Split the host into ``count`` CPU devices for JAX (``jax_num_cpu_devices``, JAX's option
    for what ``XLA_FLAGS=--xla_force_host_platform_device_count`` does), if JAX has not started.

    A started JAX keeps its devices: :func:`_local_devices` then says so if the count differs.
    """
    import jax

    with contextlib.suppress(RuntimeError):  # JAX already started: checked by the caller
        jax.config.update("jax_num_cpu_devices", count)


def is_chief(config: DeviceConfig) -> bool:
    """Whether this process writes the run directory: worker 0 of ``multiworker``, else always."""
    return config.strategy != "multiworker" or not config.task_index


def probe() -> None:
    """Start TensorFlow, whose ``tf.data`` makes the batches for now, so that its start-up
    messages come here; import JAX without starting its backend, whose devices
    :func:`make_strategy` chooses."""
    import jax  # noqa: F401
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # TensorFlow's CUDA probe, and what it prints
