"""Dates and times as SQLite stores them: the text forms the source reads, and the text the
dialect binds, chosen so that SQLite's comparisons order them like the values they stand for.

SQLite has no date or time type. A date is stored as text, and ``WHERE day >= ?``
compares text byte by byte. Byte order is time order only while every value has the same
shape, so the source accepts exactly these forms and fails a read on any other:

===================  ==========================================  ==========================
declared type        stored text                                 Arrow type
===================  ==========================================  ==========================
DATE                 ``YYYY-MM-DD``                              date32
DATETIME, TIMESTAMP  ``YYYY-MM-DD HH:MM:SS`` and an optional     timestamp[us] (wall-clock
                     fraction of 1 to 6 digits (``.5``,          time, no zone)
                     ``.123456``)
TIMESTAMPTZ          the same, then ``+00:00``: an instant,      timestamp[us, tz=UTC]
                     written in UTC
===================  ==========================================  ==========================

They are what SQLite's own functions write (``datetime('now')``, ``CURRENT_TIMESTAMP``,
``strftime('%Y-%m-%d %H:%M:%f')``) and what Python's ``isoformat(" ")`` gives for a date, a
naive datetime and a UTC datetime. Not accepted: a ``T`` separator (``T`` sorts after a
space, so mixing the two breaks the order), other offsets than ``+00:00``, numbers (Julian
days, Unix seconds).

Why the bound values are safe. Two stored values of one form compare like their times,
except that equal times may differ in trailing zeros (``10:00:00`` < ``10:00:00.000`` as
text). The bound text is chosen per comparison so that a stored value equal to it always
falls on the right side (``+`` sorts below every digit and below ``.``, so the
``+00:00`` suffix behaves like the end of the text):

- ``column > ?`` (an incremental cursor): all six fraction digits, :func:`after_text`. A
  stored equal value is the bound itself or a prefix of it, so never greater: no row is
  read twice, and every later time sorts above.
- ``column >= ?`` (a time window's start): the shortest form, no trailing zeros and no
  suffix, :func:`from_text`. A stored equal value is the bound or extends it, so never
  smaller: no row at the boundary is lost.

A date bound (``YYYY-MM-DD``) compares correctly with all three forms. The property is
tested over random values (``tests/test_sqlite_jsonl_dialect.py``).
"""

from __future__ import annotations

import datetime as dt

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
UTC_SUFFIX = "+00:00"
INSTANT_PATTERN = DATETIME_PATTERN[:-1] + r"\+00:00$"
"""The three stored forms as RE2 / Python patterns, anchored."""


def date_text(value: dt.date) -> str:
    return value.isoformat()


def _utc_wall_time(value: dt.datetime) -> tuple[dt.datetime, str]:
    """An aware value as its UTC wall time and the suffix that marks an instant."""
    if value.tzinfo is None:
        return value, ""
    return value.astimezone(dt.UTC).replace(tzinfo=None), UTC_SUFFIX


def after_text(value: dt.datetime) -> str:
    """The bound of ``column > ?``: six fraction digits (and ``+00:00`` for an aware value,
    which only a TIMESTAMPTZ cursor produces)."""
    wall, suffix = _utc_wall_time(value)
    return wall.isoformat(" ", timespec="microseconds") + suffix


def from_text(value: dt.datetime) -> str:
    """The bound of ``column >= ?``: the shortest form, without suffix (an aware value is
    taken at its UTC wall time, which is how a naive DATETIME column is read too)."""
    wall, _ = _utc_wall_time(value)
    text = wall.isoformat(" ", timespec="microseconds").rstrip("0")
    return text.removesuffix(".")
