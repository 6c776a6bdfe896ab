"""The option table: every field declared with :func:`~trainways.config.fields.option`, read
back as :class:`Option` rows (:func:`options`), their flags (:func:`flags_of`), and the one way
from given options to a configuration (:func:`apply_options`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trainways.config.run_config import SECTIONS, RunConfig


@dataclass(frozen=True)
class Option:
    """One command-line option of the table: which field it sets and how."""

    path: str  # "section.key"
    key: str
    flag: str
    help: str
    group: str
    parse: Callable[[str], Any] | None
    metavar: str | None
    choices: tuple[str, ...] | None
    resumable: bool
    default: Any
    const: Any = None

    @property
    def dest(self) -> str:
        """The argparse destination: the configuration path, dots included."""
        return self.path


def options() -> Iterator[Option]:
    """Every option of the table, section by section, in declaration order."""
    for section, kind in SECTIONS.items():
        for f in dataclasses.fields(kind):
            if "flag" not in f.metadata:
                continue
            meta = f.metadata
            yield Option(
                path=f"{section}.{f.name}",
                key=f.name,
                flag=meta["flag"],
                help=meta["help"].replace("{default}", str(f.default)),
                group=meta["group"],
                parse=meta["parse"],
                metavar=meta["metavar"],
                choices=meta["choices"],
                resumable=meta["resumable"],
                default=f.default,
                const=meta["const"],
            )


def flags_of(keys: tuple[str, ...]) -> list[str]:
    """The command-line flags of configuration keys (field names), in the table's order."""
    return [o.flag for o in options() if o.key in keys]


def apply_options(base: RunConfig, given: Mapping[str, Any]) -> RunConfig:
    """``base`` with the options that were given (``"section.key"`` → value; ``None``: not given).

    A new single-device choice (``gpu``, ``gpu_memory_limit``, ``cpu``) replaces the old one
    rather than mixing with it, so a resumed run can move from a GPU to the CPU.
    """
    values = {path: value for path, value in given.items() if value is not None}
    single_device = ("device.gpu", "device.gpu_memory_limit", "device.cpu")
    if any(path in values for path in single_device):
        values = {
            "device.gpu": None,
            "device.gpu_memory_limit": None,
            "device.cpu": False,
            **values,
        }
    return base.with_values(values) if values else base
