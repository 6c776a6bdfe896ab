"""What the level-3 examples share: their command line and the tutorial's data and model.

Each example is a script a user would write; this keeps the parts that are not the point (parsing
``--data``, padding the wires, building the tutorial's CNN) out of their way.
"""

import argparse

import keras

from trainways.config import ModelConfig
from trainways.data import load_reuters, pad
from trainways.model import build_model

MAX_LEN = 300  # the tutorial's padded length


def arguments(description, argv=None):
    """``--data DIR [--epochs N] [--seed S] [--out DIR] [--max-len N] [--deterministic]
    [--mlflow [URI]]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="the Reuters-21578 directory")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=None, help="run directory (resumes a stopped run)")
    parser.add_argument("--max-len", type=int, default=MAX_LEN)
    parser.add_argument(
        "--deterministic", action="store_true", help="deterministic kernels: runs repeat exactly"
    )
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const=True,
        metavar="TRACKING_URI",
        help="log the run to MLflow (without a URI: $MLFLOW_TRACKING_URI or runs/mlflow.db)",
    )
    return parser.parse_args(argv)


def reuters(args):
    """The tutorial's data: ``(x_train, y_train), (x_test, y_test), vocab_size, num_classes``."""
    data = load_reuters(args.data)
    train = (pad(data.x_train, args.max_len), data.y_train)
    test = (pad(data.x_test, args.max_len), data.y_test)
    return train, test, data.vocab_size, data.num_classes


def tutorial_cnn(vocab_size, num_classes, args):
    """The tutorial's CNN (Embedding 7 → Conv1D 64,5 → … → Dense softmax), seeded."""
    keras.utils.set_random_seed(args.seed)
    return build_model(
        ModelConfig(), vocab_size=vocab_size, num_classes=num_classes, max_len=args.max_len
    )


def accuracy_metrics():
    """The tutorial's metrics: accuracy and top-5 accuracy."""
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
    ]
