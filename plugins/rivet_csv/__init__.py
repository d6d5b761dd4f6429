"""The built-in CSV format: its spec, its config keys and the hook that registers it.

Output is RFC 4180 text in UTF-8, one line per row, ending in ``\\n``; every type is rendered
losslessly by the rules in :mod:`rivet_csv.render`. The writer lives in
:mod:`rivet_csv.writer`, which the spec's factory imports, so that loading this plugin does
not import ``pyarrow.csv``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from rivet_core import hookimpl
from rivet_core.api import FormatSpec, doc

if TYPE_CHECKING:
    from rivet_core.api import Compression, Format

# Numbers, booleans, dates, times and timestamps are written unquoted, so a delimiter must
# not be a character their text can contain.
_UNQUOTED_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-+.: ")
_ALLOWED_DELIMITERS = frozenset(string.punctuation + "\t") - _UNQUOTED_CHARACTERS - {'"'}


@attrs.frozen(kw_only=True)
class CsvOptions:
    """Keys of an ``[exports.format]`` table with ``type = "csv"``."""

    delimiter: str = doc(
        'Field separator: one ASCII punctuation character or a tab (`","`, `";"`, `"|"`, '
        '`"\\t"`); not `"`, and not `-` `+` `.` `:` or a space, which unquoted values contain.',
        default=",",
    )
    header: bool = doc("Write the column names as the first line.", default=True)

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Checks of ``delimiter``; ``config_dir`` is unused."""
        delimiter = self.delimiter
        if len(delimiter) != 1:
            return [("delimiter", f"must be exactly one character, got {delimiter!r}")]
        if delimiter in _ALLOWED_DELIMITERS:
            return []
        if delimiter in '"\r\n':
            why = "it would clash with quoting or line breaks"
        elif delimiter in _UNQUOTED_CHARACTERS:
            why = "numbers, dates or times are written unquoted and can contain it"
        else:
            why = "only ASCII punctuation or a tab is allowed"
        return [("delimiter", f"{delimiter!r} cannot be the delimiter: {why} "
                              "(try \",\", \";\", \"|\" or \"\\t\")")]


def build_format(config: CsvOptions, compression: Compression) -> Format:
    """The spec's factory: a configured :class:`~rivet_csv.writer.CsvFormat`."""
    from rivet_csv.writer import CsvFormat

    return CsvFormat(config, compression)


CSV = FormatSpec(
    name="csv",
    config_cls=CsvOptions,
    factory=build_format,
    extension="csv",
    codecs=frozenset({"none", "gzip", "zstd"}),
    default_codec="none",
    # zstd takes no level: see rivet_csv.writer (pyarrow's streaming zstd has no level).
    level_ranges={"gzip": (1, 9)},
    profiles={
        "none": ("none", None),
        "fast": ("zstd", None),
        "balanced": ("zstd", None),
        "compact": ("zstd", None),
    },
    description="RFC 4180 CSV, every type rendered losslessly; .csv, .csv.gz or .csv.zst.",
)


@hookimpl
def rivet_formats() -> list[FormatSpec]:
    return [CSV]
