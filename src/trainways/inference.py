"""Use a finished run: load its model, evaluate it on the test split, classify new text.

The library functions behind ``trainways evaluate``, ``predict`` and ``export``::

    from trainways import inference

    figures = inference.evaluate("runs/my-run")             # writes evaluation.json + plots
    for p in inference.predict("runs/my-run", ["Oil prices rose ..."], top_k=3):
        print(p.topics[0])                                   # ('crude', 0.93)
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainways import rundir
from trainways.config import RunConfig


class InferenceError(ValueError):
    """A run's model or the given text cannot be used; the message is one line for a user."""


def load_model(
    run_dir: Path | str, *, last: bool = False, trust_code: bool = False
) -> tuple[Any, Path]:
    """The run's best-epoch model (or its last with ``last``), compiled with the run's loss and
    metrics.

    The model file is loaded in Keras's safe mode and no file the run names is imported: a run
    directory is data, and one sent by someone else must not run their code. A model that needs
    its builder's classes (a model with its own ``train_step``) or holds code (a ``Lambda``
    layer) is refused unless ``trust_code``; then the builder file recorded in ``config.json`` is
    imported first (only if Keras does not know the classes already) and safe mode is off.

    The saved compile settings are not read: Keras's PyTorch backend saves its optimizer under a
    module of its own, which would import PyTorch (and Keras on PyTorch) to load a model trained
    there. Inference needs no optimizer, so a run trained on any backend loads on any other.

    Args:
        run_dir: A completed run.
        last: The last epoch's model instead of the best one.
        trust_code: Allow loading to run code the run carries (``--trust-code``).

    Returns:
        The Keras model and the file it came from.

    Raises:
        RunDirError: ``run_dir`` is not a completed run.
        InferenceError: The model file is missing or damaged, needs code that ``trust_code``
            does not allow, or cannot be loaded.
    """
    run_dir = Path(run_dir)
    rundir.require_completed(run_dir)
    from trainways.model import build_loss, build_metrics

    path = run_dir / (
        rundir.MODEL if last or not (run_dir / rundir.BEST).is_file() else rundir.BEST
    )
    model = _load_model_file(path, _builder_ref(run_dir), trust_code=trust_code)
    model.compile(loss=build_loss(), metrics=build_metrics())
    return model, path


#: What Keras says when a model file needs a class it does not know, or code safe mode refuses.
_NEEDS_CODE = ("Could not locate", "safe_mode")


def _load_model_file(path: Path, builder: str | None, *, trust_code: bool) -> Any:
    """``path`` loaded for inference, running no code unless ``trust_code`` (see load_model)."""
    import keras

    if not path.is_file():
        raise InferenceError(f"cannot load the model {path}: the file is missing{_remedy(path)}")
    if not zipfile.is_zipfile(path):
        # Keras says "File not found" of a cut-off archive: say what is true.
        raise InferenceError(
            f"cannot load the model {path}: the file is damaged (not a complete .keras "
            f"archive){_remedy(path)}"
        )
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError) as error:
        first = _first_line(error)
        if not any(needle in str(error) for needle in _NEEDS_CODE):
            raise InferenceError(f"cannot load the model {path}: {first}") from None
    code = f"its builder {builder}" if builder else "code (a Lambda layer or a custom class)"
    if not trust_code:
        raise InferenceError(
            f"the model {path} needs {code} to load, and loading it would run that code: "
            "pass --trust-code (trust_code=True in Python) only if you trust this run"
        )
    if builder is not None:
        _import_builder(builder)
    try:
        return keras.models.load_model(path, compile=False, safe_mode=False)
    except (OSError, ValueError, TypeError) as error:
        raise InferenceError(f"cannot load the model {path}: {_first_line(error)}") from None


def _remedy(path: Path) -> str:
    if path.name == rundir.BEST:
        return ": pass --last to use the last epoch's model, or train the run again"
    return ": train the run again"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _builder_ref(run_dir: Path) -> str | None:
    """The ``FILE.py:FUNCTION`` that built the run's model, or ``None`` for a preset."""
    from trainways.config import is_code_ref

    preset = rundir.read_config(run_dir).get("model", {}).get("preset")
    return preset if is_code_ref(preset) else None


def _import_builder(builder: str) -> None:
    """Import the user's builder file, so that its classes are registered with Keras."""
    from trainways.config import ConfigError
    from trainways.steps import load_function

    try:
        load_function(builder, role="preset")
    except ConfigError as error:
        raise InferenceError(
            f"the run's model comes from {builder}, which is needed to load it: {error}"
        ) from None


def _refuse_loop_run(run_dir: Path) -> None:
    """Refuse a run a ``trainways.Loop`` script made: it records neither an encoder nor data."""
    loop = rundir.read_config(run_dir).get("loop")
    if loop is not None:
        raise InferenceError(
            f"run {run_dir} was made by a trainways.Loop script ({loop.get('script')}), which "
            "records no encoder or data settings: evaluate or use its model.keras in that "
            "script (keras.models.load_model)"
        )


#: What each command does with Reuters, and how to do it in Python on a run of the user's data.
_OWN_DATA_INSTEAD = {
    "evaluate": ("scores the Reuters test split", "call model.evaluate on your data"),
    "predict": ("classifies Reuters newswire text", "call model.predict"),
    "export": ("serves Reuters text", "call model.export"),
}


