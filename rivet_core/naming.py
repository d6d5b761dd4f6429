"""Run ids and file names: pure functions, so every destination names files the same way.

A run id is ``YYYYMMDDTHHMMSSZ-xxxxxx`` (UTC start time and six random hex digits). Files are
``<export>_<run_id>.<ext>``, with ``_part0001``, ``_part0002``… when ``max_file_size`` may
split the output. The run id in every name makes each file traceable to its run (and a
duplicate from a re-run identifiable), and two runs in the same second never collide.
"""

from __future__ import annotations

import datetime as dt
import secrets


def new_run_id(started_at: dt.datetime) -> str:
    stamp = started_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def file_stem(export: str, run_id: str, *, chunk: int | None = None) -> str:
    """``orders_20261127T121530Z-a1b2c3[_chunk000012]``: what every file of the run (of the
    chunk) starts with, before the part number and the extension."""
    name = f"{export}_{run_id}"
    if chunk is not None:
        name += f"_chunk{chunk:06d}"
    return name


def file_name(export: str, run_id: str, extension: str, *, part: int | None = None,
              chunk: int | None = None) -> str:
    """``orders_20261127T121530Z-a1b2c3[_chunk000012][_part0001].parquet``."""
    name = file_stem(export, run_id, chunk=chunk)
    if part is not None:
        name += f"_part{part:04d}"
    return f"{name}.{extension}"
