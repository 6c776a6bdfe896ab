"""The pure parts of reporting, with no training: a History's and a classification's summaries
(:mod:`trainways.summary`), and the comparison report's table, plots, agreement and settings
(:mod:`trainways.report`) written from hand-made run directories."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from trainways import rundir
from trainways.config import DataConfig, RunConfig, TrainConfig
from trainways.report import comparison_settings, plot_comparison, write_comparison_report
from trainways.summary import best_epoch, classification_summary, summarize_history

METHODS = ("fit", "loop")

# ------------------------------------------------------------------------- History summaries


def test_the_best_epoch_is_the_highest_monitor_and_the_first_of_equals():
    history = {"val_accuracy": [0.5, 0.7, 0.6, 0.7], "accuracy": [0.9, 0.1, 0.1, 0.1]}
    assert best_epoch(history) == 1
    assert best_epoch(history, "accuracy") == 0
    with pytest.raises(KeyError):
        best_epoch(history, "val_top5_accuracy")
    with pytest.raises(ValueError, match="no epochs"):
        best_epoch({"val_accuracy": []})


def test_a_summary_names_final_and_best_epoch_figures_and_the_seconds():
    history = {"loss": [1.0, 0.6, 0.7], "val_accuracy": [0.5, 0.8, 0.75]}
    summary = summarize_history(
        history, [2.0, 1.0, 1.5004], train_seconds=4.56789, first_step_loss=1.25
    )
    assert summary["epochs"] == 3
    assert summary["final"] == {"loss": 0.7, "val_accuracy": 0.75}
    # 1-based, with every key's value at that epoch.
    assert summary["best"] == {
        "epoch": 2,
        "monitor": "val_accuracy",
        "loss": 0.6,
        "val_accuracy": 0.8,
    }
    assert summary["seconds_per_epoch"] == [2.0, 1.0, 1.5]
    assert summary["mean_seconds_per_epoch"] == 1.5
    assert summary["train_seconds"] == 4.568
    assert summary["first_step_loss"] == 1.25
    json.dumps(summary)  # JSON-ready as it is


def test_a_summary_falls_back_to_training_accuracy_and_names_no_best_without_any():
    with_accuracy = summarize_history(
        {"loss": [1.0, 0.5], "accuracy": [0.4, 0.3]}, [1.0, 1.0], train_seconds=2.0
    )
    assert with_accuracy["best"]["monitor"] == "accuracy" and with_accuracy["best"]["epoch"] == 1
    # A user's own loop may log only its loss; nor is a first-step loss invented.
    loss_only = summarize_history({"loss": [1.0]}, [], train_seconds=0.0)
    assert "best" not in loss_only and "first_step_loss" not in loss_only
    assert loss_only["mean_seconds_per_epoch"] is None and loss_only["seconds_per_epoch"] == []
    empty = summarize_history({}, [], train_seconds=0.0)
    assert empty["epochs"] == 0 and empty["final"] == {} and "best" not in empty


# ------------------------------------------------------------------- classification figures


def test_classification_figures_per_topic_and_overall():
    topics = [f"topic{i}" for i in range(6)]
    y_true = [0, 0, 1, 2, 2, 2]
    # Rows: the predicted topic has the highest probability; the true one is second for row 2.
    probabilities = np.full((6, 6), 0.01)
    for row, (predicted, second) in enumerate([(0, 1), (0, 1), (2, 1), (2, 0), (2, 0), (0, 2)]):
        probabilities[row, predicted], probabilities[row, second] = 0.6, 0.3
    figures = classification_summary(y_true, probabilities, topics)
    assert figures["accuracy"] == pytest.approx(4 / 6)
    assert figures["top5_accuracy"] == 1.0
    per_topic = figures["per_topic"]
    assert per_topic["topic0"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert per_topic["topic1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per_topic["topic2"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    # Topics absent from the labels are listed with support 0, and count as 0 in the macro F1.
    assert per_topic["topic5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert figures["macro_f1"] == pytest.approx((0.8 + 0.0 + 2 / 3) / 6)
    assert figures["weighted_f1"] == pytest.approx((2 * 0.8 + 0.0 + 3 * 2 / 3) / 6)
    matrix = figures["confusion_matrix"]
    assert len(matrix) == 6 and sum(map(sum, matrix)) == 6
    assert (matrix[0][0], matrix[1][2], matrix[2][0], matrix[2][2]) == (2, 1, 1, 2)
    json.dumps(figures)


# ----------------------------------------------------------- comparison report, hand-made runs


def _write_run(run, method, history, *, seconds, train_samples=None):
    run.mkdir()
    rundir.write_history_csv(history, run)
    summary = summarize_history(history, seconds, train_seconds=sum(seconds))
    if train_samples is not None:
        summary["train_samples"] = train_samples
    rundir.write_json(run / rundir.METRICS, summary)
    config = RunConfig(
        data=DataConfig(source="/data/reuters"),
        train=TrainConfig(method=method, epochs=len(seconds), seed=11, batch_size=16),
    )
    rundir.write_json(run / rundir.CONFIG, config.to_dict())


def _history(val_accuracy):
    n = len(val_accuracy)
    return {
        "loss": [1.0 / (e + 1) for e in range(n)],
        "accuracy": [0.5] * n,
        "top5_accuracy": [0.8] * n,
        "val_loss": [1.2] * n,
        "val_accuracy": list(val_accuracy),
        "val_top5_accuracy": [0.85, 0.9, 0.88][:n],
    }


@pytest.fixture
def one_epoch_runs(tmp_path):
    for method in METHODS:
        _write_run(tmp_path / method, method, _history([0.5]), seconds=[2.5])
    return tmp_path


@pytest.fixture
def three_epoch_runs(tmp_path):
    _write_run(tmp_path / "fit", "fit", _history([0.5, 0.7, 0.6]), seconds=[2.0, 2.0, 2.0],
               train_samples=600)  # fmt: skip
    _write_run(tmp_path / "loop", "loop", _history([0.4, 0.6, 0.65]), seconds=[4.0, 4.0, 4.0])
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


def test_the_report_tabulates_each_run_from_its_directory(three_epoch_runs):
    out = three_epoch_runs
    write_comparison_report(out, METHODS, {"fit": 812.4}, tutorial=False)
    payload = json.loads((out / rundir.COMPARISON).read_text())
    fit, loop = payload["rows"]
    assert fit["method"] == "fit" and loop["method"] == "loop"
    assert (fit["best_val_accuracy"], fit["best_epoch"], fit["final_val_accuracy"]) == (0.7, 2, 0.6)
    assert (loop["best_val_accuracy"], loop["best_epoch"]) == (0.65, 3)
    assert fit["best_val_top5_accuracy"] == 0.9 and fit["final_val_top5_accuracy"] == 0.88
    assert fit["mean_seconds_per_epoch"] == 2.0 and fit["samples_per_second"] == 300.0
    # No training-set size recorded, no peak memory measured: no figure, rather than a wrong one.
    assert loop["samples_per_second"] is None and loop["peak_memory_mb"] is None
    assert fit["peak_memory_mb"] == 812.4 and fit["epochs"] == 3
    # No weights in the runs: the agreement is not computed, and the report says so.
    assert payload["agreement"] is None and payload["baseline"] is None
    markdown = (out / rundir.REPORT_MD).read_text()
    assert "| method | best val acc (epoch) | final val acc |" in markdown
    assert "| fit | 0.7000 (2) | 0.6000 | 0.9000 | 0.8800 | 0.3333 | 2.00 | 300 | 812 |" in markdown
    assert "| loop | 0.6500 (3) | 0.6500 | 0.9000 | 0.8800 | 0.3333 | 4.00 | – | – |" in markdown
    assert "Agreement figures: not computed (one method, or different settings)." in markdown
    pngs = sorted(p.name for p in (out / rundir.PLOTS).glob("*.png"))
    assert pngs == ["accuracy.png", "loss.png", "seconds_per_epoch.png", "top5_accuracy.png"]
    assert all(f"]({rundir.PLOTS}/{png})" in markdown for png in pngs)
    page = (out / rundir.REPORT_HTML).read_text()
    # Self-contained: every curve embedded, none linked.
    assert page.count('src="data:image/png;base64,') == 4 and "plots/" not in page
    assert "<td>0.7000 (2)</td>" in page and "<td>812</td>" in page


def test_the_report_puts_the_baseline_and_the_backends_in_their_rows(three_epoch_runs):
    out = three_epoch_runs
    baseline = {
        "model": "TF-IDF + LinearSVC",
        "train_wires": 1200,
        "fit_seconds": 0.84,
        "scored_wires": 300,
        "scored_on": "validation",
        "accuracy": 0.71234,
        "macro_f1": 0.4,
    }
    state = {"methods": ["fit"], "backends": ["fit", "loop"], "baseline": baseline}
    rundir.write_json(out / rundir.COMPARE_STATE, state)
    write_comparison_report(out, METHODS, {}, tutorial=False)
    markdown = (out / rundir.REPORT_MD).read_text()
    # The runs are named after the backends here, and the first column says so.
    assert "| backend | best val acc (epoch) |" in markdown
    assert "Method `fit` on each backend, every one from the same initial weights" in markdown
    assert "| baseline | 0.7123 | 0.7123 | – | – | – | – | – | – |" in markdown
    assert (
        "fitted on the 1,200 training wires in 0.8 s and scored on the 300 validation" in markdown
    )
    assert "Agreement figures: not computed (one backend, or different settings)." in markdown
    assert json.loads((out / rundir.COMPARISON).read_text())["baseline"] == baseline
    assert "<p id='baseline'>" in (out / rundir.REPORT_HTML).read_text()


def _save_weights(run, first, final):
    """A run's weights after epoch 1 (``first_epoch.npz``) and its last checkpoint's, as a run
    would leave them, from a tiny model with the given kernels."""
    import keras

    from trainways.checkpoint import save_checkpoint, save_first_epoch_weights

    keras.backend.clear_session()  # the same variable paths in every run
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    bias = np.zeros(2, np.float32)
    model.set_weights([np.asarray(first, np.float32), bias])
    save_first_epoch_weights(run, model)
    model.set_weights([np.asarray(final, np.float32), bias])
    history = rundir.read_history(run)
    save_checkpoint(run, model, epoch=len(history["loss"]), history=history)


def test_the_report_measures_how_far_apart_the_runs_weights_are(three_epoch_runs):
    out = three_epoch_runs
    kernel = np.eye(2)
    _save_weights(out / "fit", kernel, kernel * 2)
    _save_weights(out / "loop", kernel + 0.25, kernel * 2 - 0.5)
    write_comparison_report(out, METHODS, {}, tutorial=False)
    agreement = json.loads((out / rundir.COMPARISON).read_text())["agreement"]
    assert agreement["methods"] == list(METHODS)
    assert agreement["weight_difference_after_epoch_1"] == pytest.approx(0.25)
    assert agreement["final_weight_difference"] == pytest.approx(0.5)
    assert agreement["identical_after_epoch_1"] is False and agreement["ok"] is False
    assert agreement["val_accuracy_difference"] == pytest.approx(0.1)
    names = [variable["name"] for variable in agreement["variables"]]
    assert names == ["sequential/dense/kernel", "sequential/dense/bias"]
    assert (
        "Largest weight difference between methods: 2.500e-01 after epoch 1, 5.000e-01 after the "
        "last epoch; largest per-epoch metric difference: 1.000e-01 (val_accuracy 1.000e-01)."
    ) in (out / rundir.REPORT_MD).read_text()
    # The tutorial's methods train different schedules: their weights are not compared.
    write_comparison_report(out, METHODS, {}, tutorial=True)
    assert json.loads((out / rundir.COMPARISON).read_text())["agreement"] is None
    markdown = (out / rundir.REPORT_MD).read_text()
    assert "the learning rate halved at epoch 5 for `batch` only" in markdown
