"""Declarative descriptions of backends, returned by the registration hooks.

A spec is data: the TOML ``type`` name, the attrs class holding the plugin's own config keys,
a factory that builds the backend, and everything the planner must know without running
anything. Behaviour lives in the ABCs of :mod:`rivet_core.backends`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from rivet_core.capabilities import DestinationCapabilities
from rivet_core.dialect import Dialect

MODES = frozenset({"full", "incremental", "chunked", "time_window"})


def _frozenset(value: Any) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class SourceSpec:
    """A database a query can be read from."""

    name: str
    """The ``[source] type`` value, e.g. ``"postgres"``."""
    config_cls: type
    """attrs class for the keys of ``[source]`` other than ``type`` and ``tuning``."""
    factory: Callable[..., Any]
    """``factory(config, context: SourceContext) -> Source``; imports heavy drivers lazily."""
    dialect: Dialect
    """How the runner spells its statements for this database: an instance of a
    :class:`~rivet_core.dialect.Dialect` subclass (see :mod:`rivet_core.dialect`)."""
    modes: frozenset[str] = attrs.field(default=MODES, converter=_frozenset)
    """Export modes this source can serve."""
    description: str = ""


@attrs.frozen(kw_only=True)
class FormatSpec:
    """A file format batches are encoded into."""

    name: str
    """The ``format`` value (or ``[exports.format] type``), e.g. ``"parquet"``."""
    config_cls: type
    """attrs class for the format's own keys in an ``[exports.format]`` table."""
    factory: Callable[..., Any]
    """``factory(config, compression: Compression) -> Format``."""
    extension: str
    """File extension without compression suffix, e.g. ``"parquet"``."""
    codecs: frozenset[str] = attrs.field(converter=_frozenset)
    """Accepted ``compression`` values; ``"none"`` when uncompressed output is allowed."""
    default_codec: str
    """Codec used when the export sets no ``compression``."""
    level_ranges: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)
    """Inclusive ``compression_level`` range per codec; a codec absent here takes no level."""
    profiles: Mapping[str, tuple[str, int | None]] = attrs.field(factory=dict)
    """``compression_profile`` name → (codec, level)."""
    needs_seekable: bool = False
    """The writer seeks backwards in its output (so it cannot write to a pipe)."""
    description: str = ""


@attrs.frozen(kw_only=True)
class DestinationSpec:
    """A place committed files are written to."""

    name: str
    """The ``[exports.destination] type`` value, e.g. ``"local"``."""
    config_cls: type
    """attrs class for the keys of ``[exports.destination]`` other than ``type``."""
    factory: Callable[..., Any]
    """``factory(config, context: DestinationContext) -> Destination``."""
    capabilities: DestinationCapabilities
    """What the destination promises; checked by the planner, proven by the conformance kit."""
    accepts_formats: frozenset[str] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else frozenset(v)
    )
    """Format names it can store, or None for any."""
    seekable: bool = False
    """Its write targets support seeking backwards."""
    description: str = ""


Spec = SourceSpec | FormatSpec | DestinationSpec
