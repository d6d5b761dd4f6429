"""Config: attrs models, the TOML loader and its error rendering."""

from __future__ import annotations

from rivet_core.config.loader import LoadedConfig, load_config
from rivet_core.config.models import (
    ChecksConfig,
    ChecksReferences,
    Config,
    DestinationConfig,
    EffectiveTuning,
    ExportConfig,
    FormatConfig,
    SourceConfig,
    Tuning,
    doc,
    effective_tuning,
)

__all__ = [
    "ChecksConfig",
    "ChecksReferences",
    "Config",
    "DestinationConfig",
    "EffectiveTuning",
    "ExportConfig",
    "FormatConfig",
    "LoadedConfig",
    "SourceConfig",
    "Tuning",
    "doc",
    "effective_tuning",
    "load_config",
]
