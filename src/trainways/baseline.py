"""The bar to beat: a TF-IDF + linear SVM classifier on the same split and the same inputs.

scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` and ``LinearSVC(C=0.5)`` on each wire's
word ids, as the models see them (padded and truncated to ``max_len``; the padding dropped),
fitted on the wires a run trains on and scored on those it validates on
(:func:`trainways.data.model_inputs`). A strong classical baseline for Reuters topics: what a
neural preset has to beat to be worth using. Needs no TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trainways.data import PAD_ID, ModelInputs, model_inputs

#: The baseline's settings: sublinear term frequencies, and the SVM's regularisation.
C = 0.5


@dataclass(frozen=True)
class BaselineResult:
    """How the baseline did on the wires it was scored on.

    Attributes:
        accuracy: Fraction of scored wires whose topic it predicted.
        macro_f1: F1 averaged over the topics with equal weight (46 topics of very unequal size:
            this shows the small ones).
        fit_seconds: Wall time to vectorise the training wires and fit the SVM.
        train_wires: Wires it was fitted on.
        scored_wires: Wires it was scored on.
        scored_on: ``"test"`` (the test split) or ``"validation"`` (wires carved from the
            training split, ``--validation-split``).
    """

    accuracy: float
    macro_f1: float
    fit_seconds: float
    train_wires: int
    scored_wires: int
    scored_on: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"model": f"TF-IDF + LinearSVC (C={C})", **asdict(self)}


def _documents(padded: np.ndarray) -> list[str]:
    """Each wire as the text of its word ids ("12 7 431 ..."), as the models see it."""
    return [" ".join(map(str, row[row != PAD_ID])) for row in padded]


def tfidf_svm(
    reuters: Any, *, max_len: int, validation_split: float | None = None
) -> BaselineResult:
    """Fit the baseline on the wires a run with these data settings trains on and score it on
    those it validates on: the test split, or with ``validation_split`` the carved wires.

    Args:
        reuters: Loaded data (:func:`trainways.data.load_reuters`).
        max_len: Ids kept per wire, as the models get them (pre-truncated).
        validation_split: As ``--validation-split``.
    """
    inputs = model_inputs(reuters, max_len=max_len, validation_split=validation_split)
    return fit_and_score(inputs)


def fit_and_score(inputs: ModelInputs) -> BaselineResult:
    """Fit the baseline on ``inputs``' training wires, score it on its validation wires."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    train, scored = _documents(inputs.x_train), _documents(inputs.x_val)
    # Every id is a token, one-digit ones too (the default pattern wants two characters).
    model = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+", lowercase=False),
        LinearSVC(C=C),
    )
    started = time.perf_counter()
    model.fit(train, inputs.y_train)
    fit_seconds = time.perf_counter() - started
    predicted = model.predict(scored)
    return BaselineResult(
        accuracy=float(accuracy_score(inputs.y_val, predicted)),
        macro_f1=float(f1_score(inputs.y_val, predicted, average="macro")),
        fit_seconds=fit_seconds,
        train_wires=len(train),
        scored_wires=len(scored),
        scored_on="validation" if inputs.held_out else "test",
    )
