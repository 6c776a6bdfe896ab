"""``trainways compare``: runs side by side, the report, and the report in a real browser.

The module's comparison trains each method in a real child process, as ``compare`` always does,
and logs to MLflow (``--mlflow``: a SQLite store beside it) as a parent run with one nested run
per method;
the tests of resuming and of the tutorial settings run the children's ``trainways train`` in this
process instead (``in_process_children``): the same arguments, without three interpreter starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from trainways.cli import main

from helpers import write_corpus

ARGS = ["--epochs", "2", "--max-len", "40", "--seed", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Children inherit the environment: one cache for the whole module.
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("sgml"))


@pytest.fixture(scope="module")
def comparison(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "all"
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        argv = ["compare", "--data", str(corpus), "--out", str(out), *ARGS, "--mlflow"]
        assert main(argv) == 0
    finally:
        mp.undo()
    return out


@pytest.fixture
def in_process_children(monkeypatch):
    """``compare``'s children run ``trainways.cli.main(argv)`` here; the argv are recorded."""
    import keras

    from trainways import compare

    argvs: list[list[str]] = []

    def run_child(argv: list[str]) -> tuple[int, float]:
        argvs.append(argv)
        keras.backend.clear_session()  # as in a new process: the same variable paths
        return main(argv), 0.0

    monkeypatch.setattr(compare, "run_child", run_child)
    return argvs


def test_compare_trains_each_method_into_its_own_run(comparison):
    for method in ("fit", "batch", "loop"):
        status = json.loads((comparison / method / "status.json").read_text())
        assert status["state"] == "completed"
    report = json.loads((comparison / "comparison.json").read_text())
    assert [row["method"] for row in report["rows"]] == ["fit", "batch", "loop"]
    for row in report["rows"]:
        assert row["epochs"] == 2 and row["peak_memory_mb"] > 100
        assert row["samples_per_second"] > 0 and 1 <= row["best_epoch"] <= 2
    # Same seed and configuration: the methods agree, here to the last bit of every weight.
    assert report["agreement"]["weight_difference_after_epoch_1"] == 0.0
    assert report["agreement"]["val_accuracy_difference"] <= 0.005
    for name in ("loss", "accuracy", "top5_accuracy", "seconds_per_epoch"):
        for suffix in ("png", "svg"):
            assert (comparison / "plots" / f"{name}.{suffix}").stat().st_size > 1000
    markdown = (comparison / "report.md").read_text()
    assert markdown.count("\n| fit |") == 1 and "![loss](plots/loss.png)" in markdown
    # The bar to beat, fitted on the same wires and scored on the same validation wires.
    baseline = report["baseline"]
    assert (baseline["train_wires"], baseline["scored_wires"], baseline["scored_on"]) == (
        115,
        29,
        "test",
    )
    assert f"\n| baseline | {baseline['accuracy']:.4f} | {baseline['accuracy']:.4f} |" in markdown