def refuse_own_data_run(run_dir: Path | str, command: str) -> None:
    """Refuse ``command`` (``evaluate``, ``predict``, ``export``) on a run trained on the user's
    data (``--data FILE.py:FUNCTION``): each reads Reuters text, and running the data function
    the run records would run code the run directory carries.

    Raises:
        InferenceError: The run trained on the user's data (one line saying what works).
    """
    from trainways.config import is_code_ref

    source = rundir.read_config(Path(run_dir)).get("data", {}).get("source")
    if is_code_ref(source):
        does, instead = _OWN_DATA_INSTEAD[command]
        raise InferenceError(
            f"run {run_dir} trained on your data ({source}): {command} {does} and is not "
            f"supported for --data FILE.py:FUNCTION runs; in Python, load "
            f"{Path(run_dir) / rundir.MODEL} with keras.models.load_model and {instead}"
        )


def encoder_state(run_dir: Path | str) -> dict[str, Any]:
    """The run's ``encoder.json``: word index, topics, encoding options and ``max_len``
    (:func:`trainways.rundir.read_encoder`: a damaged one is a one-line error).

    Raises:
        InferenceError: The run was made by a ``trainways.Loop`` script (it has none).
    """
    _refuse_loop_run(Path(run_dir))
    return rundir.read_encoder(Path(run_dir))


def evaluate(
    run_dir: Path | str,
    *,
    data: str | None = None,
    last: bool = False,
    write: bool = True,
    trust_code: bool = False,
) -> dict[str, Any]:
    """The run's model on the test split: loss, accuracy, top-5, F1, per-topic figures.

    Args:
        run_dir: A completed run.
        data: Where to read the data now (default: where the run read it).
        last: Evaluate the last epoch's model instead of the best one.
        write: Also write ``evaluation.json`` and the confusion matrix (PNG and SVG) into the run,
            and, for a run tracked in MLflow, add them and the ``test_*`` figures to its MLflow
            run (:func:`trainways.tracking.log_evaluation`; a failure there is a warning).
        trust_code: Allow loading the model to run code the run carries (:func:`load_model`).

    Returns:
        The figures, as written to ``evaluation.json`` (``model``: the file evaluated).

    Raises:
        DataError: The data is not what the run was trained on (nothing is written).
        InferenceError: The model cannot be loaded (:func:`load_model`), or the run was made by
            a ``trainways.Loop`` script, which records no data to evaluate on, or trained on the
            user's data (:func:`refuse_own_data_run`).
        SymlinkRefused: With ``write``, a file it writes is a symbolic link (nothing is
            written).
        RunDirBusy: With ``write``, another process writes the run (nothing is written).
    """
    run_dir = Path(run_dir)
    rundir.require_completed(run_dir)  # first: no lock file in what is not a run
    refuse_own_data_run(run_dir, "evaluate")
    if not write:
        return _evaluate(run_dir, data=data, last=last, write=False, trust_code=trust_code)
    with rundir.lock(run_dir, advice="wait for it to end, then evaluate it"):
        return _evaluate(run_dir, data=data, last=last, write=True, trust_code=trust_code)


def _evaluate(
    run_dir: Path, *, data: str | None, last: bool, write: bool, trust_code: bool
) -> dict[str, Any]:
    """:func:`evaluate`, under the run directory's lock if it writes."""
    from trainways.data import make_dataset, pad
    from trainways.preflight import check_run_data, load_data
    from trainways.report import plot_confusion_matrix
    from trainways.summary import classification_summary

    _refuse_loop_run(run_dir)
    if write:
        # matplotlib follows a link: a confusion_matrix.png pointing elsewhere is refused first.
        rundir.refuse_links(run_dir, rundir.EVALUATION_ARTIFACTS)
    model, model_path = load_model(run_dir, last=last, trust_code=trust_code)
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
    run_dir: Path | str,
    texts: Sequence[str],
    *,
    top_k: int = 5,
    last: bool = False,
    trust_code: bool = False,
) -> list[Prediction]:
    """The ``top_k`` most likely topics of each text, by the run's model.

    Texts are encoded as the run's data was (the old Keras tokenizer, the run's vocabulary and
    options), then padded to the run's length. A text none of whose words the model knows is
    not classified: its :class:`Prediction` has no topics and says why in ``problem``.

    ``trust_code`` allows loading the model to run code the run carries (:func:`load_model`).

    Raises:
        RunDirError: ``run_dir`` is not a completed run.
        InferenceError: No text, ``top_k`` < 1, the model cannot be loaded, or the run trained
            on the user's data (:func:`refuse_own_data_run`).
    """
    from trainways.data import Reuters, pad

    rundir.require_completed(run_dir)
    refuse_own_data_run(run_dir, "predict")
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
        model, _ = load_model(run_dir, last=last, trust_code=trust_code)
        rows = model.predict(pad([encoded[i] for i in usable], state["max_len"]), verbose=0)
        for i, row in zip(usable, rows, strict=True):
            order = np.argsort(row)[::-1][:top_k]
            predictions[i] = Prediction(
                texts[i], tuple((encoder.topics[j], float(row[j])) for j in order)
            )
    return predictions
