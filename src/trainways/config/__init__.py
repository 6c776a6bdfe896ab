"""Run configuration: frozen dataclasses, validated on construction, and the one option table.

A run is described by a :class:`RunConfig` of four sections. Every field that a user may set
from the command line declares its option right beside it, in the field's metadata
(:func:`option`): flag, help text, help group, parser, and whether ``--resume`` may change it.
The CLI builds its parser from these declarations, :func:`apply_options` turns parsed values
into a configuration, and ``compare`` hands each child its configuration as a file — so a new
setting is one field with one :func:`option`, and nothing else has to be kept in sync.

Every check raises :class:`ConfigError` with one line that repeats the bad value, in the
configuration's own terms (field names): the same message serves the library and the CLI, which
adds the flags the error is about.

The package, one job a module (import everything from here):

* :mod:`trainways.config.fields`: :class:`ConfigError`, the allowed values (:data:`METHODS`,
  ...), :func:`option`, the parsers of an option's text and the checks the sections run.
* :mod:`trainways.config.rules`: runtime rules, applied where they act:
  :func:`check_steps_method`.
* :mod:`trainways.config.sections`: :class:`DataConfig`, :class:`ModelConfig`,
  :class:`DeviceConfig`.
* :mod:`trainways.config.training`: :class:`TrainConfig`.
* :mod:`trainways.config.run_config`: :class:`RunConfig` and its JSON form (``config.json``).
* :mod:`trainways.config.table`: the option table: :class:`Option`, :func:`options`,
  :func:`flags_of`, :func:`apply_options`.

Imports run one way: fields ← rules ← training, fields ← sections, then run_config ← table.
Only the standard library is imported: no Keras, no TensorFlow.
"""

from __future__ import annotations

from trainways.config.fields import (
    BACKENDS,
    LOSSES,
    METHODS,
    PRECISIONS,
    STEPS_PER_EXECUTION_WORDS,
    STRATEGIES,
    TRACKING_AUTO,
    ConfigError,
    is_code_ref,
    option,
    replace,
)
from trainways.config.rules import check_steps_method
from trainways.config.run_config import RunConfig
from trainways.config.sections import DataConfig, DeviceConfig, ModelConfig
from trainways.config.table import Option, apply_options, flags_of, options
from trainways.config.training import TrainConfig

__all__ = [
    "BACKENDS",
    "LOSSES",
    "METHODS",
    "PRECISIONS",
    "STEPS_PER_EXECUTION_WORDS",
    "STRATEGIES",
    "TRACKING_AUTO",
    "ConfigError",
    "DataConfig",
    "DeviceConfig",
    "ModelConfig",
    "Option",
    "RunConfig",
    "TrainConfig",
    "apply_options",
    "check_steps_method",
    "flags_of",
    "is_code_ref",
    "option",
    "options",
    "replace",
]
