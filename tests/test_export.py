"""The exported SavedModel: raw text in, the same probabilities as ``trainways predict`` out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from trainways import rundir
from trainways.cli import main
from trainways.data import Reuters, pad

from helpers import write_corpus

TEXTS = [
    "The COPPER mine said output of copper and smelter tonnes rose in the year, 3.5 pct.",
    "wheat  corn\tharvest\nbushels -- farmers' (said) U.S. <grain> &amp; co",
    "zzz unknownword qqq copper",
    " ".join(["sugar cane beet refined raw the said"] * 80),  # longer than max_len
    "Café crème CRUDE oil barrels",  # non-ASCII: only ASCII is lower-cased, as in the original
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "sgml").mkdir()
    corpus = write_corpus(root / "sgml")
    out = root / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAINWAYS_CACHE_DIR", str(root / "cache"))
    try:
        assert (
            main(
                [
                    "train",
                    "--data",
                    str(corpus),
                    "--out",
                    str(out),
                    "--epochs",
                    "3",
                    "--max-len",
                    "40",
                    "--seed",
                    "2",
                    "--num-words",
                    "60",
                    "--skip-top",
                    "2",
                    "--quiet",
                ]
            )
            == 0
        )
    finally:
        mp.undo()
    return out


def test_export_gives_predicts_probabilities_from_raw_text(run, tmp_path, capsys):
    exported = tmp_path / "saved"
    assert main(["export", str(run), str(exported)]) == 0
    assert "signature 'serve'" in capsys.readouterr().out

    state = json.loads((run / rundir.ENCODER).read_text())
    encoder = Reuters.from_encoder_state(state, source="test")
    import keras

    model = keras.models.load_model(run / rundir.BEST)
    expected = model.predict(pad([encoder.encode(t) for t in TEXTS], state["max_len"]), verbose=0)

    loaded = tf.saved_model.load(str(exported))
    served = loaded.signatures["serve"](texts=tf.constant(TEXTS))["probabilities"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-6, rtol=0)
    assert served.shape == (len(TEXTS), len(state["topics"]))
    signature = loaded.signatures["serve"]
    assert list(signature.structured_input_signature[1]) == ["texts"]
    assert list(signature.structured_outputs) == ["probabilities"]


def test_in_graph_encoding_matches_python_encoding(run):
    from trainways.export import TextEncoder

    state = json.loads((run / rundir.ENCODER).read_text())
    encoder = Reuters.from_encoder_state(state, source="test")
    graph = TextEncoder(state)(tf.constant(TEXTS)).numpy()
    np.testing.assert_array_equal(graph, pad([encoder.encode(t) for t in TEXTS], state["max_len"]))


def test_export_refuses_a_non_empty_target(run, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    assert main(["export", str(run), str(tmp_path / "x")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_export_answers_text_without_known_words_with_zero_probabilities(run, tmp_path):
    from trainways import inference

    texts = ["", "zzzz qqqq", "the copper mine said output of copper and smelter tonnes rose"]
    # predict refuses the first two: no word the model knows.
    assert [bool(p.problem) for p in inference.predict(run, texts)] == [True, True, False]
    assert main(["export", str(run), str(tmp_path / "saved")]) == 0
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serve"]
    served = serve(texts=tf.constant(texts))["probabilities"].numpy()
    np.testing.assert_array_equal(served[:2], 0.0)
    assert served[2].sum() == pytest.approx(1.0, abs=1e-5)
