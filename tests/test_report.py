"""The comparison report's plots and settings, on hand-made run directories (no training)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from trainways import rundir
from trainways.config import DataConfig, RunConfig, TrainConfig
from trainways.report import comparison_settings, plot_comparison

METHODS = ("fit", "loop")


@pytest.fixture
def one_epoch_runs(tmp_path):
    for method in METHODS:
        run = tmp_path / method
        run.mkdir()
        history = {
            key: [0.5] for key in ("loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy")
        }
        history["val_top5_accuracy"] = [0.7]
        rundir.write_history_csv(history, run)
        rundir.write_json(run / rundir.METRICS, {"seconds_per_epoch": [2.5]})
        config = RunConfig(
            data=DataConfig(source="/data/reuters"),
            train=TrainConfig(method=method, epochs=1, seed=11, batch_size=16),
        )
        rundir.write_json(run / rundir.CONFIG, config.to_dict())
    return tmp_path


def test_a_one_epoch_comparison_draws_visible_points_on_whole_epochs(one_epoch_runs, monkeypatch):
    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: figures.append(figure))
    try:
        plot_comparison(one_epoch_runs, METHODS)
    finally:
        for figure in figures:
            real_close(figure)
    assert len(figures) == 4
    for figure in figures:
        axes = figure.axes[0]
        assert list(axes.get_xticks()) == [1]
        assert axes.get_xlim() == (0.5, 1.5)
        # A one-point line is invisible without a marker.
        assert all(line.get_marker() not in (None, "None", "") for line in axes.get_lines())


def test_the_report_states_what_it_compares(one_epoch_runs):
    settings = comparison_settings(one_epoch_runs, METHODS)
    assert settings.startswith("Seed 11, 1 epoch(s), batch 16, data /data/reuters; written ")
    assert re.search(
        r"written \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d with trainways ", settings
    )
    assert "keras 3." in settings and "tensorflow 2." in settings
