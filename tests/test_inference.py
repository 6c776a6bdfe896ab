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
