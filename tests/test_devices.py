"""Device choice, tested without a GPU through a stand-in for ``tf.config``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainways.backends.tensorflow import devices as devices_module
from trainways.backends.tensorflow.devices import (
    DevicePlan,
    apply_plan,
    apply_threads,
    plan_devices,
)
from trainways.config import ConfigError, DeviceConfig

GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


def test_no_gpu_trains_on_cpu_and_says_so():
    assert plan_devices(DeviceConfig(), []).description == "CPU (no GPU found)"
    plan = plan_devices(DeviceConfig(gpu=1), [])
    assert plan.gpu is None and "gpu 1 ignored" in plan.description


def test_cpu_flag_hides_gpus():
    assert plan_devices(DeviceConfig(cpu=True), GPUS) == DevicePlan(
        None, None, "CPU (GPUs hidden by cpu)"
    )


def test_chosen_gpu_with_memory_growth_or_limit():
    plan = plan_devices(DeviceConfig(gpu=1), GPUS)
    assert (plan.gpu, plan.memory_limit_mb) == (1, None)
    assert "GPU 1" in plan.description and "memory growth" in plan.description
    capped = plan_devices(DeviceConfig(gpu=0, gpu_memory_limit=2048), GPUS)
    assert (capped.gpu, capped.memory_limit_mb) == (0, 2048)
    assert "2048 MB" in capped.description
    assert plan_devices(DeviceConfig(), GPUS).gpu == 0


def test_missing_gpu_index_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"gpu 2: this machine has 2 GPU\(s\), indices 0\.\.1"):
        plan_devices(DeviceConfig(gpu=2), GPUS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpu": -1}, "gpu must be a GPU index >= 0, got -1"),
        ({"gpu_memory_limit": 0}, "gpu_memory_limit must be positive, got 0"),
        ({"cpu": True, "gpu": 0}, "cpu hides all GPUs"),
        ({"intra_op_threads": -1}, "intra_op_threads must be a whole number >= 0, got -1"),
        ({"strategy": "ring"}, "unknown strategy 'ring': choose one of default, mirrored"),
        ({"gpus": (0, 1)}, "gpus 0,1 needs strategy mirrored or multiworker"),
        ({"strategy": "mirrored", "gpus": (0, 0)}, "gpus must list distinct GPU indices"),
        ({"cpu_devices": 2}, "cpu_devices 2 splits the CPU for strategy mirrored"),
        ({"strategy": "mirrored", "cpu_devices": 0}, "cpu_devices must be positive, got 0"),
        ({"strategy": "mirrored", "gpu": 1}, "set gpus, not gpu"),
        ({"workers": ("a:1",), "task_index": 0}, "workers needs strategy multiworker"),
        (
            {"strategy": "multiworker", "workers": ("a:1", "b:2"), "task_index": 2},
            "task_index must be this worker's index in workers, 0..1, got 2",
        ),
        ({"strategy": "multiworker", "workers": ("a",), "task_index": 0}, "host:port"),
        ({"task_index": 1}, "task_index goes with workers"),
    ],
)
def test_bad_device_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DeviceConfig(**kwargs)


class FakeTFConfig:
    """Records the calls ``apply_plan`` makes on ``tf.config``."""

    LogicalDeviceConfiguration = staticmethod(lambda memory_limit: ("limit", memory_limit))

    def __init__(self, gpus, fail=False):
        self.gpus = gpus
        self.calls = []
        self.fail = fail
        self.experimental = SimpleNamespace(set_memory_growth=self._growth)
        self.threading = SimpleNamespace(
            set_intra_op_parallelism_threads=lambda n: self._threads("intra", n),
            set_inter_op_parallelism_threads=lambda n: self._threads("inter", n),
        )

    def _threads(self, kind, n):
        if self.fail:
            raise RuntimeError("Intra op parallelism cannot be modified after initialization.")
        self.calls.append((kind, n))

    def list_physical_devices(self, kind):
        return list(self.gpus) if kind == "GPU" else ["CPU"]

    def set_visible_devices(self, devices, kind):
        if self.fail:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.calls.append(("visible", list(devices), kind))

    def set_logical_device_configuration(self, device, configs):
        self.calls.append(("logical", device, configs))

    def _growth(self, device, enabled):
        self.calls.append(("growth", device, enabled))


def test_apply_plan_sets_one_gpu_with_growth():
    fake = FakeTFConfig(GPUS)
    apply_plan(plan_devices(DeviceConfig(gpu=1), GPUS), fake)
    assert fake.calls == [("visible", [GPUS[1]], "GPU"), ("growth", GPUS[1], True)]


def test_apply_plan_caps_memory():
    fake = FakeTFConfig(GPUS)
    apply_plan(plan_devices(DeviceConfig(gpu=0, gpu_memory_limit=512), GPUS), fake)
    assert fake.calls == [("visible", [GPUS[0]], "GPU"), ("logical", GPUS[0], [("limit", 512)])]


def test_apply_plan_cpu_hides_gpus_and_is_a_no_op_without_them():
    fake = FakeTFConfig(GPUS)
    apply_plan(plan_devices(DeviceConfig(cpu=True), GPUS), fake)
    assert fake.calls == [("visible", [], "GPU")]
    none = FakeTFConfig([])
    apply_plan(plan_devices(DeviceConfig(), []), none)
    assert none.calls == []


def test_apply_plan_after_initialisation_is_a_clear_error():
    with pytest.raises(ConfigError, match="choose devices before TensorFlow runs anything"):
        apply_plan(plan_devices(DeviceConfig(gpu=0), GPUS), FakeTFConfig(GPUS, fail=True))


_DESCRIBE = """
import json, sys
import tensorflow as tf
from trainways.backends.tensorflow.devices import configure_devices
from trainways.config import DeviceConfig
description = configure_devices(DeviceConfig(**json.loads(sys.argv[1])))
gpus = [d.name for d in tf.config.get_visible_devices("GPU")]
print(json.dumps({"description": description, "visible_gpus": gpus,
                  "physical_gpus": len(tf.config.list_physical_devices("GPU"))}))
