"""The config keys this plugin adds: ``[source]`` with ``type = "sqlite"``
(:class:`SqliteConfig`) and ``[exports.format]`` with ``type = "jsonl"``
(:class:`JsonlOptions`).

Rivet structures these attrs classes with its own converter: TOML keys are the attribute
names, an unknown key is an error with a did-you-mean, and each field's ``doc`` text feeds
the config reference. Cheap to import (the planner loads them before anything runs).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from rivet_core.api import doc


@attrs.frozen(kw_only=True)
class SqliteConfig:
    """Keys of ``[source]`` with ``type = "sqlite"``."""

    path: str = doc(
        "The SQLite database file, relative to the config file's directory (or absolute). "
        "It is opened read-only: Rivet never writes to it.")

    def database(self, config_dir: Path) -> Path:
        """The absolute path of the database file."""
        return (config_dir / Path(self.path).expanduser()).resolve()

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """A path must name a file: SQLite's in-memory and URI spellings would open an
        empty database, or one with other settings than read-only."""
        path = self.path.strip()
        if not path:
            return [("path", "must name the database file")]
        if path == ":memory:" or path.startswith("file:"):
            return [("path", f"{self.path!r} is not a file path (write the path of the "
                             "database file; it is opened read-only)")]
        return []

    def reference_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """The file must exist (checked by commands that read the database only)."""
        database = self.database(config_dir)
        if not database.is_file():
            return [("path", f"no such file: {database}")]
        return []


@attrs.frozen(kw_only=True)
class JsonlOptions:
    """Keys of ``[exports.format]`` with ``type = "jsonl"``: none so far (compression is
    set by the export's ``compression`` and ``compression_level``). The rendering of every
    type is fixed, documented in :mod:`rivet_sqlite_jsonl.jsontext`."""
