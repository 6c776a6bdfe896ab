"""Is it the Keras dataset? The fingerprint of a corpus, and the checks that use it.

The Keras Reuters dataset is a known object, so a build that differs from it (a damaged or
missing ``.sgm`` file, another corpus) is found by comparing a :class:`Fingerprint` — wire
count, word count and a sha256 of the arrays — with :data:`KERAS_REUTERS`. The fingerprint is
taken of the :class:`~trainways.data.sgml.Corpus`, before ``num_words``/``skip_top``/``maxlen``
shape it, so it names the data whatever options a run used, and the SGML build, the trainways
cache and Keras's own ``reuters.npz`` give the same one for the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trainways.data.errors import DataError
from trainways.data.sgml import Corpus

ENV_ALLOW_OTHER_DATA = "TRAINWAYS_ALLOW_OTHER_DATA"

# Bump if the hashed form below changes: every recorded fingerprint would change with it.
_FORMAT = b"trainways-reuters-fingerprint-1"


@dataclass(frozen=True)
class Fingerprint:
    """What a corpus is: its size and a hash of its contents.

    Attributes:
        wires: Number of wires (labelled, in kept topics).
        words: Number of words in the word index.
        sha256: Hex sha256 of the tokens, wire offsets, labels, topic names and word ranking.
    """

    wires: int
    words: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as recorded in a run's ``config.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> Fingerprint:
        """Read what :meth:`to_dict` wrote.

        Raises:
            DataError: ``raw`` is not a recorded fingerprint.
        """
        try:
            return cls(int(raw["wires"]), int(raw["words"]), str(raw["sha256"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"recorded data fingerprint {raw!r:.80} is not {{wires, words, sha256}}: "
                "restore the run's config.json"
            ) from None

    def __str__(self) -> str:
        return f"{self.wires:,} wires, {self.words:,} words, sha256 {self.sha256[:16]}"


# The Keras Reuters dataset (keras.datasets.reuters): a reference checksum, computed once from
# the real Reuters-21578 files (whose build test_data.py checks against Keras's published ids):
#   PYTHONPATH=src python -c "from trainways.data import load_reuters; \
#       print(load_reuters('../shared/data/reuters21578').fingerprint.to_dict())"
# tests/test_data_identity.py asserts that the real files give exactly this, through the SGML
# build, the cache and a Keras-format npz alike.
KERAS_REUTERS = Fingerprint(
    wires=11_228,
    words=30_979,
    sha256="7574fd59733dbeb212722a747f4350db5e9476f14fc9944148d7a6ee3bf456ee",
)


def fingerprint_of(corpus: Corpus) -> Fingerprint:
    """The fingerprint of a corpus, independent of where it was read from.

    Arrays are hashed as little-endian int64 whatever their stored dtype (the SGML build and
    the cache keep int32, Keras's npz int64); topic names and the word ranking as canonical
    JSON. Each part is length-prefixed so that no two different corpora hash the same bytes.

    Args:
        corpus: The corpus as built or read, before the load-time options.

    Returns:
        Its :class:`Fingerprint`.
    """
    digest = hashlib.sha256(_FORMAT)

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for array in (corpus.tokens, corpus.offsets, corpus.labels):
        part(np.ascontiguousarray(array, dtype="<i8").tobytes())
    part(json.dumps(list(corpus.topics)).encode())
    ranking = sorted((rank, word) for word, rank in corpus.word_index.items())
    part(json.dumps(ranking).encode())
    return Fingerprint(len(corpus.labels), len(corpus.word_index), digest.hexdigest())


def other_data_allowed(allow_other: bool = False) -> bool:
    """Whether data other than Keras's may be used: ``allow_other`` or the environment says so.

    ``$TRAINWAYS_ALLOW_OTHER_DATA`` set to ``1`` (or ``true``/``yes``/``on``) is the same
    permission as ``--allow-other-data``, for scripts and test suites.
    """
    value = os.environ.get(ENV_ALLOW_OTHER_DATA, "").strip().lower()
    return allow_other or value in {"1", "true", "yes", "on"}


def check_identity(found: Fingerprint | None, source: str, *, allow_other: bool = False) -> bool:
    """Refuse data that is not the Keras Reuters dataset, unless that is intended.

    Args:
        found: The loaded data's fingerprint (``None``: nothing to check, e.g. an encoder).
        source: Where the data came from, for the message.
        allow_other: The user said other data is intended (``--allow-other-data``).

    Returns:
        Whether the data is the Keras dataset (``False``: other data, allowed).

    Raises:
        DataError: Other data, not allowed; one line with what was found and what Keras's is.
    """
    if found is None or found == KERAS_REUTERS:
        return True
    if other_data_allowed(allow_other):
        return False
    keras = KERAS_REUTERS
    raise DataError(
        f"{source} has {found.wires:,} wires and {found.words:,} words (sha256 "
        f"{found.sha256[:16]}), not Keras's {keras.wires:,} and {keras.words:,} (sha256 "
        f"{keras.sha256[:16]}): it is not the Keras Reuters dataset; pass --allow-other-data "
        f"(or set {ENV_ALLOW_OTHER_DATA}=1) if that is intended"
    )


def check_same_data(found: Fingerprint | None, recorded: Any, source: str, run: str) -> None:
    """Refuse data other than the data a run was trained on.

    Args:
        found: The loaded data's fingerprint.
        recorded: The fingerprint the run's ``config.json`` recorded (its ``to_dict()``), or
            ``None`` for a run made before runs recorded one (accepted).
        source: Where the data came from now, for the message.
        run: The run directory, for the message.

    Raises:
        DataError: The fingerprints differ; one line naming both.
    """
    if recorded is None or found is None:
        return
    expected = Fingerprint.from_dict(recorded)
    if found != expected:
        raise DataError(
            f"{source} ({found}) is not the data {run} was trained on ({expected}): "
            "point --data at that data"
        )
