"""Reuters newswire topic data: build it from Reuters-21578, cache it, load it like Keras.

The package, one job a module (each module's docstring states the quirks it replays):

* :mod:`trainways.data.errors`: :class:`DataError` and the hint its messages end with.
* :mod:`trainways.data.sgml`: the old Keras tokenizer (:func:`tokenize`, :data:`FILTERS`), the
  Python 2 dict order that ranks tied words, the SGML scan, :func:`build_from_sgml` and the
  :class:`Corpus` it returns.
* :mod:`trainways.data.cache`: the trainways cache of SGML builds (:func:`default_cache_dir`,
  cache key, atomic write, read, most recent build).
* :mod:`trainways.data.keras_npz`: Keras's ``reuters.npz`` (restricted unpickling, topic names
  :data:`KERAS_LABEL_NAMES`), Keras's own cache and the download.
* :mod:`trainways.data.identity`: is it the Keras dataset? The :class:`Fingerprint` of a
  corpus (wires, words, sha256), :data:`KERAS_REUTERS`, :func:`check_identity` (refused unless
  ``--allow-other-data`` / ``$TRAINWAYS_ALLOW_OTHER_DATA``) and :func:`check_same_data` (a run's
  own data).
* :mod:`trainways.data.reuters`: the :class:`Reuters` data as loaded (splits, word index, topic
  names, options), its text encoder, the reserved ids (:data:`PAD_ID`, :data:`START_ID`,
  :data:`OOV_ID`, :data:`INDEX_FROM`) and :func:`describe`.
* :mod:`trainways.data.loading`: the conventions of ``keras.datasets.reuters.load_data``:
  :func:`load_reuters`, option checks, where the data comes from (:data:`ENV_DATA`).
* :mod:`trainways.data.inputs`: what the model reads: :func:`pad`, :func:`model_inputs` and the
  :class:`ModelInputs` it returns, :func:`held_out_wires`.
* :mod:`trainways.data.pipeline`: model input streams: :func:`epoch_order`, :class:`EpochClock`,
  :func:`steps_per_epoch`, :func:`make_dataset`, and :class:`NumpyBatches`, the same batches
  without TensorFlow; :func:`batchable` (nested arrays checked, one row a sample).
* :mod:`trainways.data.sources`: every input ``keras.Model.fit`` accepts, prepared for the
  three methods: :func:`prepare_inputs`, the :class:`Inputs` (and :class:`NumpyInputs`) it
  returns, :func:`kind_of`, :class:`OrderedPyDataset`.

Imports run one way: errors ← sgml ← cache ← keras_npz ← loading, and sgml ← identity ← reuters
← loading, reuters ← inputs; pipeline needs only errors; sources needs pipeline.
Only NumPy is imported here; TensorFlow and Keras are imported lazily by the few functions that
need them (:func:`make_dataset`, :class:`NumpyBatches`' nested batches and the Keras download),
and :mod:`trainways.data.sources`, which imports Keras, only when one of its names is first used.
"""

from __future__ import annotations

from trainways.data.cache import BUILDER_VERSION, CACHE_FORMAT, ENV_CACHE, default_cache_dir
from trainways.data.errors import DataError
from trainways.data.identity import (
    ENV_ALLOW_OTHER_DATA,
    KERAS_REUTERS,
    Fingerprint,
    check_identity,
    check_same_data,
    fingerprint_of,
)
from trainways.data.inputs import ModelInputs, held_out_wires, model_inputs, pad
from trainways.data.keras_npz import KERAS_LABEL_NAMES
from trainways.data.loading import ENV_DATA, load_reuters
from trainways.data.pipeline import (
    EpochClock,
    NumpyBatches,
    batchable,
    draw_seed,
    epoch_order,
    make_dataset,
    steps_per_epoch,
)
from trainways.data.reuters import INDEX_FROM, OOV_ID, PAD_ID, START_ID, Reuters, describe
from trainways.data.sgml import FILTERS, MIN_WIRES_PER_TOPIC, Corpus, build_from_sgml, tokenize

# Imported on first use (PEP 562): trainways.data.sources imports Keras, and loading data must
# need neither Keras nor TensorFlow.
_SOURCES = ("Inputs", "NumpyInputs", "OrderedPyDataset", "kind_of", "prepare_inputs")


def __getattr__(name: str) -> object:
    if name in _SOURCES:
        from trainways.data import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILDER_VERSION",
    "CACHE_FORMAT",
    "ENV_ALLOW_OTHER_DATA",
    "ENV_CACHE",
    "ENV_DATA",
    "FILTERS",
    "INDEX_FROM",
    "KERAS_LABEL_NAMES",
    "KERAS_REUTERS",
    "MIN_WIRES_PER_TOPIC",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "Corpus",
    "DataError",
    "EpochClock",
    "Fingerprint",
    "Inputs",
    "ModelInputs",
    "NumpyBatches",
    "NumpyInputs",
    "OrderedPyDataset",
    "Reuters",
    "batchable",
    "build_from_sgml",
    "check_identity",
    "check_same_data",
    "default_cache_dir",
    "describe",
    "draw_seed",
    "epoch_order",
    "fingerprint_of",
    "held_out_wires",
    "kind_of",
    "load_reuters",
    "make_dataset",
    "model_inputs",
    "pad",
    "prepare_inputs",
    "steps_per_epoch",
    "tokenize",
]
