"""A one-export config loaded through Rivet's real loader, for the conformance kits.

Each kit proves that a backend's keys survive the way a user writes them: TOML text, the
loader's structuring and its rules, with the backend under test registered beside
stand-ins for the other kinds, so no other plugin need be installed. Every kit
(:mod:`.sources`, :mod:`.formats`, :mod:`.destinations`) loads its configs here; what each
one checks about the loaded options lives in the kit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core import hookimpl
from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
from rivet_core.dialect import Dialect
from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec

if TYPE_CHECKING:
    from rivet_core.config.models import Config, ExportConfig

# Names of the stand-in backends registered beside the one under test.
KIT_SOURCE = "kit-source"
KIT_FORMAT = "kit-format"
KIT_DESTINATION = "kit-destination"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_lines(keys: dict[str, Any] | None) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in (keys or {}).items()
            if value is not None]


def config_toml(*, source_type: str = KIT_SOURCE, source_keys: dict[str, Any] | None = None,
                destination_type: str = KIT_DESTINATION,
                destination_keys: dict[str, Any] | None = None,
                format_type: str = KIT_FORMAT, format_keys: dict[str, Any] | None = None,
                export_keys: dict[str, Any] | None = None) -> str:
    """A minimal ``rivet.toml`` with one export, ``kit``: ``source_keys`` in ``[source]``,
    ``export_keys`` in the export (e.g. ``compression``), ``format_keys`` in its
    ``[exports.format]`` table and ``destination_keys`` in its ``[exports.destination]``
    table."""
    lines = ["[source]", f"type = {json.dumps(source_type)}", *_toml_lines(source_keys), "",
             "[[exports]]", 'name = "kit"', 'query = "SELECT 1"', *_toml_lines(export_keys),
             "", "[exports.format]", f"type = {json.dumps(format_type)}",
             *_toml_lines(format_keys), "", "[exports.destination]",
             f"type = {json.dumps(destination_type)}", *_toml_lines(destination_keys)]
    return "\n".join(lines) + "\n"


@attrs.frozen
class _NoOptions:
    """Config of the kit's stand-in backends."""


class _KitPlugin:
    """Registers the backend under test beside stand-ins for the other kinds, so the real
    loader can structure a config without any other plugin installed."""

    def __init__(self, source: SourceSpec | None, destination: DestinationSpec | None,
                 format_spec: FormatSpec | None) -> None:
        self.source = source
        self.destination = destination
        self.format_spec = format_spec

    @hookimpl
    def rivet_sources(self) -> list[SourceSpec]:
        if self.source is not None:
            return [self.source]
        return [SourceSpec(name=KIT_SOURCE, config_cls=_NoOptions, factory=_unused,
                           dialect=Dialect())]

    @hookimpl
    def rivet_formats(self) -> list[FormatSpec]:
        if self.format_spec is not None:
            return [self.format_spec]
        return [FormatSpec(name=KIT_FORMAT, config_cls=_NoOptions, factory=_unused,
                           extension="bin", codecs={"none"}, default_codec="none")]

    @hookimpl
    def rivet_destinations(self) -> list[DestinationSpec]:
        if self.destination is not None:
            return [self.destination]
        return [DestinationSpec(
            name=KIT_DESTINATION, config_cls=_NoOptions, factory=_unused,
            capabilities=DestinationCapabilities(
                commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                retry_safe=True, partial_write_risk=False, multi_file=True))]


def _unused(*_: object) -> Any:
    raise AssertionError("the conformance kit never builds its stand-in backends")


def load_kit_config(directory: Path, *, source: SourceSpec | None = None,
                    source_keys: dict[str, Any] | None = None,
                    destination: DestinationSpec | None = None,
                    destination_keys: dict[str, Any] | None = None,
                    format_spec: FormatSpec | None = None,
                    format_keys: dict[str, Any] | None = None,
                    export_keys: dict[str, Any] | None = None) -> Config:
    """Load a one-export config through Rivet's real loader (TOML, structuring, the rules)
    with the backends under test registered, and return it. Raises
    :class:`~rivet_core.errors.ConfigError` exactly as ``rivet run`` would report it."""
    from rivet_core.config.loader import load_config
    from rivet_core.plugins import build_registry

    registry = build_registry(autoload=False,
                              extra=[("kit", _KitPlugin(source, destination, format_spec))])
    for spec in (source, destination, format_spec):
        if spec is not None:
            problems = [p for p in registry.problems if p.backend == spec.name]
            assert not problems, f"the registry refused {spec.name!r}: {problems}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rivet.toml"
    path.write_text(config_toml(
        source_type=source.name if source else KIT_SOURCE, source_keys=source_keys,
        destination_type=destination.name if destination else KIT_DESTINATION,
        destination_keys=destination_keys,
        format_type=format_spec.name if format_spec else KIT_FORMAT,
        format_keys=format_keys, export_keys=export_keys), encoding="utf-8")
    return load_config(path, registry).config


def load_kit_export(directory: Path, *, destination: DestinationSpec | None = None,
                    destination_keys: dict[str, Any] | None = None,
                    format_spec: FormatSpec | None = None,
                    format_keys: dict[str, Any] | None = None,
                    export_keys: dict[str, Any] | None = None) -> ExportConfig:
    """The one export of :func:`load_kit_config` (the destination or format under test in
    its tables)."""
    return load_kit_config(directory, destination=destination,
                           destination_keys=destination_keys, format_spec=format_spec,
                           format_keys=format_keys, export_keys=export_keys).exports[0]
