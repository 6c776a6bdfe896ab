"""How far apart the methods are: the arithmetic, and ``trainways agree`` on the real data.

The 10-epoch agreement of the three methods with the default settings is asserted on the shared
training in test_realdata.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainways.agreement import METRIC_TOLERANCE, WEIGHT_TOLERANCE, compare, format_agreement
from trainways.cli import main


def _weights(delta: float = 0.0):
    return [("dense/kernel", np.ones((2, 2), np.float32) + delta), ("dense/bias", np.zeros(2))]


def _history(shift: float = 0.0):
    return {"loss": [1.0, 0.5], "val_accuracy": [0.5 + shift, 0.6]}


def test_identical_results_agree_bitwise():
    agreement = compare(
        {m: _weights() for m in ("fit", "batch", "loop")},
        {m: _weights() for m in ("fit", "batch", "loop")},
        {m: _history() for m in ("fit", "batch", "loop")},
    )
    assert agreement.ok and agreement.identical
    assert agreement.weight_difference == 0.0 and agreement.val_accuracy_difference == 0.0
    assert "AGREE: weights after epoch 1 differ by at most 0.000e+00" in format_agreement(agreement)
    assert "bitwise identical" in format_agreement(agreement)


def test_largest_pairwise_difference_is_reported_per_variable_and_epoch():
    agreement = compare(
        {"fit": _weights(), "batch": _weights(2e-6), "loop": _weights(-1e-6)},
        {"fit": _weights(), "batch": _weights(0.1), "loop": _weights()},
        {"fit": _history(), "batch": _history(0.001), "loop": _history(-0.002)},
    )
    kernel = dict((name, (first, last)) for name, first, last in agreement.variables)
    assert kernel["dense/kernel"][0] == pytest.approx(3e-6, rel=0.05)  # float32 spacing near 1
    assert kernel["dense/kernel"][1] == pytest.approx(0.1, rel=1e-3)
    assert kernel["dense/bias"] == (0.0, 0.0)
    assert agreement.epochs[0]["val_accuracy"] == pytest.approx(0.003)
    assert agreement.epochs[1]["val_accuracy"] == 0.0
    assert agreement.ok and not agreement.identical


@pytest.mark.parametrize(
    ("weight_delta", "metric_shift"),
    [(2 * WEIGHT_TOLERANCE, 0.0), (0.0, 2 * METRIC_TOLERANCE)],
)
def test_beyond_tolerance_disagrees(weight_delta, metric_shift):
    agreement = compare(
        {"fit": _weights(), "loop": _weights(weight_delta)},
        {"fit": _weights(), "loop": _weights(weight_delta)},
        {"fit": _history(), "loop": _history(metric_shift)},
    )
    assert not agreement.ok
    assert format_agreement(agreement).splitlines()[-1].startswith("DISAGREE")
    assert agreement.to_dict()["ok"] is False


def test_mismatched_runs_are_refused():
    with pytest.raises(ValueError, match="different variables"):
        compare({"fit": _weights(), "loop": _weights()[:1]}, {}, {})
    with pytest.raises(ValueError, match="different keys or epoch counts"):
        compare(
            {"fit": _weights(), "loop": _weights()},
            {"fit": _weights(), "loop": _weights()},
            {"fit": _history(), "loop": {"loss": [1.0], "val_accuracy": [0.5]}},
        )


# ------------------------------------------------------------------------ on the real data


@pytest.mark.realdata
def test_agree_with_the_float32_speed_levers_on_real_data(
    reuters_dir, tmp_path, capsys, monkeypatch
):
    # Whole-epoch executions and the XLA optimizer: the three methods still agree.
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    report = tmp_path / "agree.json"
    argv = ["agree", "--epochs", "1", "--seed", "3", "--data", str(reuters_dir), "--quiet"]
    levers = ["--steps-per-execution", "epoch", "--xla-optimizer"]
    status = main([*argv, "--json", str(report), *levers])
    out = capsys.readouterr().out
    assert status == 0, out
    figures = json.loads(report.read_text())
    assert figures["methods"] == ["fit", "batch", "loop"] and figures["ok"] is True
    assert figures["weight_difference_after_epoch_1"] <= WEIGHT_TOLERANCE
    assert figures["val_accuracy_difference"] <= METRIC_TOLERANCE
    assert "embedding/embeddings" in out and out.strip().splitlines()[-1].startswith("AGREE")


@pytest.mark.realdata
def test_fit_and_loop_agree_exactly_in_mixed_bfloat16(real_reuters):
    # The batch method is left out: train_on_batch traces its first graph for the concrete
    # batch shape, whose bfloat16 kernels round differently (see the README).
    from trainways.config import RunConfig, TrainConfig
    from trainways.measure import measure

    train = TrainConfig(epochs=1, seed=3, steps_per_execution="epoch", precision="mixed_bfloat16")
    agreement, _ = measure(RunConfig(train=train), real_reuters, methods=("fit", "loop"))
    assert agreement.identical
