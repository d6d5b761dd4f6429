"""rivet-sqlite-jsonl: a third-party Rivet plugin with a ``sqlite`` source and a ``jsonl``
format, built on the public API (:mod:`rivet_core.api`) alone.

This module is what the ``rivet`` entry point names. It holds the two specs and the hooks
that return them, and stays cheap to import: the config classes and the dialect are plain
Python, and the modules that need ``sqlite3`` or pyarrow are imported by the factories.

The package, in reading order:

- :mod:`.config`: the ``[source]`` and ``[exports.format]`` keys;
- :mod:`.dialect`: how the runner's SQL is spelt for SQLite, and which optional pieces it
  has; :mod:`.timetext`: the text forms of dates and times that keep SQLite's text
  comparisons in time order;
- :mod:`.source`: the source on the SQL toolkit; :mod:`.probe` (declared types of a
  result), :mod:`.typemap` (declared type → Arrow), :mod:`.columns` (overrides, and how
  each column is built), :mod:`.values` (values → Arrow, each checked), :mod:`.errors`
  (failures → Rivet errors);
- :mod:`.jsonl`: the format and its writer; :mod:`.jsontext`: Arrow → JSON, per type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivet_core.api import FormatSpec, SourceSpec, hookimpl
from rivet_sqlite_jsonl.config import JsonlOptions, SqliteConfig
from rivet_sqlite_jsonl.dialect import DIALECT

if TYPE_CHECKING:
    from rivet_core.api import Compression, Format, Source, SourceContext

__version__ = "0.1.0"

RIVET_PLUGIN_API = ">=1.0,<2"
"""The plugin API versions this plugin is written for: 1.0 and every later 1.x, which only
add what it need not know about. Rivet registers no hook of a plugin whose range excludes
the API it runs (``rivet plugins`` then says why, and how to fix it)."""


def build_source(config: SqliteConfig, context: SourceContext) -> Source:
    """The source spec's factory; the file is opened on first use."""
    from rivet_sqlite_jsonl.source import SqliteSource

    return SqliteSource(config, config_dir=context.config_dir)


def build_format(config: JsonlOptions, compression: Compression) -> Format:
    """The format spec's factory."""
    from rivet_sqlite_jsonl.jsonl import JsonlFormat

    return JsonlFormat(config, compression)


SQLITE = SourceSpec(
    name="sqlite",
    config_cls=SqliteConfig,
    factory=build_source,
    dialect=DIALECT,
    description="SQLite file, opened read-only with the standard library's sqlite3; "
                "columns typed by their declared types (example third-party plugin)",
)

JSONL = FormatSpec(
    name="jsonl",
    config_cls=JsonlOptions,
    factory=build_format,
    extension="jsonl",
    codecs=frozenset({"none", "gzip"}),
    default_codec="none",
    level_ranges={"gzip": (1, 9)},
    profiles={
        "none": ("none", None),
        "fast": ("gzip", 1),
        "balanced": ("gzip", 6),
        "compact": ("gzip", 9),
    },
    description="JSON Lines, one object per row, every type exact (decimals as strings); "
                ".jsonl or .jsonl.gz (example third-party plugin)",
)


@hookimpl
def rivet_sources() -> list[SourceSpec]:
    return [SQLITE]


@hookimpl
def rivet_formats() -> list[FormatSpec]:
    return [JSONL]
