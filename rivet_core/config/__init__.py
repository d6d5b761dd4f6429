"""Config: attrs models, the TOML loader and its error rendering.

The models are imported eagerly (they need only attrs, so a plugin's ``config_cls`` module
stays cheap to import); the loader, which pulls in the type mapping and pyarrow, is loaded
on first use of :func:`load_config` or :class:`LoadedConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from rivet_core.config.loader import LoadedConfig, load_config

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

_LAZY = {"LoadedConfig", "load_config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from rivet_core.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
