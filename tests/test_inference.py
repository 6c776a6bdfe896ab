"""Using a finished run through the library (trainways.inference): loading its model, predicting
the top topics of new text, evaluating on the test split, and refusing runs that are not done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainways import inference, rundir
from trainways.data import DataError, Reuters, pad
from trainways.inference import InferenceError
from trainways.rundir import RunDirError

from helpers import write_corpus

COPPER = "the copper mine said output of copper and smelter tonnes rose in the year " * 2
GRAIN = "farmers said the wheat and corn harvest of bushels rose in the year " * 2
TOPICS = {"copper", "grain", "crude", "money-fx", "ship", "sugar"}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWAYS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINWAYS_DATA", raising=False)


@pytest.fixture
def run(unbroken_run, corpus, tmp_path) -> Path:
    """A copy of a small completed two-epoch run, free to change."""
    return Path(shutil.copytree(unbroken_run(corpus, "fit", 2, "--max-len", "40"), tmp_path / "r"))


def _expected_topics(run: Path, text: str, model_file: str) -> list[tuple[str, float]]:
    """Every topic with its probability, most likely first, computed here from the saved model."""
    import keras

    state = inference.encoder_state(run)
    encoder = Reuters.from_encoder_state(state, source=str(run))
    model = keras.models.load_model(run / model_file, compile=False)
    [row] = model.predict(pad([encoder.encode(text)], state["max_len"]), verbose=0)
    return sorted(zip(encoder.topics, row.tolist(), strict=True), key=lambda tp: -tp[1])


# ---------------------------------------------------------------------------- load_model


def test_load_model_takes_the_best_epoch_unless_last(run):
    model, path = inference.load_model(run)
    assert path == run / rundir.BEST
    assert model.compiled and model.output_shape == (None, len(TOPICS))
    _, last = inference.load_model(run, last=True)
    assert last == run / rundir.MODEL
    (run / rundir.BEST).unlink()
    assert inference.load_model(run)[1] == run / rundir.MODEL


@pytest.mark.parametrize("state", [rundir.RUNNING, rundir.INTERRUPTED, rundir.FAILED])
def test_load_model_refuses_a_run_that_is_not_completed(run, state):
    rundir.set_status(run, state)
    with pytest.raises(RunDirError, match=f"is {state}, not completed"):
        inference.load_model(run)


def test_load_model_refuses_a_run_without_its_files(run, tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        inference.load_model(tmp_path / "none")
    (run / rundir.MODEL).unlink()
    with pytest.raises(InferenceError, match=r"cannot load the model .*model\.keras"):
        inference.load_model(run, last=True)
    (run / rundir.STATUS).unlink()
    with pytest.raises(RunDirError, match=r"status\.json is missing"):
        inference.load_model(run)


def test_load_model_refuses_a_damaged_model_file(run):
    (run / rundir.BEST).write_bytes(b"not a keras file")
    with pytest.raises(InferenceError, match=r"cannot load the model .*best\.keras"):
        inference.load_model(run)


# ------------------------------------------------------------------------------- predict


def test_predict_gives_the_top_k_topics_most_likely_first(run):
    expected = _expected_topics(run, COPPER, rundir.BEST)
    [top3, everything] = [inference.predict(run, [COPPER], top_k=k)[0] for k in (3, 6)]
    assert top3.problem is None and top3.text == COPPER
    assert [t for t, _ in top3.topics] == [t for t, _ in expected[:3]]
    np.testing.assert_allclose([p for _, p in top3.topics], [p for _, p in expected[:3]], 1e-5)
    # All topics: a softmax, in order, the top 3 its head.
    assert {t for t, _ in everything.topics} == TOPICS
    probabilities = [p for _, p in everything.topics]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert everything.topics[:3] == top3.topics


def test_predict_with_last_uses_the_last_model(run):
    # A damaged best.keras: only a prediction from model.keras can succeed.
    (run / rundir.BEST).write_bytes(b"not a keras file")
    with pytest.raises(InferenceError, match=r"best\.keras"):
        inference.predict(run, [GRAIN])
    [prediction] = inference.predict(run, [GRAIN], top_k=6, last=True)
    expected = _expected_topics(run, GRAIN, rundir.MODEL)
    assert [t for t, _ in prediction.topics] == [t for t, _ in expected]


def test_predict_marks_a_text_without_known_words_and_classifies_the_rest(run):
    unknown, known = inference.predict(run, ["zzzz qqqq", GRAIN], top_k=2)
    assert unknown.topics == () and "no word of 'zzzz qqqq'" in unknown.problem
    assert unknown.to_dict() == {"text": "zzzz qqqq", "topics": [], "problem": unknown.problem}
    assert known.problem is None and len(known.topics) == 2
    assert [entry["topic"] for entry in known.to_dict()["topics"]] == [t for t, _ in known.topics]


@pytest.mark.parametrize(
    ("texts", "top_k", "needle"),
    [([], 5, "no text to classify"), (["  ", "\n"], 5, "no text"), ([COPPER], 0, "top_k")],
)
def test_predict_refuses_bad_input(run, texts, top_k, needle):
    with pytest.raises(InferenceError, match=needle):
        inference.predict(run, texts, top_k=top_k)


def test_predict_refuses_a_run_that_is_not_completed(run):
    rundir.set_status(run, rundir.INTERRUPTED)
    with pytest.raises(RunDirError, match="not completed"):
        inference.predict(run, [COPPER])


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_writes_what_it_returns(run):
    metrics = rundir.read_metrics(run)
    assert not (run / rundir.EVALUATION).exists()
    figures = inference.evaluate(run)
    assert json.loads((run / rundir.EVALUATION).read_text()) == json.loads(json.dumps(figures))
    assert figures["model"] == str(run / rundir.BEST)
    # Without a validation split the test split is what each epoch validated on.
    assert figures["accuracy"] == pytest.approx(metrics["best"]["val_accuracy"], abs=1e-6)
    assert figures["loss"] == pytest.approx(metrics["best"]["val_loss"], rel=1e-5)
    assert set(figures["per_topic"]) == TOPICS
    assert sum(t["support"] for t in figures["per_topic"].values()) == figures["test_wires"]
    for suffix in ("png", "svg"):
        assert (run / f"{rundir.CONFUSION}.{suffix}").stat().st_size > 0


def test_evaluate_without_write_leaves_the_run_as_it_was(run):
    before = sorted(p.name for p in run.iterdir())
    figures = inference.evaluate(run, last=True, write=False)
    assert figures["model"] == str(run / rundir.MODEL)
    assert sorted(p.name for p in run.iterdir()) == before


def test_evaluate_refuses_other_data_and_writes_nothing(run, tmp_path):
    (tmp_path / "other").mkdir()
    other = write_corpus(tmp_path / "other", wires_per_topic=30, seed=3)
    with pytest.raises(DataError, match=r"is not the data .* was trained on"):
        inference.evaluate(run, data=str(other))
    assert not (run / rundir.EVALUATION).exists()
    assert not (run / f"{rundir.CONFUSION}.png").exists()


def test_evaluate_refuses_a_run_that_is_not_completed(run):
    rundir.set_status(run, rundir.RUNNING)
    with pytest.raises(RunDirError, match="is running, not completed"):
        inference.evaluate(run)
    assert not (run / rundir.EVALUATION).exists()


# ------------------------------------------------ code the run carries (issue 25, severe 3)


def _carry_builder(run: Path, tmp_path: Path, *, needed: bool) -> tuple[Path, str]:
    """Put ``evil.py`` into the run as its recorded ``--model`` builder, given relative to the
    current directory as a sender would; importing it writes a marker file. With ``needed`` the
    run's models name a class only that file defines (a model with its own ``train_step``).

    Returns:
        The marker file, and the builder's file name.
    """
    import uuid
    import zipfile

    marker, package = tmp_path / "ran", f"evil_{uuid.uuid4().hex}"  # unknown to Keras so far
    (run / "evil.py").write_text(
        "import pathlib\nimport keras\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        f"@keras.saving.register_keras_serializable(package={package!r})\n"
        "class EvilSequential(keras.Sequential):\n    pass\n"
        "def build(vocab_size, num_classes, max_len):\n    raise RuntimeError('not here')\n"
    )
    config = json.loads((run / rundir.CONFIG).read_text())
    config["model"]["preset"] = f"{run.name}/evil.py:build"
    (run / rundir.CONFIG).write_text(json.dumps(config))
    if needed:
        for name in (rundir.BEST, rundir.MODEL):
            with zipfile.ZipFile(run / name) as archive:
                files = {n: archive.read(n) for n in archive.namelist()}
            saved = json.loads(files["config.json"])
            saved.update(
                module="trainways_user_evil",
                class_name="EvilSequential",
                registered_name=f"{package}>EvilSequential",
            )
            files["config.json"] = json.dumps(saved).encode()
            with zipfile.ZipFile(run / name, "w") as archive:
                for n, data in files.items():
                    archive.writestr(n, data)
    return marker, "evil.py"


def test_a_run_that_carries_a_builder_file_runs_none_of_it(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker, _ = _carry_builder(run, tmp_path, needed=False)
    # The model loads without the builder (a plain Sequential): used, and evil.py never imported.
    assert inference.predict(run, [COPPER])[0].problem is None
    assert inference.evaluate(run, write=False)["test_wires"] > 0
    assert not marker.exists()


def test_a_deleted_builder_file_does_not_block_a_model_that_loads_without_it(run, tmp_path):
    config = json.loads((run / rundir.CONFIG).read_text())
    config["model"]["preset"] = str(tmp_path / "deleted.py:build")
    (run / rundir.CONFIG).write_text(json.dumps(config))
    assert inference.evaluate(run, write=False)["test_wires"] > 0
    assert inference.evaluate(run, write=False, trust_code=True)["test_wires"] > 0


def test_a_model_that_needs_its_builder_is_refused_unless_code_is_trusted(
    run, tmp_path, monkeypatch
):
    from trainways.export import export_run

    monkeypatch.chdir(tmp_path)
    marker, builder = _carry_builder(run, tmp_path, needed=True)
    refused = rf"needs its builder r/{builder}:build .* pass --trust-code \(trust_code=True"
    with pytest.raises(InferenceError, match=refused):
        inference.predict(run, [COPPER])
    with pytest.raises(InferenceError, match=refused):
        inference.evaluate(run)
    with pytest.raises(InferenceError, match=refused):
        export_run(run, tmp_path / "saved")
    assert not marker.exists()
    assert not (run / rundir.EVALUATION).exists() and not (tmp_path / "saved").exists()
    # Trusted: the builder's file is imported for its class, and the model loads.
    model, _ = inference.load_model(run, trust_code=True)
    assert marker.read_text() == "imported"
    assert type(model).__name__ == "EvilSequential"


def test_a_truncated_model_file_is_called_damaged(run):
    best = run / rundir.BEST
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    with pytest.raises(InferenceError, match=r"best\.keras: the file is damaged .*--last"):
        inference.load_model(run)
    assert inference.load_model(run, last=True)[1] == run / rundir.MODEL


def test_a_loop_run_is_refused_for_what_it_lacks(run, tmp_path):
    from trainways.export import export_run

    (run / rundir.CONFIG).write_text(json.dumps({"loop": {"epochs": 2, "script": "train.py"}}))
    (run / rundir.BEST).unlink()  # a Loop keeps no best.keras
    for use in (
        lambda: inference.evaluate(run),
        lambda: inference.predict(run, [COPPER]),
        lambda: export_run(run, tmp_path / "saved"),
    ):
        with pytest.raises(InferenceError, match=r"made by a trainways\.Loop script \(train\.py\)"):
            use()
    assert not (tmp_path / "saved").exists()


def test_the_commands_refuse_code_the_run_carries_unless_trust_code(
    run, tmp_path, monkeypatch, capsys
):
    from trainways.cli import main

    monkeypatch.chdir(tmp_path)
    marker, builder = _carry_builder(run, tmp_path, needed=True)
    for argv in (["predict", str(run), COPPER], ["evaluate", str(run)], ["export", str(run), "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"trainways {argv[0]}: error: "), err
        assert f"needs its builder r/{builder}:build" in err and "--trust-code" in err
    assert not marker.exists() and not (tmp_path / "x").exists()
    assert main(["predict", str(run), "--trust-code", "--top-k", "1", COPPER]) == 0
    assert marker.exists() and capsys.readouterr().out.startswith("1. ")
