"""Model presets beyond the tutorial's CNN: their input encoding, their regularisation, and that
every method, ``predict``, ``evaluate`` and ``export`` work for each (issue 15)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainways import rundir
from trainways.cli import main
from trainways.config import ConfigError, ModelConfig, TrainConfig
from trainways.data import pad
from trainways.model import (
    MarginLoss,
    SmoothedSparseCrossentropy,
    TfidfBag,
    adapt_to_training_data,
    build_model,
)

from helpers import load_weights, read_history, train_args

NEW_PRESETS = ("tfidf_mlp", "text_cnn")
SMALL = ("--max-len", "40", "--steps-per-execution", "3")


def test_tfidf_bag_is_a_dense_layer_on_scikit_learns_tfidf_vectors():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    train = pad([rng.integers(1, 30, rng.integers(3, 25)) for _ in range(40)], 20)
    wires = pad([[4, 4, 4, 9, 7, 7], [3], [12, 5, 12, 29, 2, 2, 2, 2]], 20)
    layer = TfidfBag(30, 8)
    layer.build((None, 20))
    layer.adapt_ids(train)
    vectorizer = TfidfVectorizer(
        sublinear_tf=True,
        token_pattern=r"\S+",
        lowercase=False,
        vocabulary=[str(i) for i in range(1, 30)],
    )
    vectorizer.fit([" ".join(map(str, row[row != 0])) for row in train])
    features = vectorizer.transform([" ".join(map(str, row[row != 0])) for row in wires]).toarray()
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    expected = features @ kernel[1:]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(wires)), expected, atol=1e-6)
    # The IDF is scikit-learn's, word for word (id 0, the padding, is never a word).
    idf = keras.ops.convert_to_numpy(layer.idf)[1:]
    np.testing.assert_allclose(idf, vectorizer.idf_, rtol=1e-6)


def test_token_dropout_drops_tokens_in_training_only():
    layer = TfidfBag(30, 4, token_dropout=0.5, seed=3)
    wires = pad([list(range(1, 30))] * 4, 29)
    assert np.array_equal(
        keras.ops.convert_to_numpy(layer(wires)), keras.ops.convert_to_numpy(layer(wires))
    )
    trained = keras.ops.convert_to_numpy(layer(wires, training=True))
    assert not np.allclose(trained, keras.ops.convert_to_numpy(layer(wires)))


def test_presets_build_for_any_vocabulary_and_output_one_probability_per_topic():
    for preset in NEW_PRESETS:
        model = build_model(ModelConfig(preset=preset), vocab_size=50, num_classes=6, max_len=12)
        assert model.output_shape == (None, 6)
        adapt_to_training_data(model, pad([[3, 4, 5]] * 4, 12))
        probabilities = keras.ops.convert_to_numpy(model(pad([[3, 4, 5]], 12)))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_dropout_sets_the_presets_rate_and_the_tutorials_cnn_refuses_it():
    model = build_model(
        ModelConfig(preset="text_cnn", dropout=0.25), vocab_size=50, num_classes=6, max_len=12
    )
    [dropout] = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropout.rate == 0.25
    with pytest.raises(ConfigError, match=r"dropout 0.3: the cnn preset has no dropout"):
        build_model(ModelConfig(dropout=0.3), vocab_size=50, num_classes=6, max_len=12)
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\), got 1.0"):
        ModelConfig(dropout=1.0)


def test_label_smoothing_is_kerass_on_one_hot_labels():
    rng = np.random.default_rng(1)
    probabilities = keras.ops.softmax(rng.normal(size=(5, 6)).astype("float32"))
    labels = np.array([0, 5, 2, 2, 1])
    ours = SmoothedSparseCrossentropy(0.1)(labels, probabilities)
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        keras.ops.one_hot(labels, 6), probabilities
    )
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)


@pytest.mark.parametrize("squared", [False, True])
def test_margin_loss_is_the_multiclass_svms_loss_on_the_logits(squared):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 5)).astype("float32") * 2
    labels = np.array([0, 4, 2, 2, 1, 3])
    rivals = np.where(np.eye(5, dtype=bool)[labels], -np.inf, logits).max(axis=1)
    hinge = np.maximum(0.0, 1.0 + rivals - logits[np.arange(6), labels])
    expected = np.mean(hinge**2 if squared else hinge)
    # A softmax of shifted logits is the same model: the loss does not see the shift.
    shifted = logits + rng.normal(size=(6, 1)).astype("float32") * 3
    ours = MarginLoss(squared=squared)(labels, keras.ops.softmax(shifted))
    assert float(ours) == pytest.approx(expected, rel=1e-4)


def test_label_smoothing_is_refused_beside_a_margin_loss():
    with pytest.raises(ConfigError, match="label_smoothing smooths the cross-entropy's targets"):
        TrainConfig(loss="hinge", label_smoothing=0.1)


@pytest.fixture(scope="module")
def preset_runs(corpus, tmp_path_factory):
    """Each new preset trained by every method, same seed, with every regulariser on."""
    root = tmp_path_factory.mktemp("presets")
    runs = {}
    for preset in NEW_PRESETS:
        for method in ("fit", "batch", "loop"):
            out = root / f"{preset}-{method}"
            extra = ("--model", preset, "--label-smoothing", "0.1", "--weight-decay", "0.01")
            assert main(train_args(corpus, out, method, 2, *SMALL, *extra)) == 0
            runs[preset, method] = out
    return runs


@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_every_method_trains_a_preset_to_the_same_bits(preset, preset_runs):
    # Dropout (and tfidf_mlp's token dropout) draws the same masks in every method.
    fit = load_weights(preset_runs[preset, "fit"])
    for method in ("batch", "loop"):
        other = load_weights(preset_runs[preset, method])
        assert all(np.array_equal(a, b) for a, b in zip(fit, other, strict=True)), method
    assert float(read_history(preset_runs[preset, "fit"])[-1]["val_accuracy"]) >= 0.5


@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_predict_evaluate_and_export_work_for_a_preset(preset, preset_runs, tmp_path, capsys):
    run = preset_runs[preset, "fit"]
    copper = "the copper mine said output of copper and smelter tonnes rose in the year"
    assert main(["predict", str(run), "--json", copper]) == 0
    assert len(json.loads(capsys.readouterr().out)["topics"]) == 5
    assert main(["evaluate", str(run)]) == 0
    evaluation = json.loads((run / rundir.EVALUATION).read_text())
    best = json.loads((run / rundir.METRICS).read_text())["best"]
    assert evaluation["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)
    exported = tmp_path / "saved"
    assert main(["export", str(run), str(exported)]) == 0
    served = tf.saved_model.load(str(exported)).signatures["serve"](texts=tf.constant([copper]))
    model = keras.models.load_model(run / rundir.BEST, compile=False)
    from trainways.data import Reuters

    state = json.loads((run / rundir.ENCODER).read_text())
    ids = pad([Reuters.from_encoder_state(state, source="test").encode(copper)], state["max_len"])
    np.testing.assert_allclose(
        served["probabilities"].numpy(), model.predict(ids, verbose=0), atol=1e-6
    )


def test_a_builder_gets_dropout_if_it_asks_and_is_refused_it_if_not(tmp_path):
    builder = tmp_path / "builders.py"
    builder.write_text(
        "import keras\n"
        "def with_rate(vocab_size, num_classes, max_len, dropout):\n"
        "    return keras.Sequential([keras.Input((max_len,)), keras.layers.Dropout(dropout),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
        "def without(num_classes, max_len):\n"
        "    return keras.Sequential([keras.Input((max_len,)),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    config = ModelConfig(preset=f"{builder}:with_rate", dropout=0.2)
    model = build_model(config, vocab_size=9, num_classes=3, max_len=4)
    assert model.layers[0].rate == 0.2
    with pytest.raises(ConfigError, match=r"dropout 0.2 was given but without\(num_classes"):
        build_model(
            ModelConfig(preset=f"{builder}:without", dropout=0.2),
            vocab_size=9,
            num_classes=3,
            max_len=4,
        )
