"""Use a finished run: load its model, evaluate it on the test split, classify new text.

The library functions behind ``trainways evaluate``, ``predict`` and ``export``::

    from trainways import inference

    figures = inference.evaluate("runs/my-run")             # writes evaluation.json + plots
    for p in inference.predict("runs/my-run", ["Oil prices rose ..."], top_k=3):
        print(p.topics[0])                                   # ('crude', 0.93)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainways import rundir
from trainways.config import RunConfig


class InferenceError(ValueError):
    """A run's model or the given text cannot be used; the message is one line for a user."""


def load_model(run_dir: Path | str, *, last: bool = False) -> tuple[Any, Path]:
    """The run's best-epoch model (or its last with ``last``), compiled with the run's loss and
    metrics.

    The saved compile settings are not read: Keras's PyTorch backend saves its optimizer under a
    module of its own, which would import PyTorch (and Keras on PyTorch) to load a model trained
    there. Inference needs no optimizer, so a run trained on any backend loads on any other.

    Returns:
        The Keras model and the file it came from.

    Raises:
        RunDirError: ``run_dir`` is not a completed run.
        InferenceError: The model file cannot be loaded.
    """
    run_dir = Path(run_dir)
    rundir.require_completed(run_dir)
    import keras

    from trainways.model import build_loss, build_metrics

    _import_model_code(run_dir)
    path = run_dir / (
        rundir.MODEL if last or not (run_dir / rundir.BEST).is_file() else rundir.BEST
    )
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise InferenceError(f"cannot load the model {path}: {first}") from None
    model.compile(loss=build_loss(), metrics=build_metrics())
    return model, path


def _import_model_code(run_dir: Path) -> None:
    """Import the file of a model built by the user's ``FILE.py:FUNCTION``: its classes (a model
    with its own ``train_step``) must be registered with Keras before the model loads."""
    from trainways.config import ConfigError, is_code_ref
    from trainways.steps import load_function

    preset = rundir.read_config(run_dir).get("model", {}).get("preset")
    if not is_code_ref(preset):
        return
    try:
        load_function(preset, role="preset")
    except ConfigError as error:
        raise InferenceError(
            f"the run's model comes from {preset}, which is needed to load it: {error}"
        ) from None


def encoder_state(run_dir: Path | str) -> dict[str, Any]:
    """The run's ``encoder.json``: word index, topics, encoding options and ``max_len``."""
    return rundir.read_json(Path(run_dir) / rundir.ENCODER)


def evaluate(
    run_dir: Path | str, *, data: str | None = None, last: bool = False, write: bool = True
) -> dict[str, Any]:
    """The run's model on the test split: loss, accuracy, top-5, F1, per-topic figures.

    Args:
        run_dir: A completed run.
        data: Where to read the data now (default: where the run read it).
        last: Evaluate the last epoch's model instead of the best one.
        write: Also write ``evaluation.json`` and the confusion matrix (PNG and SVG) into the run,
            and, for a run tracked in MLflow, add them and the ``test_*`` figures to its MLflow
            run (:func:`trainways.tracking.log_evaluation`; a failure there is a warning).

    Returns:
        The figures, as written to ``evaluation.json`` (``model``: the file evaluated).

    Raises:
        DataError: The data is not what the run was trained on (nothing is written).
        RunDirBusy: With ``write``, another process writes the run (nothing is written).
    """
    run_dir = Path(run_dir)
    if not write:
        return _evaluate(run_dir, data=data, last=last, write=False)
    rundir.require_completed(run_dir)  # first: no lock file in what is not a run
    with rundir.lock(run_dir, advice="wait for it to end, then evaluate it"):
        return _evaluate(run_dir, data=data, last=last, write=True)


