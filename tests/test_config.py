"""Configuration: validation messages and the JSON round trip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trainways.config import (
    ConfigError,
    DataConfig,
    DeviceConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sgd"}, "unknown method 'sgd': choose one of fit, batch, loop"),
        ({"epochs": 0}, "epochs must be positive, got 0"),
        ({"batch_size": -4}, "batch_size must be positive, got -4"),
        ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        ({"lr_halve_at": 0}, "lr_halve_at must be positive, got 0"),
    ],
)
def test_bad_train_config_names_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        TrainConfig(**kwargs)
    # Below the CLI, errors speak of fields: the library has no flags.
    assert "--" not in str(error.value)
    assert error.value.keys == tuple(kwargs)


def test_bad_data_config():
    with pytest.raises(ConfigError, match="max_len must be positive, got 0"):
        DataConfig(max_len=0)
    with pytest.raises(ConfigError, match="skip_top must be a whole number >= 0, got -1"):
        DataConfig(skip_top=-1)


@pytest.mark.parametrize(
    ("section", "kwargs", "message"),
    [
        (TrainConfig, {"batch_size": 2.5}, "batch_size must be a whole number, got 2.5"),
        (TrainConfig, {"epochs": "3"}, "epochs must be a whole number, got '3'"),
        (TrainConfig, {"deterministic": "yes"}, "deterministic must be true or false, got 'yes'"),
        (TrainConfig, {"learning_rate": "0.1"}, "learning_rate must be a number, got '0.1'"),
        (TrainConfig, {"seed": True}, "seed must be a whole number or null, got True"),
        (DataConfig, {"max_len": 40.0}, "max_len must be a whole number, got 40.0"),
        (ModelConfig, {"preset": 5}, "preset must be a string, got 5"),
        (
            DeviceConfig,
            {"strategy": "mirrored", "gpus": [0, "1"]},
            "gpus must be a list of whole numbers or null, got \\[0, '1'\\]",
        ),
    ],
)
def test_a_wrong_typed_value_names_its_field(section, kwargs, message):
    # What a hand-edited config.json or a --config file may say: one line, not a traceback.
    with pytest.raises(ConfigError, match=message) as error:
        section(**kwargs)
    assert error.value.keys == tuple(kwargs)[-1:]
    raw = {"train": {}, "data": {}, "model": {}, "device": {}}
    name = {TrainConfig: "train", DataConfig: "data", ModelConfig: "model"}.get(section, "device")
    raw[name] = kwargs
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(raw)


def test_json_and_numpy_values_of_the_right_kind_are_taken():
    import numpy as np

    config = TrainConfig(learning_rate=1, seed=np.int64(3), label_smoothing=np.float32(0.5))
    assert (config.learning_rate, config.seed, config.label_smoothing) == (1, 3, 0.5)
    assert type(config.seed) is int and type(config.label_smoothing) is float
    devices = RunConfig.from_dict({"device": {"strategy": "mirrored", "gpus": [0, 1]}}).device
    assert devices.gpus == (0, 1)


def test_from_dict_refuses_a_section_that_is_not_an_object():
    with pytest.raises(ConfigError, match="config section 'train' must be a JSON object"):
        RunConfig.from_dict({"train": [3]})
    with pytest.raises(ConfigError, match=r"made by trainways\.Loop"):
        RunConfig.from_dict({"loop": "x"})


def test_round_trip_through_json():
    config = RunConfig(
        data=DataConfig(source="/x", num_words=100),
        train=TrainConfig(method="loop", epochs=3, seed=7, lr_halve_at=2),
    )
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_rejects_unknown_keys():
    raw = RunConfig().to_dict()
    raw["train"]["epochz"] = 3
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) \['epochz'\] in config section 'train'"
    ):
        RunConfig.from_dict(raw)


def test_configs_are_frozen():
    config = TrainConfig()
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


def test_the_cli_names_the_flag_of_a_bad_field(capsys):
    from trainways.cli import main

    assert main(["train", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "trainways train: error: batch_size must be positive, got 0 (--batch-size)\n"


def _non_default(opt):
    """A valid value other than the default for each option of the table."""
    special = {
        "data.source": "/somewhere/reuters.npz",
        "model.preset": "/code/model.py:build",
        "model.initial_weights": "/code/initial.weights.h5",
        "train.dense_gradients": None,  # excludes xla_optimizer, set here
        "train.loss": None,  # a margin loss excludes label_smoothing, set here
        "train.label_smoothing": 0.1,
        "train.weight_decay": 0.01,
        "train.stop_on": "val_accuracy",
        "train.tracking": "http://127.0.0.1:5000",
        "data.validation_split": 0.2,
        "model.dropout": 0.25,
        "train.method": "loop",
        "train.step": "/code/step.py:train_step",
        "train.test_step": "/code/step.py:test_step",
        "train.precision": "mixed_bfloat16",
        "train.steps_per_execution": "epoch",
        "device.strategy": "mirrored",
        "device.backend": "jax",
        "device.cpu_devices": 2,
        "device.gpus": None,  # excludes cpu_devices; checked on its own below
        "device.gpu": None,
        "device.gpu_memory_limit": None,
        "device.cpu": True,
        "device.workers": None,
        "device.task_index": None,
    }
    if opt.path in special:
        return special[opt.path]
    if opt.parse is None:
        return True
    return 3 if opt.default in (None, 0, 1) else opt.default + 1


def _argv(values):
    from trainways.config import options

    argv = []
    for opt in options():
        value = values.get(opt.path)
        if value is None:
            continue
        argv += [opt.flag] if value is True else [opt.flag, str(value)]
    return argv


def test_every_option_of_the_table_reaches_its_field():
    from trainways.config import options
    from trainways.parser import build_parser, config_from_args

    values = {opt.path: _non_default(opt) for opt in options()}
    config = config_from_args(build_parser().parse_args(["train", *_argv(values)]))
    for path, value in values.items():
        section, _, key = path.partition(".")
        if value is not None:
            assert getattr(getattr(config, section), key) == value, path
    other = {"device.strategy": "multiworker", "device.workers": "h:1,h:2", "device.task_index": 1}
    config = config_from_args(build_parser().parse_args(["train", *_argv(other)]))
    assert (config.device.workers, config.device.task_index) == (("h:1", "h:2"), 1)


def test_config_file_with_flags_over_it(tmp_path):
    from trainways.parser import build_parser, config_from_args
    from trainways.rundir import write_json

    saved = RunConfig(train=TrainConfig(method="batch", epochs=4, seed=9, lr_halve_at=2))
    write_json(tmp_path / "config.json", saved.to_dict())
    args = build_parser().parse_args(
        ["train", "--config", str(tmp_path / "config.json"), "--epochs", "2"]
    )
    config = config_from_args(args)
    assert config.train == TrainConfig(method="batch", epochs=2, seed=9, lr_halve_at=2)
    assert config.data == saved.data and config.device == saved.device


def test_the_configuration_and_the_parser_import_no_framework():
    # --help, `data info` and the library's checks answer before any backend starts.
    code = (
        "import sys, trainways.config, trainways.parser; "
        "print(sorted({'keras', 'tensorflow', 'jax', 'torch', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
