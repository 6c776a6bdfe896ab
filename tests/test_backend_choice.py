"""Choosing a Keras backend and its devices, and what each backend refuses.

Every refusal is a one-line error, exit status 2, before any file is written (a child process:
this pytest process runs Keras on TensorFlow). The device planning (the variables each backend
reads when it starts) is pure Python, tested here without a GPU.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from trainways.cli import main
from trainways.config import ConfigError, DeviceConfig

from helpers import train_args

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name) is None,
            reason=f"{name} is not installed: pip install -e '.[{name}]'",
        ),
    )
    for name in ("jax", "torch")
]


def options(backend: str) -> tuple[str, ...]:
    return ("--max-len", "60", "--backend", backend)


REFUSED = {
    "jax": [
        (("--xla-optimizer",), "on JAX the whole step is already one XLA program"),
        (("--gpu-memory-limit", "1000"), "gpu_memory_limit 1000 is TensorFlow's"),
        (
            ("--step", "examples/tutorial_step.py:train_step"),
            "must take (model, state, x, y) on the jax backend",
        ),
        (("--step", "{keeps}:train_step"), "@keeps"),
    ],
    "torch": [
        (("--strategy", "mirrored", "--cpu-devices", "2"), "not supported on the PyTorch backend"),
        (("--xla",), "PyTorch runs eagerly: drop xla"),
        (("--steps-per-execution", "2"), "Keras runs one step per call on PyTorch"),
        (("--gpu-memory-limit", "1000"), "is not supported on the PyTorch backend"),
        (
            ("--step", "examples/tutorial_step_jax.py:train_step"),
            "must take (model, x, y) on the torch backend",
        ),
        (("--step", "examples/tutorial_step.py:train_step"), "step failed on the first batch"),
    ],
}


@pytest.mark.parametrize(
    ("backend", "extra", "message"),
    [
        pytest.param(backend.values[0], extra, message, marks=backend.marks)
        for backend in BACKENDS
        for extra, message in REFUSED[backend.values[0]]
    ],
)
def test_what_a_backend_does_not_support_is_refused_in_one_line(
    backend, extra, message, corpus, tmp_path
):
    out = tmp_path / "run"
    keeps = tmp_path / "keeps.py"  # a JAX step that declares a second optimizer
    keeps.write_text(
        "import keras\nfrom trainways.steps import keeps\n\n"
        "@keeps(keras.optimizers.SGD())\ndef train_step(model, state, x, y):\n    pass\n"
    )
    extra = [arg.format(keeps=keeps) for arg in extra]
    argv = train_args(corpus, out, "loop", 1, *options(backend), *extra)
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not out.exists()


def test_a_backend_other_than_the_running_one_is_refused_in_this_process(corpus, tmp_path, capsys):
    assert main(train_args(corpus, tmp_path / "run", "fit", 1, *options("jax"))) == 2
    assert "Keras already runs on tensorflow in this process" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_backend_that_is_not_installed_names_its_install_command(monkeypatch):
    from trainways import backends
    from trainways.config import ConfigError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    install = r"pip install -e '\.\[jax\]'"
    with pytest.raises(ConfigError, match=f"backend jax is not installed: {install}"):
        backends.select("jax")


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (DeviceConfig(), {"KERAS_TORCH_DEVICE": "cuda:0"}),
        (DeviceConfig(gpu=1), {"KERAS_TORCH_DEVICE": "cuda:1"}),
        (DeviceConfig(cpu=True), {"KERAS_TORCH_DEVICE": "cpu"}),
    ],
)
def test_pytorch_is_put_on_the_device_asked_for_before_keras_starts(device, expected):
    from trainways.backends.torch.environment import plan_environment

    assert plan_environment(device, gpu_count=2) == expected


def test_pytorch_trains_on_the_cpu_where_there_is_no_gpu_and_refuses_a_missing_one():
    from trainways.backends.torch.environment import plan_environment

    assert plan_environment(DeviceConfig(gpu=3), gpu_count=0) == {"KERAS_TORCH_DEVICE": "cpu"}
    with pytest.raises(ConfigError, match="gpu 3: this machine has 2 GPU"):
        plan_environment(DeviceConfig(gpu=3), gpu_count=2)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (DeviceConfig(), {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
        (
            DeviceConfig(cpu=True),
            {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_PLATFORMS": "cpu"},
        ),
        (
            DeviceConfig(gpu=2),
            {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "CUDA_VISIBLE_DEVICES": "2"},
        ),
    ],
)
def test_jax_sees_the_device_asked_for_and_takes_memory_as_it_needs_it(device, expected):
    from trainways.backends.jax.environment import environment

    assert environment(device) == expected


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch")
def test_select_sets_the_backends_device_before_keras_starts():
    # In a child: Keras's PyTorch backend reads its device once, when Keras is imported.
    code = (
        "from trainways.backends import select\n"
        "from trainways.config import DeviceConfig\n"
        "select('torch', DeviceConfig(cpu=True))\n"
        "import keras\n"
        "print(keras.backend.backend(), keras.ops.zeros(()).device)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["torch", "cpu"]


@pytest.mark.parametrize("backends", ["tensorflow,jax", "jax,tensorflow"])
def test_compare_backends_refuses_a_step_a_backend_cannot_run_before_any_trains(
    backends, corpus, tmp_path, capsys
):
    out = tmp_path / "compare"
    argv = ["compare", "--backends", backends, "--methods", "loop", "--data", str(corpus)]
    step = Path(__file__).resolve().parents[1] / "examples" / "tutorial_step.py"
    argv += ["--step", f"{step}:train_step", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "must take (model, state, x, y) on the jax backend" in err
    assert err.count("\n") == 1, err
    assert not out.exists()
