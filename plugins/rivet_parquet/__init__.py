"""The built-in Parquet format: its spec, its config keys and the hook that registers it.

The encoder lives in :mod:`rivet_parquet.writer`, which the spec's factory imports, so that
loading this plugin (for ``rivet --help`` or ``rivet plugins``) does not import
``pyarrow.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from rivet_core import hookimpl
from rivet_core.api import FormatSpec, doc

if TYPE_CHECKING:
    from rivet_core.api import Compression, Format

# pyarrow's ParquetWriter allows row groups up to 64 Mi rows; past that it splits silently.
MAX_ROW_GROUP_ROWS = 64 * 1024 * 1024
MAX_ROW_GROUP_MB = 4096


@attrs.frozen(kw_only=True)
class ParquetOptions:
    """Keys of an ``[exports.format]`` table with ``type = "parquet"``."""

    row_group_rows: int = doc(
        "Most rows in one row group. A row group is written once this many rows are buffered.",
        default=1_048_576,
    )
    row_group_mb: int = doc(
        "Most Arrow memory, in MiB, buffered before a row group is written. With "
        "`max_file_size`, row groups are also cut at a quarter of that size (at least 1 MiB) "
        "so parts end close to the limit.",
        default=64,
    )
    write_statistics: bool = doc(
        "Store min/max/null-count statistics per column chunk, which readers use to skip "
        "row groups.",
        default=True,
    )

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Range checks of the keys; ``config_dir`` is unused."""
        issues: list[tuple[str, str]] = []
        if not 1 <= self.row_group_rows <= MAX_ROW_GROUP_ROWS:
            issues.append(("row_group_rows", f"must be between 1 and {MAX_ROW_GROUP_ROWS:_}, "
                                             f"got {self.row_group_rows}"))
        if not 1 <= self.row_group_mb <= MAX_ROW_GROUP_MB:
            issues.append(("row_group_mb", f"must be between 1 and {MAX_ROW_GROUP_MB}, "
                                           f"got {self.row_group_mb}"))
        return issues


def build_format(config: ParquetOptions, compression: Compression) -> Format:
    """The spec's factory: a configured :class:`~rivet_parquet.writer.ParquetFormat`."""
    from rivet_parquet.writer import ParquetFormat

    return ParquetFormat(config, compression)


PARQUET = FormatSpec(
    name="parquet",
    config_cls=ParquetOptions,
    factory=build_format,
    extension="parquet",
    codecs=frozenset({"zstd", "snappy", "gzip", "lz4", "brotli", "none"}),
    default_codec="zstd",
    level_ranges={"zstd": (1, 22), "gzip": (1, 9), "brotli": (0, 11)},
    profiles={
        "none": ("none", None),
        "fast": ("snappy", None),
        "balanced": ("zstd", 3),
        "compact": ("zstd", 9),
    },
    # With max_file_size a row group is cut at 1 MiB of Arrow data at the least
    # (rivet_parquet.writer), and a part holds at least one.
    min_part_bytes=1 << 20,
    description="Apache Parquet (format 2.6), row groups streamed as they fill.",
)


@hookimpl
def rivet_formats() -> list[FormatSpec]:
    return [PARQUET]