"""


def _describe(**config) -> dict:
    # A fresh process: devices can only be chosen before TensorFlow has run anything.
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _DESCRIBE, json.dumps(config)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_configure_devices_on_this_machine_says_what_it_chose():
    default, cpu = _describe(), _describe(cpu=True)
    if default["physical_gpus"]:
        assert default["description"].startswith("GPU 0 (")
        assert len(default["visible_gpus"]) == 1
    else:
        # (then the thread pools auto chose, if any: this machine's core count decides)
        assert default["description"].startswith("CPU (no GPU found)")
        assert default["visible_gpus"] == []
    assert cpu["description"].startswith("CPU (GPUs hidden by cpu)") and cpu["visible_gpus"] == []


def test_thread_pools_are_set_as_asked_and_zero_leaves_them_to_tensorflow():
    fake = FakeTFConfig([])
    assert apply_threads(DeviceConfig(intra_op_threads=0, inter_op_threads=0), fake) == ""
    assert fake.calls == []
    note = apply_threads(DeviceConfig(intra_op_threads=1, inter_op_threads=2), fake)
    assert fake.calls == [("intra", 1), ("inter", 2)]
    assert note == ", threads: 1 intra-op / 2 inter-op"


@pytest.mark.parametrize(
    ("cores", "expected"), [(2, [("intra", 1), ("inter", 2)]), (1, []), (8, [])]
)
def test_auto_thread_pools_are_one_thread_per_op_two_at_a_time_on_two_cores_only(
    cores, expected, monkeypatch
):
    # Measured faster on 2 cores only (benchmarks/RESULTS.md); elsewhere TensorFlow's choice.
    monkeypatch.setattr(devices_module, "_usable_cores", lambda: cores)
    fake = FakeTFConfig([])
    note = apply_threads(DeviceConfig(), fake)
    assert fake.calls == expected
    assert ("(auto)" in note) == bool(expected)


def test_auto_thread_pools_keep_tensorflows_once_it_has_started(monkeypatch):
    monkeypatch.setattr(devices_module, "_usable_cores", lambda: 2)
    assert apply_threads(DeviceConfig(), FakeTFConfig([], fail=True)) == ""


def test_thread_pools_after_initialisation_are_a_clear_error():
    with pytest.raises(ConfigError, match="set them before TensorFlow runs anything"):
        apply_threads(DeviceConfig(intra_op_threads=1), FakeTFConfig([], fail=True))
