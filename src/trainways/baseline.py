"""The bar to beat: a TF-IDF + linear SVM classifier on the same split and the same inputs.

scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` and ``LinearSVC(C=0.5)`` on each wire's
word ids, as the models see them (padded and truncated to ``max_len``; the padding dropped). A
strong classical baseline for Reuters topics: what a neural preset has to beat to be worth using.
Needs no TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trainways.data import PAD_ID, pad

#: The baseline's settings: sublinear term frequencies, and the SVM's regularisation.
C = 0.5


@dataclass(frozen=True)
class BaselineResult:
    """How the baseline did on the test split.

    Attributes:
        accuracy: Fraction of test wires whose topic it predicted.
        macro_f1: F1 averaged over the topics with equal weight (46 topics of very unequal size:
            this shows the small ones).
        fit_seconds: Wall time to vectorise the training wires and fit the SVM.
        train_wires: Wires it was fitted on.
        test_wires: Wires it was scored on.
    """

    accuracy: float
    macro_f1: float
    fit_seconds: float
    train_wires: int
    test_wires: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"model": f"TF-IDF + LinearSVC (C={C})", **asdict(self)}


def _documents(sequences: Any, max_len: int) -> list[str]:
    """Each wire as the text of its word ids ("12 7 431 ..."), as the models see it."""
    padded = pad(sequences, max_len)
    return [" ".join(map(str, row[row != PAD_ID])) for row in padded]


def tfidf_svm(reuters: Any, *, max_len: int) -> BaselineResult:
    """Fit the baseline on ``reuters``' training split and score it on the test split.

    Args:
        reuters: Loaded data (:func:`trainways.data.load_reuters`).
        max_len: Ids kept per wire, as the models get them (pre-truncated).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    train = _documents(reuters.x_train, max_len)
    test = _documents(reuters.x_test, max_len)
    # Every id is a token, one-digit ones too (the default pattern wants two characters).
    model = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+", lowercase=False),
        LinearSVC(C=C),
    )
    started = time.perf_counter()
    model.fit(train, np.asarray(reuters.y_train))
    fit_seconds = time.perf_counter() - started
    predicted = model.predict(test)
    y_test = np.asarray(reuters.y_test)
    return BaselineResult(
        accuracy=float(accuracy_score(y_test, predicted)),
        macro_f1=float(f1_score(y_test, predicted, average="macro")),
        fit_seconds=fit_seconds,
        train_wires=len(train),
        test_wires=len(test),
    )
