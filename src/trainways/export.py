"""Export a trained run as a TensorFlow SavedModel that classifies raw text.

The serving signature takes a batch of strings and returns the topic probabilities. Everything
``trainways predict`` does in Python happens inside the graph, the same way: the old Keras
``Tokenizer`` defaults (ASCII lower-casing, punctuation to spaces, split on spaces), word ranks
offset by ``index_from``, OOV for unknown words and for ids outside ``[skip_top, num_words)``, the
start id, then pre-truncation and pre-padding to the run's length.

A text none of whose words the model knows (``""`` included) is what ``predict`` refuses to
classify; the export answers it with all-zero probabilities (a softmax never sums to 0), so that
a client can tell "no answer" from an answer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from trainways import rundir
from trainways.data import FILTERS

SIGNATURE = "serve"


class TextEncoder(tf.Module):
    """Raw strings → padded id matrix, as :meth:`trainways.data.Reuters.encode` + ``pad``."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(name="text_encoder")
        self.max_len = int(state["max_len"])
        self.oov_char = state["oov_char"]
        # What predict does not count as a known word (inference.predict's rule).
        self._specials = [c for c in (state["start_char"], state["oov_char"]) if c is not None]
        index_from, skip_top = int(state["index_from"]), int(state["skip_top"])
        num_words = state["num_words"]

        def kept(i: int) -> bool:
            return i >= skip_top and (num_words is None or i < num_words)

        # Keras filters the start id like any other id (skip_top > 1 turns it into OOV).
        start = state["start_char"]
        self.start_char = start if start is None or kept(start) else self.oov_char
        words = list(state["word_index"])
        # Out-of-range ids are decided here, once, instead of in every call.
        ids = [i if kept(i) else -2 for i in (state["word_index"][w] + index_from for w in words)]
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(words, tf.string), tf.constant(ids, tf.int64)
            ),
            default_value=-1,
        )
        self._filters = "[" + "".join(re.escape(c) for c in FILTERS) + "]"

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        return self.encode(texts)[0]

    def encode(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The padded id matrix, and how many of each text's words the model knows."""
        # tf.strings.lower with no encoding lower-cases ASCII bytes only, as the original did.
        cleaned = tf.strings.regex_replace(tf.strings.lower(texts), self._filters, " ")
        tokens = tf.strings.split(cleaned, sep=" ")
        tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        known = ids >= 0  # found and kept: neither unknown (-1) nor out of range (-2)
        for special in self._specials:
            known = tf.logical_and(known, ids != special)
        known_words = tf.reduce_sum(tf.cast(known, tf.int32), axis=1)
        if self.oov_char is None:  # Keras drops such words instead of marking them
            ids = tf.ragged.boolean_mask(ids, ids >= 0)
        else:
            ids = tf.ragged.map_flat_values(
                lambda v: tf.where(v < 0, tf.cast(self.oov_char, tf.int64), v), ids
            )
        if self.start_char is not None:
            start = tf.fill([ids.nrows(), 1], tf.cast(self.start_char, tf.int64))
            ids = tf.concat([start, ids], axis=1)
        return self._pre_pad(ids), known_words

    def _pre_pad(self, ids: tf.RaggedTensor) -> tf.Tensor:
        # pad_sequences' defaults: keep the last max_len ids, pad in front with 0.
        lengths = ids.row_lengths()
        dense = ids.to_tensor(default_value=0)
        positions = lengths[:, None] - self.max_len + tf.range(self.max_len, dtype=tf.int64)
        values = tf.gather(dense, tf.maximum(positions, 0), batch_dims=1)
        padded = tf.where(positions >= 0, values, tf.zeros_like(values))
        return tf.cast(padded, tf.int32)


def export_text_model(model: keras.Model, encoder_state: dict[str, Any], path: Path) -> None:
    """Write a SavedModel whose ``serve`` signature maps strings to topic probabilities
    (all zero for a text with no word the model knows).

    Args:
        model: The trained classifier (int32 ids of shape ``(None, max_len)`` in).
        encoder_state: The run's ``encoder.json`` (word index, options, ``max_len``).
        path: Directory to create.
    """
    encoder = TextEncoder(encoder_state)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(encoder)

    def serve(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        ids, known_words = encoder.encode(texts)
        probabilities = model(ids, training=False)
        answered = tf.expand_dims(known_words > 0, axis=1)
        return {"probabilities": tf.where(answered, probabilities, tf.zeros_like(probabilities))}

    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="texts")],
    )
    archive.write_out(str(path), verbose=False)


def export_run(
    run_dir: Path | str, out: Path | str, *, last: bool = False, trust_code: bool = False
) -> Path:
    """Export a finished run's best model (or its last) as a text-serving SavedModel.

    ``trust_code`` allows loading the model to run code the run carries
    (:func:`trainways.inference.load_model`).

    Returns:
        The model file that was exported.

    Raises:
        RunDirError: ``out`` exists and is not empty, or ``run_dir`` is not a completed run.
        InferenceError: The model cannot be loaded, or the run has no encoder (a ``Loop``'s, or
            one trained on the user's data).
    """
    from trainways import inference

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise rundir.RunDirError(f"{out} exists and is not empty: choose a new directory")
    # Checked before the model is loaded and traced, not found out after the work.
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    target = out if out.exists() else parent
    if target is None or not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise rundir.RunDirError(f"cannot write {out}: {target} is not a writable directory")
    rundir.require_completed(Path(run_dir))
    inference.refuse_own_data_run(run_dir, "export")
    state = inference.encoder_state(run_dir)
    model, model_path = inference.load_model(run_dir, last=last, trust_code=trust_code)
    export_text_model(model, state, out)
    return model_path
