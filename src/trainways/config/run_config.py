"""A whole run's configuration, :class:`RunConfig` (the four sections), and its JSON form: the
run's ``config.json``, a ``--config`` file, what ``compare`` hands each child."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainways.config.fields import ConfigError, is_code_ref, replace
from trainways.config.sections import DataConfig, DeviceConfig, ModelConfig
from trainways.config.training import TrainConfig

# The sections in their order: config.json's, the option table's and --help's.
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "device": DeviceConfig,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``trainways train`` run needs; saved as the run's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)

    def __post_init__(self) -> None:
        if self.data.is_user_data and not is_code_ref(self.model.preset):
            raise ConfigError(
                f"data {self.data.source!r} is your own and model {self.model.preset!r} is a "
                "Reuters preset: give your model's builder too, as FILE.py:FUNCTION",
                keys=("preset", "source"),
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the configuration."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Rebuild a configuration saved by :meth:`to_dict`, validating it again.

        Sections and keys left out take their defaults.

        Raises:
            ConfigError: A section or key is unknown or a value is invalid.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a configuration is a JSON object of sections, got {raw!r:.60}")
        if "loop" in raw:
            loop = raw["loop"]
            script = loop.get("script") if isinstance(loop, Mapping) else None
            raise ConfigError(
                f"this run was made by trainways.Loop in {script}: run that script again to "
                "resume it"
            )
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}: the sections are "
                f"{', '.join(SECTIONS)}"
            )
        built = {}
        for name, kind in SECTIONS.items():
            values = raw.get(name, {})
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"config section {name!r} must be a JSON object of keys, got {values!r:.60}"
                )
            known = {f.name for f in dataclasses.fields(kind)}
            extra = set(values) - known
            if extra:
                raise ConfigError(f"unknown key(s) {sorted(extra)} in config section {name!r}")
            built[name] = kind(**values)
        return cls(**built)

    def with_values(self, values: Mapping[str, Any]) -> RunConfig:
        """A copy with ``values`` (``"section.key"`` → value) replaced, validated again."""
        changes: dict[str, dict[str, Any]] = {}
        for path, value in values.items():
            section, _, key = path.partition(".")
            changes.setdefault(section, {})[key] = value
        return replace(
            self,
            **{
                section: replace(getattr(self, section), **keys)
                for section, keys in changes.items()
            },
        )
