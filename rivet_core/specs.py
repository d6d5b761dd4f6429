"""Declarative descriptions of backends, returned by the registration hooks.

A spec is data: the TOML ``type`` name, the attrs class holding the plugin's own config keys,
a factory that builds the backend, and everything the planner must know without running
anything. Behaviour lives in the ABCs of :mod:`rivet_core.backends`. :func:`spec_problems`
checks a declaration on its own; what needs the other installed plugins (a name claimed
twice) is the registry's business (:mod:`rivet_core.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from rivet_core.capabilities import DestinationCapabilities, check_declaration
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
    min_part_bytes: int = 0
    """The finest a part can be cut, in bytes of data: the writer emits whole blocks of
    about this size (Parquet: a row group), so a ``max_file_size`` below it yields larger
    parts, which ``rivet check`` warns about. 0: bytes are written as they come."""
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


def spec_problems(spec: object) -> list[str]:
    """Every mistake in a spec's declaration, empty when it can be registered.

    The registry refuses a spec with problems (a config naming it then fails with the
    reason), and a conformance kit can assert there are none. Each message names the field
    and the value the author wrote."""
    if not isinstance(spec, SourceSpec | FormatSpec | DestinationSpec):
        return [f"expected a SourceSpec, FormatSpec or DestinationSpec, got "
                f"{type(spec).__name__}"]
    problems: list[str] = []
    if not isinstance(spec.name, str) or not spec.name:
        problems.append(f"name must be a non-empty string, got {spec.name!r}")
    if not (isinstance(spec.config_cls, type) and attrs.has(spec.config_cls)):
        problems.append(f"config_cls must be an attrs class (@attrs.frozen(kw_only=True)), "
                        f"got {spec.config_cls!r}")
    if not callable(spec.factory):
        problems.append(f"factory must be callable, got {spec.factory!r}")
    if isinstance(spec, SourceSpec):
        problems += _source_problems(spec)
    elif isinstance(spec, FormatSpec):
        problems += _format_problems(spec)
    else:
        problems += [f"capabilities: {p}" for p in check_declaration(spec.capabilities)]
    return problems


def _source_problems(spec: SourceSpec) -> list[str]:
    problems = [
        f"modes: {mode!r} is not a mode (modes: {', '.join(sorted(MODES))})"
        for mode in sorted(spec.modes - MODES, key=repr)
    ]
    dialect = spec.dialect
    if isinstance(dialect, type) and issubclass(dialect, Dialect):
        problems.append(f"dialect must be an instance of a rivet_core.dialect.Dialect "
                        f"subclass, got the class {dialect.__name__}: pass an instance, "
                        f"{dialect.__name__}()")
    elif not isinstance(dialect, Dialect):
        problems.append(f"dialect must be an instance of a rivet_core.dialect.Dialect "
                        f"subclass, got {type(dialect).__name__}")
    return problems


def _format_problems(spec: FormatSpec) -> list[str]:
    # Every value is checked for its type before it is used, so that a declaration written
    # with the wrong types yields problems, not an exception from the checks themselves.
    codecs = {c for c in spec.codecs if isinstance(c, str)}
    known = ", ".join(sorted(codecs))
    problems = [f"codecs must be strings, got {c!r}" for c in spec.codecs
                if not isinstance(c, str)]
    if not (isinstance(spec.default_codec, str) and spec.default_codec in codecs):
        problems.append(f"default_codec {spec.default_codec!r} is not in codecs ({known})")
    ranges: dict[str, tuple[int, int]] = {}
    if not isinstance(spec.level_ranges, Mapping):
        problems.append(f"level_ranges must be a mapping of codec to (lowest, highest), "
                        f"got {spec.level_ranges!r}")
    else:
        for codec, bounds in spec.level_ranges.items():
            if codec not in codecs:
                problems.append(f"level_ranges names codec {codec!r}, which is not in codecs "
                                f"({known})")
            elif _is_range(bounds):
                ranges[codec] = bounds
            else:
                problems.append(f"level_ranges[{codec!r}] must be (lowest, highest) integers, "
                                f"lowest first, got {bounds!r}")
    if not isinstance(spec.profiles, Mapping):
        problems.append(f"profiles must be a mapping of name to (codec, level or None), "
                        f"got {spec.profiles!r}")
        return problems
    for profile, setting in spec.profiles.items():
        if not (isinstance(setting, tuple) and len(setting) == 2):
            problems.append(f"profiles[{profile!r}] must be (codec, level or None), "
                            f"got {setting!r}")
            continue
        codec, level = setting
        if not (isinstance(codec, str) and codec in codecs):
            problems.append(f"profiles[{profile!r}] names codec {codec!r}, which is not in "
                            f"codecs ({known})")
        elif level is not None and codec not in spec.level_ranges:
            problems.append(f"profiles[{profile!r}] sets level {level!r} for {codec!r}, which "
                            f"takes no level (it has no level_ranges entry)")
        elif level is not None and codec in ranges:
            low, high = ranges[codec]
            if not (_is_int(level) and low <= level <= high):
                problems.append(f"profiles[{profile!r}] sets level {level!r} for {codec!r}, "
                                f"outside level_ranges {low}..{high}")
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_range(value: object) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value))
            and value[0] <= value[1])
