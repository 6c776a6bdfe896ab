"""The command line on a small synthetic corpus: outputs, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from trainways import rundir
from trainways.cli import main

from helpers import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("sgml"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINWAYS_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def _train(corpus, out, *extra):
    return main(
        [
            "train",
            "--data",
            str(corpus),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--max-len",
            "40",
            "--seed",
            "1",
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fit"
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAINWAYS_CACHE_DIR", str(out.parent / "cache"))
    try:
        assert _train(corpus, out, "--epochs", "8", "--lr", "0.01") == 0
    finally:
        mp.undo()
    return out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert "Traceback" not in err
    assert err.startswith("trainways")
    assert ": error: " in err
    return err


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_train_writes_a_complete_run_directory(corpus, tmp_path, method):
    out = tmp_path / method
    assert _train(corpus, out, "--method", method, "--lr-halve-at", "2") == 0
    for name in (
        rundir.CONFIG,
        rundir.STATUS,
        rundir.LOG,
        rundir.HISTORY,
        rundir.METRICS,
        rundir.MODEL,
        rundir.ENCODER,
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / rundir.STATUS).read_text())["state"] == "completed"
    config = json.loads((out / rundir.CONFIG).read_text())
    assert config["train"]["method"] == method and config["train"]["seed"] == 1
    history = (out / rundir.HISTORY).read_text().splitlines()
    assert history[0].split(",") == [
        "epoch",
        "accuracy",
        "learning_rate",
        "loss",
        "top5_accuracy",
        "val_accuracy",
        "val_loss",
        "val_top5_accuracy",
    ]
    assert len(history) == 3
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["epochs"] == 2 and 1 <= metrics["best"]["epoch"] <= 2
    log = (out / rundir.LOG).read_text()
    assert "Total params" in log and "device: CPU" in log and "data:" in log
    assert log.count("epoch 2/2 - ") == 1


def test_log_goes_to_stdout_unless_quiet(corpus, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                str(corpus),
                "--out",
                str(tmp_path / "r"),
                "--epochs",
                "1",
                "--max-len",
                "40",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "epoch 1/1 - " in out and "device: CPU" in out
    assert _train(corpus, tmp_path / "q") == 0
    assert capsys.readouterr().out == ""


def test_evaluate_uses_the_best_epoch_and_reports_by_topic(trained_run, capsys):
    metrics = json.loads((trained_run / rundir.METRICS).read_text())
    assert (trained_run / rundir.BEST).is_file()
    assert main(["evaluate", str(trained_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("best.keras on the test split")
    evaluation = json.loads((trained_run / rundir.EVALUATION).read_text())
    assert evaluation["accuracy"] == pytest.approx(metrics["best"]["val_accuracy"], abs=1e-6)
    assert evaluation["top5_accuracy"] == pytest.approx(metrics["best"]["val_top5_accuracy"])
    assert set(evaluation["per_topic"]) == {"copper", "grain", "crude", "money-fx", "ship", "sugar"}
    supports = sum(t["support"] for t in evaluation["per_topic"].values())
    assert supports == evaluation["test_wires"]
    assert 0.0 <= evaluation["macro_f1"] <= 1.0 and "weighted_f1" in evaluation
    for suffix in ("png", "svg"):
        assert (trained_run / f"confusion_matrix.{suffix}").stat().st_size > 1000
    assert main(["evaluate", str(trained_run), "--last"]) == 0
    last = json.loads((trained_run / rundir.EVALUATION).read_text())
    assert last["accuracy"] == pytest.approx(metrics["final"]["val_accuracy"], abs=1e-6)
    assert last["model"].endswith("model.keras")


# Wire-length text: the tutorial's CNN flattens positions, so a few words alone, all at the end
# of the padded window, are not what it learned from.
COPPER = "the copper mine said output of copper and smelter tonnes rose in the year " * 2
GRAIN = "farmers said the wheat and corn harvest of bushels rose in the year " * 2


def test_predict_prints_the_top_five_topics(trained_run, capsys):
    assert main(["predict", str(trained_run), COPPER]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("1. copper")
    probabilities = [float(line.split()[-1]) for line in lines]
    assert probabilities == sorted(probabilities, reverse=True)


def test_predict_file_stdin_and_json(trained_run, tmp_path, capsys, monkeypatch):
    wires = tmp_path / "wires.txt"
    wires.write_text(f"{COPPER}\n\n{GRAIN}\n")
    assert main(["predict", str(trained_run), "--file", str(wires), "--json", "--top-k", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [len(r["topics"]) for r in results] == [3, 3]
    assert [r["topics"][0]["topic"] for r in results] == ["copper", "grain"]
    monkeypatch.setattr("sys.stdin", io.StringIO(GRAIN + "\n"))
    assert main(["predict", str(trained_run), "--file", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["topics"][0]["topic"] == "grain"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["   "], "no text to classify"),
        (["--file", "/no/such/wires.txt"], "cannot read --file /no/such/wires.txt"),
        (["some", "--file", "x.txt"], "either as arguments or with --file, not both"),
    ],
)
def test_predict_bad_input(trained_run, argv, needle, capsys):
    assert main(["predict", str(trained_run), *argv]) == 2
    assert needle in _one_line_error(capsys)


def test_predict_without_known_words_is_a_clear_error(trained_run, capsys):
    assert main(["predict", str(trained_run), "zzzz qqqq"]) == 2
    assert "no word of 'zzzz qqqq' is in the model's vocabulary" in _one_line_error(capsys)


def test_data_info(corpus, capsys):
    assert main(["data", "info", "--data", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "wires:" in out and "topics:      6" in out and "copper" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--method", "sgd"], "invalid choice: 'sgd'"),
        (["train", "--epochs", "0"], "epochs must be positive, got 0 (--epochs)"),
        (["train", "--epochs", "x"], "argument --epochs: expected a whole number, got 'x'"),
        (["train", "--batch-size", "-3"], "batch_size must be positive, got -3 (--batch-size)"),
        (
            ["train", "--steps-per-execution", "0"],
            "positive whole number, 'auto' or 'epoch', got 0",
        ),
        (["train", "--precision", "fp8"], "invalid choice: 'fp8'"),
        (["train", "--intra-op-threads", "-1"], "intra_op_threads must be a whole number >= 0"),
        (["train", "--data", "/no/such/dir"], "/no/such/dir"),
        (["evaluate", "/no/such/run"], "run directory /no/such/run does not exist"),
        (["data", "info", "--data", "/no/such/file.npz"], "/no/such/file.npz"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in _one_line_error(capsys)


def test_bad_data_leaves_no_run_directory(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    assert main(["train", "--data", str(empty), "--out", str(out)]) == 2
    assert str(empty) in _one_line_error(capsys)
    assert not out.exists()
    corrupt = tmp_path / "reuters.npz"
    corrupt.write_bytes(b"not a zip")
    assert main(["train", "--data", str(corrupt), "--out", str(out)]) == 2
    assert str(corrupt) in _one_line_error(capsys)
    assert not out.exists()


def test_existing_out_needs_overwrite(corpus, trained_run, capsys):
    before = sorted(p.name for p in trained_run.iterdir())
    assert _train(corpus, trained_run) == 2
    assert "exists and is not empty: choose another --out or pass --overwrite" in (
        _one_line_error(capsys)
    )
    assert sorted(p.name for p in trained_run.iterdir()) == before


def test_unwritable_out_fails_before_training(corpus, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _train(corpus, blocker / "run") == 2
    assert "cannot write to --out" in _one_line_error(capsys)


def test_interrupted_run_says_so(corpus, tmp_path, monkeypatch):
    import keras

    def interrupt(self, batch, logs=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_train_batch_end", interrupt, raising=False)
    out = tmp_path / "run"
    assert _train(corpus, out, "--method", "loop") == 130
    assert json.loads((out / rundir.STATUS).read_text())["state"] == "interrupted"
    assert main(["evaluate", str(out)]) == 2


def test_console_script_help_is_fast_to_import():
    # --help must not import TensorFlow (it would take seconds).
    code = (
        "import sys; from trainways.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: trainways" in result.stdout


def test_overwrite_clears_the_old_runs_checkpoints(corpus, tmp_path):
    out = tmp_path / "run"
    assert _train(corpus, out, "--epochs", "3") == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-0002", "epoch-0003"]
    assert _train(corpus, out, "--epochs", "1", "--overwrite") == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-0001"]


@pytest.mark.parametrize("method", ["fit", "batch", "loop"])
def test_tensorboard_logs_scalars_and_learning_rate(corpus, tmp_path, method):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert _train(corpus, out, "--method", method, "--tensorboard") == 0
    train_logs = out / "tensorboard" / "train"
    events = EventAccumulator(str(train_logs), size_guidance={"tensors": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= tags
    assert len(events.Tensors("epoch_loss")) == 2
    assert (out / "tensorboard" / "validation").is_dir()


def test_steps_per_execution_that_splits_the_epoch_ends_each_epoch_with_the_rest(corpus, tmp_path):
    # The corpus has 115 training wires: 4 steps of 32, run as 3 + 1 (before issue 14, refused).
    out = tmp_path / "run"
    assert _train(corpus, out, "--steps-per-execution", "3", "--epochs", "2") == 0
    assert json.loads((out / rundir.STATUS).read_text())["state"] == "completed"
    rows = list(csv.DictReader((out / rundir.HISTORY).open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]


def test_speed_levers_train_and_are_recorded(corpus, tmp_path):
    # A child process: thread pools can only be set before TensorFlow starts.
    out = tmp_path / "run"
    levers = ["--steps-per-execution", "epoch", "--xla-optimizer", "--precision", "mixed_bfloat16"]
    threads = ["--intra-op-threads", "1", "--inter-op-threads", "2"]
    argv = ["train", "--data", str(corpus), "--out", str(out), "--epochs", "2", "--max-len", "40"]
    result = subprocess.run(
        [sys.executable, "-m", "trainways.cli", *argv, "--quiet", *levers, *threads],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / rundir.CONFIG).read_text())
    assert config["train"]["steps_per_execution"] == "epoch"
    assert config["train"]["xla_optimizer"] is True
    assert config["train"]["precision"] == "mixed_bfloat16"
    assert (config["device"]["intra_op_threads"], config["device"]["inter_op_threads"]) == (1, 2)
    assert "threads: 1 intra-op / 2 inter-op" in (out / rundir.LOG).read_text()
    assert json.loads((out / rundir.STATUS).read_text())["state"] == "completed"
    # Each lever acted on the model that trained, not just on config.json:
    import keras

    import trainways.backends.tensorflow.optimizers  # noqa: F401 - registers XlaNadam for loading

    model = keras.models.load_model(out / rundir.MODEL)
    assert type(model.optimizer).__name__ == "XlaNadam"
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16"  # the first convolution
    assert model.layers[-1].dtype_policy.name == "float32"  # the softmax stays float32
    # 115 wires, batch 32: the epoch's 4 steps ran as one execution.
    assert model.get_compile_config()["steps_per_execution"] == 4


# ------------------------------------------------------------ what a new user broke (issue 11)


@pytest.mark.parametrize(
    ("value", "needle"), [("inf", "must be finite, got inf"), ("nan", "must be positive, got nan")]
)
def test_a_non_finite_learning_rate_is_refused(value, needle, capsys):
    assert main(["train", "--lr", value]) == 2
    assert f"learning_rate {needle}" in _one_line_error(capsys)


def test_errors_name_the_subcommand_never_an_internal_name(capsys):
    assert main(["train", "--epochs", "0"]) == 2
    assert _one_line_error(capsys).startswith("trainways train: error: ")
    assert main(["data"]) == 2
    err = _one_line_error(capsys)
    assert "data_command" not in err and "COMMAND" in err


@pytest.mark.parametrize(
    ("command", "extra", "needle"),
    [
        ("train", ["--model", "rnn"], "unknown model preset 'rnn'"),
        ("train", ["--max-len", "11"], "cannot take sequences of max_len 11"),
        ("agree", ["--max-len", "5"], "cannot take sequences of max_len 5"),
        ("compare", ["--model", "rnn"], "unknown model preset 'rnn'"),
    ],
)
def test_a_model_that_cannot_train_is_refused_before_any_file(
    corpus, tmp_path, command, extra, needle, capsys
):
    out = tmp_path / "out"
    argv = [command, "--data", str(corpus), "--epochs", "1", "--quiet", *extra]
    if command != "agree":
        argv += ["--out", str(out)]
    assert main(argv) == 2
    assert needle in _one_line_error(capsys)
    assert not out.exists()


def test_unwritable_outputs_are_refused_before_the_work(corpus, trained_run, tmp_path, capsys):
    # Under a regular file: unwritable for every user, root included.
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["export", str(trained_run), str(blocker / "model")]) == 2
    assert "is not a writable directory" in _one_line_error(capsys)
    argv = ["agree", "--data", str(corpus), "--max-len", "40", "--json", str(blocker / "a.json")]
    assert main(argv) == 2
    assert "is not a writable directory" in _one_line_error(capsys)


def test_a_non_finite_loss_names_only_files_that_exist(corpus, tmp_path):
    out = tmp_path / "run"
    assert _train(corpus, out, "--lr", "1e30", "--epochs", "1") == 1
    status = json.loads((out / rundir.STATUS).read_text())
    assert status["state"] == "failed" and status["epochs_completed"] == 0
    log = (out / rundir.LOG).read_text()
    assert "no epoch completed, so no checkpoint was kept" in log
    assert not (out / rundir.CHECKPOINTS).exists() or any((out / rundir.CHECKPOINTS).iterdir())


def test_resume_without_the_checkpoints_it_needs_is_refused(corpus, trained_run, tmp_path, capsys):
    import shutil

    run = shutil.copytree(trained_run, tmp_path / "run")
    rundir.set_status(run, rundir.INTERRUPTED, epochs_completed=3)
    shutil.rmtree(run / rundir.CHECKPOINTS)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["train", "--resume", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "no usable checkpoint is left" in err and "trainways train --config" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resumed_run_keeps_every_epochs_time(corpus, tmp_path, monkeypatch):
    import signal

    import keras

    from trainways import callbacks as tw_callbacks
    from trainways.lifecycle import RunLife

    class StopInEpoch2(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and getattr(self, "_epoch", 0) == 1:
                raise tw_callbacks.Interrupted(signal.SIGINT)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    real = RunLife.callbacks

    def with_stop(life, *args, **kwargs):
        return [StopInEpoch2(), *real(life, *args, **kwargs)]

    out = tmp_path / "run"
    monkeypatch.setattr(RunLife, "callbacks", with_stop)
    assert _train(corpus, out, "--epochs", "3") == 130
    monkeypatch.setattr(RunLife, "callbacks", real)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["epochs"] == 3 and len(metrics["seconds_per_epoch"]) == 3
    assert metrics["mean_seconds_per_epoch"] > 0


def test_agree_says_its_seed_and_records_what_it_trained(corpus, tmp_path, capsys):
    report = tmp_path / "agree.json"
    argv = ["agree", "--data", str(corpus), "--max-len", "40", "--seed", "5", "--quiet"]
    assert main([*argv, "--json", str(report)]) == 0
    assert "seed: 5 (op determinism on)" in capsys.readouterr().out
    recorded = json.loads(report.read_text())
    assert recorded["config"]["train"]["deterministic"] is True
    assert "method" not in recorded["config"]["train"]
    assert recorded["methods"] == ["fit", "batch", "loop"]


def test_tensorflows_start_up_noise_is_hidden_unless_verbose(tmp_path):
    def stderr(*extra):
        return subprocess.run(
            [sys.executable, "-m", "trainways.cli", "evaluate", str(tmp_path / "none"), *extra],
            capture_output=True,
            text=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        ).stderr

    quiet = stderr()
    assert quiet.count("\n") == 1 and quiet.startswith("trainways evaluate: error: "), quiet
    assert quiet.strip() in stderr("--verbose")


def test_predict_takes_options_anywhere(trained_run, capsys):
    assert main(["predict", str(trained_run), "--top-k", "3", COPPER]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("1. copper")


def test_predict_file_skips_unusable_lines_by_number(trained_run, tmp_path, capsys):
    wires = tmp_path / "wires.txt"
    wires.write_text(f"{COPPER}\nzzzz qqqq\n\n{GRAIN}\n")
    assert main(["predict", str(trained_run), "--file", str(wires), "--top-k", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        "trainways predict: line 2: no word of 'zzzz qqqq' is in the model's vocabulary: "
        "give English newswire text; skipped"
    )
    assert "[1] " in captured.out and "[4] " in captured.out and "1. copper" in captured.out


def test_history_counts_epochs_from_1_and_times_carry_their_zone(trained_run):
    import csv
    import re

    with (trained_run / rundir.HISTORY).open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == [str(e) for e in range(1, 9)]
    status = json.loads((trained_run / rundir.STATUS).read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", status["time"])
    assert re.fullmatch(r"\d{8}-\d{6}[+-]\d{4}-fit", rundir.default_run_dir("fit").name)
    log = (trained_run / rundir.LOG).read_text()
    assert re.search(r"-{40} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\n", log)


def test_every_file_of_a_run_has_the_same_permissions(trained_run):
    files = {p.stat().st_mode & 0o777 for p in trained_run.rglob("*") if p.is_file()}
    dirs = {p.stat().st_mode & 0o777 for p in trained_run.rglob("*") if p.is_dir()}
    assert len(files) == 1 and len(dirs) == 1, (files, dirs)


def test_a_reader_that_leaves_early_gets_no_traceback(corpus, tmp_path):
    info = subprocess.Popen(
        [sys.executable, "-m", "trainways.cli", "data", "info", "--data", str(corpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")},
    )
    info.stdout.readline()
    info.stdout.close()  # as `| head -1` does
    err = info.stderr.read().decode()
    assert info.wait() in (0, 141) and "Traceback" not in err, err


def test_data_info_does_not_start_tensorflow(corpus, tmp_path):
    code = (
        "import sys; from trainways.cli import main; "
        f"code = main(['data', 'info', '--data', {str(corpus)!r}]); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRAINWAYS_CACHE_DIR": str(tmp_path / "cache")},
    ).stdout
    assert out.strip().splitlines()[-1] == "0 False"


def test_an_unexpected_error_is_one_plain_line_in_status(corpus, tmp_path, monkeypatch):
    from trainways import run as run_module

    def explode(*args, **kwargs):
        raise RuntimeError("\x1b[1mboom\x1b[0m in a layer\nand a page of context")

    monkeypatch.setattr(run_module, "_train", explode)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        _train(corpus, out)
    status = json.loads((out / rundir.STATUS).read_text())
    assert status["state"] == "failed"
    assert status["error"] == "RuntimeError: boom in a layer"


def test_a_builder_without_softmax_is_refused_before_any_file(corpus, tmp_path, capsys):
    builder = tmp_path / "logits.py"
    builder.write_text(
        "import keras\n"
        "def build(vocab_size, num_classes, max_len):\n"
        "    return keras.Sequential([keras.Input((max_len,), dtype='int32'),\n"
        "        keras.layers.Embedding(vocab_size, 4), keras.layers.Flatten(),\n"
        "        keras.layers.Dense(num_classes)])\n"
    )
    out = tmp_path / "out"
    assert _train(corpus, out, "--model", f"{builder}:build") == 2
    assert "does not output probabilities" in _one_line_error(capsys)
    assert not out.exists()


def test_predict_reads_a_non_utf8_byte_alike_from_a_file_and_stdin(
    trained_run, tmp_path, capsys, monkeypatch
):
    data = f"{COPPER}\n".encode() + b"caf\xe9 " + f"{GRAIN}\n".encode()
    wires = tmp_path / "wires.txt"
    wires.write_bytes(data)
    results = []
    for source in (str(wires), "-"):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        assert main(["predict", str(trained_run), "--file", source, "--json"]) == 0
        captured = capsys.readouterr()
        assert captured.err.strip() == (
            "trainways predict: line 2: not UTF-8; its undecodable bytes are read as U+FFFD"
        )
        results.append(json.loads(captured.out))
    assert results[0] == results[1]
    assert [r["topics"][0]["topic"] for r in results[0]] == ["copper", "grain"]
    assert results[0][1]["text"].startswith("caf\ufffd ")


_COMPILED_BUILDER = (
    "import keras\n"
    "def build(vocab_size, num_classes, max_len):\n"
    "    model = keras.Sequential([keras.Input((max_len,), dtype='int32'),\n"
    "        keras.layers.Embedding(vocab_size, 4), keras.layers.GlobalAveragePooling1D(),\n"
    "        keras.layers.Dense(num_classes, activation='softmax')])\n"
    "    model.compile(optimizer=keras.optimizers.SGD(0.05),\n"
    "                  loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "    return model\n"
)


def test_a_builders_compile_conflicting_with_an_option_is_refused_before_any_file(
    corpus, tmp_path, capsys
):
    builder = tmp_path / "compiled.py"
    builder.write_text(_COMPILED_BUILDER)
    out = tmp_path / "out"
    assert _train(corpus, out, "--model", f"{builder}:build", "--lr", "0.01") == 2
    assert "learning_rate 0.01 conflicts with the compile() of model" in _one_line_error(capsys)
    assert not out.exists()


def test_a_builders_compile_is_what_the_run_trains(corpus, tmp_path):
    builder = tmp_path / "compiled.py"
    builder.write_text(_COMPILED_BUILDER)
    out = tmp_path / "out"
    assert _train(corpus, out, "--model", f"{builder}:build", "--epochs", "1") == 0
    header = (out / rundir.HISTORY).read_text().splitlines()[0].split(",")
    assert "accuracy" in header and "top5_accuracy" not in header  # the builder's metrics