def _evaluate(run_dir: Path, *, data: str | None, last: bool, write: bool) -> dict[str, Any]:
    """:func:`evaluate`, under the run directory's lock if it writes."""
    from trainways.data import make_dataset, pad
    from trainways.preflight import check_run_data, load_data
    from trainways.report import plot_confusion_matrix
    from trainways.summary import classification_summary

    model, model_path = load_model(run_dir, last=last)
    config = RunConfig.from_dict(rundir.read_config(run_dir))
    data_config = config.data
    if data:
        data_config = replace(data_config, source=str(Path(data).resolve()))
    reuters = load_data(data_config)
    # Figures on other data than the run's would overwrite evaluation.json with nonsense.
    check_run_data(replace(config, data=data_config), reuters, run_dir)
    test = make_dataset(
        pad(reuters.x_test, data_config.max_len),
        reuters.y_test,
        batch_size=config.train.batch_size,
        shuffle=False,
    )
    loss = float(model.evaluate(test, return_dict=True, verbose=0)["loss"])
    probabilities = model.predict(test, verbose=0)
    summary = classification_summary(reuters.y_test, probabilities, reuters.topics)
    figures = {
        "model": str(model_path),
        "data": reuters.source,
        "test_wires": len(reuters.y_test),
        "loss": loss,
        **summary,
    }
    if write:
        rundir.write_json(run_dir / rundir.EVALUATION, figures)
        for suffix in ("png", "svg"):
            plot_confusion_matrix(
                summary["confusion_matrix"],
                reuters.topics,
                run_dir / f"{rundir.CONFUSION}.{suffix}",
            )
        from trainways.tracking import log_evaluation

        log_evaluation(run_dir, figures)
    return figures


@dataclass(frozen=True)
class Prediction:
    """The most likely topics of one text.

    Attributes:
        text: The text as given.
        topics: ``(topic, probability)`` pairs, most likely first; empty when ``problem`` says
            why the text could not be classified.
        problem: ``None``, or why the text was not classified (no known word).
    """

    text: str
    topics: tuple[tuple[str, float], ...]
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        payload: dict[str, Any] = {
            "text": self.text,
            "topics": [{"topic": t, "probability": p} for t, p in self.topics],
        }
        if self.problem:
            payload["problem"] = self.problem
        return payload


def predict(
    run_dir: Path | str, texts: Sequence[str], *, top_k: int = 5, last: bool = False
) -> list[Prediction]:
    """The ``top_k`` most likely topics of each text, by the run's model.

    Texts are encoded as the run's data was (the old Keras tokenizer, the run's vocabulary and
    options), then padded to the run's length. A text none of whose words the model knows is
    not classified: its :class:`Prediction` has no topics and says why in ``problem``.

    Raises:
        RunDirError: ``run_dir`` is not a completed run.
        InferenceError: No text, or ``top_k`` < 1.
    """
    from trainways.data import Reuters, pad

    rundir.require_completed(run_dir)
    if not texts or not any(text.strip() for text in texts):
        raise InferenceError("no text to classify: give a newswire text")
    if top_k < 1:
        raise InferenceError(f"top_k must be >= 1, got {top_k}")
    state = encoder_state(run_dir)
    encoder = Reuters.from_encoder_state(state, source=str(run_dir))
    specials = (state["start_char"], state["oov_char"])
    encoded = [encoder.encode(text) for text in texts]
    usable = [i for i, ids in enumerate(encoded) if any(t not in specials for t in ids)]
    predictions = [
        Prediction(
            text,
            (),
            f"no word of {text[:60]!r} is in the model's vocabulary: give English newswire text",
        )
        for text in texts
    ]
    if usable:
        model, _ = load_model(run_dir, last=last)
        rows = model.predict(pad([encoded[i] for i in usable], state["max_len"]), verbose=0)
        for i, row in zip(usable, rows, strict=True):
            order = np.argsort(row)[::-1][:top_k]
            predictions[i] = Prediction(
                texts[i], tuple((encoder.topics[j], float(row[j])) for j in order)
            )
    return predictions
