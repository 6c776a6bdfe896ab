"""Model presets and factories."""

from __future__ import annotations

import pytest

from trainways.config import ConfigError, ModelConfig
from trainways.model import PRESETS, build_metrics, build_model, register_preset


def test_tutorial_cnn_has_the_tutorial_shape_and_size():
    model = build_model(ModelConfig(), vocab_size=30_983, num_classes=46, max_len=300)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Embedding",
        "Conv1D",
        "MaxPooling1D",
        "Conv1D",
        "MaxPooling1D",
        "Flatten",
        "Dense",
    ]
    assert model.count_params() == 332_863
    # The tutorial's own summary, for its vocabulary of 30,982, showed 332,856.
    smaller = build_model(ModelConfig(), vocab_size=30_982, num_classes=46, max_len=300)
    assert smaller.count_params() == 332_856
    assert model.output_shape == (None, 46)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model preset 'rnn': choose one of cnn"):
        build_model(ModelConfig(preset="rnn"), vocab_size=10, num_classes=5, max_len=8)


def test_registering_a_preset_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_preset("cnn")(PRESETS["cnn"])


def test_metric_factory_builds_fresh_objects_with_contract_names():
    first, second = build_metrics(), build_metrics()
    assert [m.name for m in first] == ["accuracy", "top5_accuracy"]
    assert all(a is not b for a, b in zip(first, second, strict=True))
