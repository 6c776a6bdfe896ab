"""What the configuration's sections are made of: the error type, :func:`option` (a field the
command line can set), the parsers that turn an option's text into a value, and the checks the
sections run on construction.

Every check raises :class:`ConfigError` with one line that repeats the bad value, in the
configuration's own terms (field names): the same message serves the library and the CLI, which
adds the flags the error is about.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

METHODS: tuple[str, ...] = ("fit", "batch", "loop")
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multiworker")
BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")
LOSSES: tuple[str, ...] = ("crossentropy", "hinge", "squared_hinge")
# --mlflow without a URI: $MLFLOW_TRACKING_URI, else a SQLite store beside the runs.
TRACKING_AUTO = "auto"


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line fit for a user.

    Attributes:
        keys: The configuration fields the error is about (the CLI names their flags).
    """

    def __init__(self, message: str, *, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


def option(
    default: Any = None,
    *,
    flag: str,
    help: str,
    group: str,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    resumable: bool = False,
    const: Any = None,
) -> Any:
    """A dataclass field that the command line can set.

    Args:
        default: The field's default (the one source of truth for it).
        flag: Its command-line flag, e.g. ``--batch-size``.
        help: One sentence for ``--help``; ``{default}`` is replaced by the default.
        group: The ``--help`` section it is listed in.
        parse: Turns the flag's text into a value (``None``: a boolean switch).
        metavar: Placeholder shown in ``--help``.
        choices: The allowed values, for ``--help`` and argparse.
        resumable: Whether ``--resume`` may change it (devices, the data's location).
        const: The value of the flag given without one (its value is then optional).
    """
    metadata = {
        "flag": flag,
        "help": help,
        "group": group,
        "parse": parse,
        "metavar": metavar,
        "choices": choices,
        "resumable": resumable,
        "const": const,
    }
    return field(default=default, metadata=metadata)


def _number(convert: type) -> Callable[[str], Any]:
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise ValueError(f"expected {kind}, got {text!r}") from None

    parse.__name__ = convert.__name__  # argparse names the type in its message
    return parse


parse_int = _number(int)  # a whole number
parse_float = _number(float)  # a number


STEPS_PER_EXECUTION_WORDS: tuple[str, ...] = ("auto", "epoch")


def parse_steps_per_execution(text: str) -> int | str:
    """``--steps-per-execution``: a whole number, ``auto`` or ``epoch``."""
    if text in STEPS_PER_EXECUTION_WORDS:
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, 'auto' or 'epoch', got {text!r}") from None


def parse_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated GPU indices, ``0,1``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected GPU indices like 0,1, got {text!r}") from None


def parse_str_list(text: str) -> tuple[str, ...]:
    """Comma-separated words, blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def is_code_ref(text: Any) -> bool:
    """Whether ``text`` names a function in a Python file: ``FILE.py:FUNCTION``."""
    return isinstance(text, str) and ".py:" in text


def parse_code_ref(text: str) -> str:
    """``FILE.py:FUNCTION``, with the file made absolute."""
    # The file absolute, so that --resume and compare's children find it from any directory.
    path, _, name = text.rpartition(":")
    if not path.endswith(".py") or not name.isidentifier():
        raise ValueError(f"expected FILE.py:FUNCTION, got {text!r}")
    return f"{Path(path).expanduser().resolve()}:{name}"


def parse_preset(text: str) -> str:
    """A preset's name, or a builder's ``FILE.py:FUNCTION`` (made absolute)."""
    return parse_code_ref(text) if is_code_ref(text) else text


def parse_path(text: str) -> str:
    """A path, made absolute."""
    # Absolute, so that evaluate and --resume find it from any directory.
    return str(Path(text).expanduser().resolve())


def parse_data_source(text: str) -> str:
    """``--data``: the Reuters data's path, or a data function's ``FILE.py:FUNCTION``, made
    absolute."""
    return parse_code_ref(text) if is_code_ref(text) else parse_path(text)


def check_code_ref(key: str, value: str) -> None:
    """``value`` is a ``FILE.py:FUNCTION``."""
    try:
        parse_code_ref(value)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}", keys=(key,)) from None


def check_types(section: Any) -> None:
    """Every field of ``section`` holds a value of its declared type, or a one-line error.

    A ``config.json`` or ``--config`` file may say ``"batch_size": 2.5`` or ``"epochs": "3"``;
    refused here, by the field's name, before anything trains or any file is touched. A whole
    number is also a number; a boolean is neither. Lists stand for tuples (JSON has no tuples),
    and NumPy's scalars become Python's, so that the configuration saves as plain JSON.

    Raises:
        ConfigError: A field's value is not of its type.
    """
    for name, hint in _type_hints(type(section)).items():
        value = getattr(section, name)
        if not _is_a(value, hint):
            raise ConfigError(f"{name} must be {_kind(hint)}, got {value!r}", keys=(name,))
        if isinstance(value, numbers.Number) and type(value) not in (bool, int, float):
            plain = int(value) if isinstance(value, numbers.Integral) else float(value)
            object.__setattr__(section, name, plain)


@functools.cache
def _type_hints(kind: type) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _is_a(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, arg) for arg in args)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        kind = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool)
    if origin is tuple:  # tuple[X, ...]
        return isinstance(value, (tuple, list)) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, Mapping)
    return isinstance(value, hint)


def _kind(hint: Any) -> str:
    """A type in words: ``int | None`` is "a whole number or null"."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg) for arg in args)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_kind(args[0]).partition(' ')[2]}s"
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    words[type(None)] = "null"
    return words.get(hint, "an object" if typing.get_origin(hint) is dict else str(hint))


def check_positive(key: str, value: float | None) -> None:
    """``value`` is positive and finite; ``None`` passes."""
    # `not value > 0` also catches NaN; infinity is positive, but no setting means it.
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ConfigError(f"{key} must be positive, got {value!r}", keys=(key,))
    if value is not None and math.isinf(value):
        raise ConfigError(f"{key} must be finite, got {value!r}", keys=(key,))


def check_fraction(key: str, value: float | None, *, zero: bool = True) -> None:
    """``value`` in [0, 1), or (0, 1) without ``zero``; ``None`` passes."""
    if value is None:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (0 <= value < 1 if zero else 0 < value < 1):
        bounds = "[0, 1)" if zero else "(0, 1)"
        raise ConfigError(f"{key} must be in {bounds}, got {value!r}", keys=(key,))


def check_at_least_zero(key: str, value: int) -> None:
    """``value`` is a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a whole number >= 0, got {value!r}", keys=(key,))


def check_one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    """``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(
            f"unknown {key} {value!r}: choose one of {', '.join(allowed)}", keys=(key,)
        )


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names an unknown key in a :class:`ConfigError`."""
    known = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {type(obj).__name__}: choose from "
            f"{', '.join(sorted(known))}"
        )
    return dataclasses.replace(obj, **changes)
