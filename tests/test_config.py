"""Configuration: validation messages and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from trainways.config import ConfigError, DataConfig, RunConfig, TrainConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sgd"}, "unknown method 'sgd': choose one of fit, batch, loop"),
        ({"epochs": 0}, "epochs must be positive, got 0: pass --epochs"),
        ({"batch_size": -4}, "batch_size must be positive, got -4: pass --batch-size"),
        ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        ({"lr_halve_at": 0}, "lr_halve_at must be positive, got 0"),
    ],
)
def test_bad_train_config_names_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_bad_data_config():
    with pytest.raises(ConfigError, match="max_len must be positive, got 0"):
        DataConfig(max_len=0)
    with pytest.raises(ConfigError, match="skip_top must be >= 0, got -1"):
        DataConfig(skip_top=-1)


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
