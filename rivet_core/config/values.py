"""Parsers for the human-friendly scalar values a config holds (sizes, durations)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str | int) -> int:
    """Bytes in ``"256MB"``, ``"1.5GiB"``, ``"512KB"`` or a bare number of bytes.

    Units are binary (``MB`` = ``MiB`` = 1,048,576 bytes), as in the reference tool.
    Raises ``ValueError`` on anything else, or on a size below one byte.
    """
    if isinstance(text, bool):
        raise ValueError(f"invalid size {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if not match:
            raise ValueError(f"invalid size {text!r}; write e.g. \"256MB\", \"1.5GB\" or \"512KB\"")
        unit = (match.group(2) or "").upper().replace("IB", "B")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"size must be at least 1 byte, got {text!r}")
    return value


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``"5m"``, ``"30s"``, ``"250ms"``, ``"2h"``, ``"1d"`` or a bare number of
    seconds. Raises ``ValueError`` on anything else or on a negative value."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"invalid duration {text!r}; write e.g. \"5m\", \"30s\" or \"2h\"")
        seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {text!r}")
    return seconds


def format_bytes(n: int | float) -> str:
    """``1536`` → ``"1.5 KiB"``: sizes for people."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
