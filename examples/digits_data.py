"""Your own data for ``trainways train``: scikit-learn's handwritten digits, two inputs.

``--data FILE.py:FUNCTION`` names a function without arguments returning ``(train, validation)``,
each what ``Model.fit`` takes (see docs/data.md, "Your own data")::

    trainways train --data examples/digits_data.py:load --model examples/digits_model.py:build \\
        --method loop --epochs 3

The 1,797 8x8 digit images ship with scikit-learn (no download). Each sample is two inputs, by
name: the image, and a small feature vector derived from it (the ink in each row and column),
for the two-input model of ``examples/digits_model.py``. The last fifth validates.
"""

import numpy as np
from sklearn.datasets import load_digits

#: The fraction of the samples, the last ones, kept for validation.
VALIDATION = 0.2


def features(images: np.ndarray) -> np.ndarray:
    """The ink in each of the 8 rows and 8 columns of each image, scaled to [0, 1]."""
    return np.concatenate([images.mean(axis=2), images.mean(axis=1)], axis=1).astype("float32")


def load() -> tuple[tuple, tuple]:
    """``((x, y), (x, y))``: training and validation arrays; ``x`` is a dict of both inputs."""
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")  # 0..16 ink levels to [0, 1]
    x = {"image": images[..., None], "features": features(images)}
    y = digits.target.astype("int32")
    cut = int(len(y) * (1 - VALIDATION))
    train = ({name: part[:cut] for name, part in x.items()}, y[:cut])
    validation = ({name: part[cut:] for name, part in x.items()}, y[cut:])
    return train, validation
