"""The running backend's clipping example (``examples/clipped_model_<backend>.py``) with a clip so
tight that it shows: gradients scaled to a global norm of 1e-9, far below Nadam's epsilon, barely
move the weights. A model builder for ``--model tests/tight_clip.py:build``."""

import importlib.util
from pathlib import Path

import keras

_BACKEND = keras.backend.backend()
_PATH = Path(__file__).resolve().parents[1] / "examples" / f"clipped_model_{_BACKEND}.py"
_SPEC = importlib.util.spec_from_file_location(f"clipped_model_{_BACKEND}", _PATH)
_EXAMPLE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_EXAMPLE)
_EXAMPLE.CLIP_NORM = 1e-9  # read by train_step at every step

build = _EXAMPLE.build