def test_compare_logs_a_parent_mlflow_run_with_a_nested_run_per_method(comparison):
    from mlflow import MlflowClient

    store = f"sqlite:///{comparison.parent / 'mlflow.db'}"  # beside the comparison
    parent = json.loads((comparison / "mlflow.json").read_text())
    assert parent["tracking_uri"] == store
    client = MlflowClient(store)
    run = client.get_run(parent["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["compare.methods"] == '["fit", "batch", "loop"]'
    logged = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert {"report.md", "report.html", "comparison.json", "plots"} <= logged
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert sorted(child.data.params["method"] for child in children) == ["batch", "fit", "loop"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.info.run_name == child.data.params["method"]  # the run directory's name
        assert json.loads((comparison / child.info.run_name / "mlflow.json").read_text()) == {
            "tracking_uri": store,
            "run_id": child.info.run_id,
        }
        assert {"loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(child.data.metrics)


def test_report_html_renders_in_headless_chromium(comparison, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (comparison / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    table = dom.split('<table id="results">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 5  # the header, one row per method and the baseline's
    assert "<td>baseline</td>" in table and 'id="baseline"' in dom
    assert dom.count("<img") == 4
    assert dom.count('data-loaded="1"') == 4, "an embedded image did not decode"


def test_resume_continues_an_interrupted_comparison(corpus, tmp_path, in_process_children):
    out = tmp_path / "cmp"
    assert (
        main(["compare", "--data", str(corpus), "--out", str(out), "--methods", "fit,loop", *ARGS])
        == 0
    )
    fit_model = (out / "fit" / "model.keras").stat().st_mtime_ns
    shutil.rmtree(out / "loop")  # as if the comparison had died before its second method
    (out / "report.html").unlink()
    assert main(["compare", "--resume", str(out), "--quiet"]) == 0
    assert in_process_children[2][-3:] == ["--out", str(out / "loop"), "--quiet"]
    assert len(in_process_children) == 3  # fit, loop, then loop again; fit was not retrained
    assert (out / "fit" / "model.keras").stat().st_mtime_ns == fit_model  # kept, not retrained
    assert json.loads((out / "loop" / "status.json").read_text())["state"] == "completed"
    report = json.loads((out / "comparison.json").read_text())
    assert [row["method"] for row in report["rows"]] == ["fit", "loop"]
    assert (out / "report.html").is_file()


def test_tutorial_settings(corpus, tmp_path, in_process_children):
    out = tmp_path / "tutorial"
    assert (
        main(
            [
                "compare",
                "--tutorial",
                "--methods",
                "batch,loop",
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--max-len",
                "40",
                "--seed",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    batch = json.loads((out / "batch" / "config.json").read_text())["train"]
    loop = json.loads((out / "loop" / "config.json").read_text())["train"]
    assert (batch["epochs"], batch["lr_halve_at"]) == (10, 5)
    assert (loop["epochs"], loop["lr_halve_at"]) == (10, None)
    report = json.loads((out / "comparison.json").read_text())
    assert report["tutorial"] is True and report["agreement"] is None
    assert "halved at epoch 5" in (out / "report.md").read_text()


def test_compare_resume_refuses_new_settings(tmp_path, capsys):
    assert main(["compare", "--resume", str(tmp_path), "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    assert main(["compare", "--resume", str(tmp_path)]) == 2
    assert "not a trainways comparison" in capsys.readouterr().err
    assert main(["compare", "--methods", "fit,sgd"]) == 2
    assert "expected distinct methods" in capsys.readouterr().err


def test_each_child_trains_exactly_the_comparisons_configuration(tmp_path, monkeypatch):
    # Every field of every section set away from its default: an option that compare failed to
    # hand on would show up as a default in the child's configuration.
    import dataclasses

    from trainways import compare
    from trainways.config import DataConfig, DeviceConfig, ModelConfig, RunConfig, TrainConfig
    from trainways.parser import build_parser, config_from_args

    config = RunConfig(
        data=DataConfig(
            source="/data/reuters.npz",
            num_words=500,
            skip_top=2,
            max_len=90,
            allow_other_data=True,
            validation_split=0.2,
            fingerprint={"wires": 1, "words": 2, "sha256": "ab"},
        ),
        model=ModelConfig(
            preset="/code/model.py:build", embedding_dim=9, initial_weights="/code/w.weights.h5",
            dropout=0.25,
        ),
        train=TrainConfig(
            method="loop", epochs=3, batch_size=16, learning_rate=0.01, lr_halve_at=2, seed=3,
            deterministic=True, patience=4, tensorboard=True, jit_compile=True,
            steps_per_execution="epoch", xla_optimizer=True, precision="mixed_bfloat16",
            step="/code/step.py:train_step", test_step="/code/step.py:test_step",
            loss="squared_hinge", weight_decay=0.01, stop_on="val_accuracy",
            tracking=f"sqlite:///{tmp_path / 'mlflow.db'}",
        ),
        device=DeviceConfig(
            intra_op_threads=1, inter_op_threads=2, strategy="mirrored", cpu_devices=2,
            backend="jax",
        ),
    )  # fmt: skip
    for section in ("data", "model", "train", "device"):
        default = type(getattr(config, section))()
        changed = [
            f.name
            for f in dataclasses.fields(default)
            if getattr(getattr(config, section), f.name) != getattr(default, f.name)
        ]
        unchanged = {f.name for f in dataclasses.fields(default)} - set(changed)
        # The single-device and cluster fields exclude the ones set here; dense_gradients
        # excludes xla_optimizer, label_smoothing a margin loss.
        excluded = {"gpu", "gpu_memory_limit", "cpu", "gpus", "workers", "task_index"}
        assert unchanged <= {*excluded, "dense_gradients", "label_smoothing"}, (
            section,
            unchanged,
        )
    seen = []
    monkeypatch.setattr(compare, "run_child", lambda argv: (seen.append(argv), (1, 0.0))[1])
    out = tmp_path / "cmp"
    out.mkdir()
    assert compare.run_comparison(out, config, ("loop",), tutorial=False, log=print) == 1
    child = config_from_args(build_parser().parse_args(seen[0]))
    assert child == config


def test_the_report_says_epoch_1_and_final_differences_for_what_they_are(comparison, tmp_path):
    import numpy as np

    from trainways.report import write_comparison_report

    copy = shutil.copytree(comparison, tmp_path / "copy")
    first = copy / "loop" / "first_epoch.npz"
    with np.load(first) as arrays:
        changed = {k: arrays[k] for k in arrays.files}
    changed["weights.0000"] = changed["weights.0000"] + 0.25
    np.savez(first, **changed)
    write_comparison_report(copy, ("fit", "batch", "loop"), {}, tutorial=False)
    agreement = json.loads((copy / "comparison.json").read_text())["agreement"]
    assert agreement["weight_difference_after_epoch_1"] == pytest.approx(0.25)
    assert agreement["final_weight_difference"] == 0.0
    assert agreement["identical_after_epoch_1"] is False


def test_compare_sets_a_users_step_in_loop_beside_fit(corpus, tmp_path, in_process_children):
    step = f"{Path(__file__).resolve().parents[1] / 'examples' / 'tutorial_step.py'}:train_step"
    out = tmp_path / "step"
    argv = ["compare", "--data", str(corpus), "--out", str(out), "--methods", "fit,loop"]
    assert main([*argv, *ARGS, "--step", step]) == 0
    configs = {
        m: json.loads((out / m / "config.json").read_text())["train"] for m in ("fit", "loop")
    }
    assert configs["loop"]["step"] == step
    assert configs["fit"]["step"] is None
    report = json.loads((out / "comparison.json").read_text())
    assert [row["method"] for row in report["rows"]] == ["fit", "loop"]
    # Same variable paths in both runs (the loop child checked its step on a throwaway model),
    # so the report could compare their weights.
    assert report["agreement"]["weight_difference_after_epoch_1"] < 1e-3
