"""Wire values → Arrow arrays: the psycopg loaders Rivet installs and the column builders.

Rows arrive in PostgreSQL's binary format. Rivet replaces some of psycopg's loaders so the
expensive or unfaithful conversions never happen in Python:

- ``date``, ``time``, ``timestamp`` and ``timestamptz`` load as the raw integers of the wire
  format (days / microseconds since 2000-01-01, microseconds since midnight) through psycopg's
  C integer loaders, then become Arrow temporal arrays by one vectorised add. No
  ``datetime`` objects are built; ``timestamptz`` is the UTC instant whatever the session time
  zone; ``±infinity`` and BC values are caught and reported instead of crashing the loader.
- ``json`` and ``jsonb`` load as text, never parsed: JSON ``null`` stays the string ``"null"``
  and the text is exactly PostgreSQL's. The jsonb wire format's leading version byte is
  stripped by an Arrow kernel.
- ``uuid`` loads as its 16 raw bytes; one ``bytes.hex()`` over the whole column and Arrow
  string kernels make the lowercase hyphenated text.
- ``money`` loads as its int64 amount (C loader); the Arrow decimal is the same integer with
  the scale of ``lc_monetary``, by reinterpreting the buffer.
- ``xml``, enums and ``citext`` load as text (C loader).
- ``interval``, ``timetz``, ``inet``, ``cidr``, ``macaddr`` and ``macaddr8`` have no faithful
  psycopg loader (psycopg folds an interval's months into 30-day ``timedelta`` s and drops
  nothing else, but gives objects whose text differs from PostgreSQL's). Small Python loaders
  here turn their wire bytes into the exact text :mod:`rivet_postgres.typemap` documents.
  These types are rare, so one Python call per value is accepted.
- Arrays load through psycopg's C array loader, behind a Python check of the header that
  refuses multi-dimensional values and lower bounds other than 1 (psycopg would silently drop
  the bounds).

Every other mapped type uses psycopg's C binary loader and one ``pa.array`` call per column.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import adapt, pq
from psycopg.abc import AdaptContext
from psycopg.types.array import ArrayBinaryLoader
from psycopg.types.bool import BoolBinaryLoader
from psycopg.types.numeric import (
    Float4BinaryLoader,
    Float8BinaryLoader,
    Int2BinaryLoader,
    Int4BinaryLoader,
    Int8BinaryLoader,
    NumericBinaryLoader,
    OidBinaryLoader,
)
from psycopg.types.string import ByteaBinaryLoader, TextBinaryLoader

from rivet_core.errors import SourceError
from rivet_core.types import MAX_DECIMAL_PRECISION
from rivet_postgres import typemap as t

try:  # psycopg's C array loader, when the binary package is installed
    from psycopg._cmodule import _psycopg

    _ArrayLoader: type[adapt.Loader] = getattr(_psycopg, "ArrayBinaryLoader",
                                               ArrayBinaryLoader)
except ImportError:  # pragma: no cover - pure-Python psycopg
    _ArrayLoader = ArrayBinaryLoader

# The PostgreSQL epoch is 2000-01-01; Arrow's is 1970-01-01.
_EPOCH_SHIFT_DAYS = 10_957
_US_PER_DAY = 86_400_000_000
_EPOCH_SHIFT_US = _EPOCH_SHIFT_DAYS * _US_PER_DAY
# PostgreSQL sends ±infinity as the extreme integers of the wire type.
_DATE_INFINITY = 2**31 - 1
_DATE_NEG_INFINITY = -(2**31)
_TS_INFINITY = 2**63 - 1
_TS_NEG_INFINITY = -(2**63)
# 0001-01-01, in days since 2000-01-01: anything earlier is a BC value.
_FIRST_AD_DAY = -730_119
_MAX_VALUE_TEXT = 60
_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000
_US_PER_SECOND = 1_000_000


class ArrayShapeError(ValueError):
    """An array value Rivet does not export: more than one dimension, or a lower bound
    other than 1. Raised by the array loader, turned into a SourceError naming the column
    by the source (the loader does not know the column)."""


# ---------------------------------------------------------------------------- text values


def _trunc_div(value: int, divisor: int) -> int:
    """Integer division truncating toward zero, as C does."""
    quotient = abs(value) // divisor
    return quotient if value >= 0 else -quotient


def interval_iso(months: int, days: int, micros: int) -> str:
    """An interval as PostgreSQL prints it with ``IntervalStyle = iso_8601``.

    Years and months split the months (truncating toward zero), days stay days, and the
    time splits into hours, minutes and seconds; each nonzero part carries its own sign,
    the seconds' fraction has no trailing zeros, and zero is ``PT0S``."""
    year = _trunc_div(months, 12)
    month = months - year * 12
    hour = _trunc_div(micros, _US_PER_HOUR)
    rest = micros - hour * _US_PER_HOUR
    minute = _trunc_div(rest, _US_PER_MINUTE)
    rest -= minute * _US_PER_MINUTE
    second = _trunc_div(rest, _US_PER_SECOND)
    fraction = rest - second * _US_PER_SECOND
    if not (year or month or days or hour or minute or second or fraction):
        return "PT0S"
    text = "P"
    for value, unit in ((year, "Y"), (month, "M"), (days, "D")):
        if value:
            text += f"{value}{unit}"
    if hour or minute or second or fraction:
        text += "T"
    for value, unit in ((hour, "H"), (minute, "M")):
        if value:
            text += f"{value}{unit}"
    if second or fraction:
        text += "-" if second < 0 or fraction < 0 else ""
        text += str(abs(second))
        if fraction:
            text += "." + f"{abs(fraction):06d}".rstrip("0")
        text += "S"
    return text


def timetz_text(micros: int, zone_west: int) -> str:
    """``HH:MM:SS.ffffff+HH:MM`` (``+HH:MM:SS`` when the offset has seconds). The wire
    format counts the zone in seconds *west* of UTC; the text shows the offset east."""
    hours, rest = divmod(micros, _US_PER_HOUR)
    minutes, rest = divmod(rest, _US_PER_MINUTE)
    seconds, fraction = divmod(rest, _US_PER_SECOND)
    offset = -zone_west
    sign = "+" if offset >= 0 else "-"
    off_h, off_rest = divmod(abs(offset), 3600)
    off_m, off_s = divmod(off_rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:06d}{sign}{off_h:02d}:{off_m:02d}"
    return text + (f":{off_s:02d}" if off_s else "")


_PGSQL_AF_INET = 2


def _ipv6_text(address: bytes) -> str:
    """IPv6 text exactly as PostgreSQL's ``inet_net_ntop_ipv6`` writes it: lowercase hex
    words, the first longest run (two or more) of zero words as ``::``, and the last 32 bits
    dotted for IPv4-compatible and IPv4-mapped addresses."""
    words = [address[i] << 8 | address[i + 1] for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, word in enumerate(words):
        if word == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    parts: list[str] = []
    for i in range(8):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                parts.append(":")
            continue
        if i != 0:
            parts.append(":")
        if i == 6 and best_base == 0 and (
                best_len == 6 or (best_len == 7 and words[7] != 1)
                or (best_len == 5 and words[5] == 0xFFFF)):
            parts.append(".".join(str(b) for b in address[12:16]))
            break
        parts.append(f"{words[i]:x}")
    if best_base != -1 and best_base + best_len == 8:
        parts.append(":")
    return "".join(parts)


def inet_text(data: bytes) -> str:
    """An ``inet`` or ``cidr`` wire value as PostgreSQL prints it: the full address, then
    ``/bits`` unless the mask covers the whole address (always for ``cidr``)."""
    family, bits, is_cidr, size = data[0], data[1], data[2], data[3]
    address = bytes(data[4:4 + size])
    if family == _PGSQL_AF_INET:
        text, full = ".".join(str(b) for b in address), 32
    else:
        text, full = _ipv6_text(address), 128
    if bits != full or is_cidr:
        text += f"/{bits}"
    return text


def mac_text(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in bytes(data))


# -------------------------------------------------------------------------------- loaders

_INTERVAL = struct.Struct("!qii")
_TIMETZ = struct.Struct("!qi")
_BINARY = pq.Format.BINARY


class IntervalTextLoader(adapt.Loader):
    """``interval`` → ISO 8601 text (:func:`interval_iso`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        micros, days, months = _INTERVAL.unpack(data)
        return interval_iso(months, days, micros)


class TimetzTextLoader(adapt.Loader):
    """``timetz`` → ``HH:MM:SS.ffffff+HH:MM`` (:func:`timetz_text`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        micros, zone = _TIMETZ.unpack(data)
        return timetz_text(micros, zone)


class InetTextLoader(adapt.Loader):
    """``inet`` / ``cidr`` → PostgreSQL's text (:func:`inet_text`)."""

    format = _BINARY

    def load(self, data: Any) -> str:
        return inet_text(bytes(data))


class MacTextLoader(adapt.Loader):
    """``macaddr`` / ``macaddr8`` → ``08:00:2b:01:02:03``."""

    format = _BINARY

    def load(self, data: Any) -> str:
        return mac_text(data)


_ONE = b"\x00\x00\x00\x01"
_ZERO = b"\x00\x00\x00\x00"


class CheckedArrayLoader(adapt.Loader):
    """psycopg's array loader, after a look at the header: ``ndim`` (first 4 bytes) must be
    0 (empty array) or 1, and the lower bound (bytes 16-19) must be 1."""

    format = _BINARY

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._inner = _ArrayLoader(oid, context)

    def load(self, data: Any) -> Any:
        head = bytes(data[:4])
        if head != _ONE:
            if head == _ZERO:
                return []
            raise ArrayShapeError(f"a {struct.unpack('!i', head)[0]}-dimensional array value")
        if bytes(data[16:20]) != _ONE:
            lower = struct.unpack("!i", bytes(data[16:20]))[0]
            raise ArrayShapeError(f"an array value with lower bound {lower}")
        return self._inner.load(data)


LOADERS_BY_KEY: dict[str, type[adapt.Loader]] = {
    "bool": BoolBinaryLoader,
    "int2": Int2BinaryLoader,
    "int4": Int4BinaryLoader,
    "int8": Int8BinaryLoader,
    "oid": OidBinaryLoader,
    "float4": Float4BinaryLoader,
    "float8": Float8BinaryLoader,
    "numeric": NumericBinaryLoader,
    "money": Int8BinaryLoader,
    "text": TextBinaryLoader,
    "varchar": TextBinaryLoader,
    "bpchar": TextBinaryLoader,
    "name": TextBinaryLoader,
    "citext": TextBinaryLoader,
    "enum": TextBinaryLoader,
    "xml": TextBinaryLoader,
    "json": TextBinaryLoader,
    "jsonb": TextBinaryLoader,
    "bytea": ByteaBinaryLoader,
    "uuid": ByteaBinaryLoader,
    "date": Int4BinaryLoader,
    "time": Int8BinaryLoader,
    "timestamp": Int8BinaryLoader,
    "timestamptz": Int8BinaryLoader,
    "interval": IntervalTextLoader,
    "timetz": TimetzTextLoader,
    "inet": InetTextLoader,
    "cidr": InetTextLoader,
    "macaddr": MacTextLoader,
    "macaddr8": MacTextLoader,
}
"""The loader each mapped type's values go through (C classes are swapped in by psycopg)."""


def register_loaders(adapters: adapt.AdaptersMap) -> None:
    """Install the loaders of every built-in mapped type and array on a connection."""
    for oid, key in t.BUILTIN.items():
        adapters.register_loader(oid, LOADERS_BY_KEY[key])
    for array_oid in t.BUILTIN_ARRAYS:
        adapters.register_loader(array_oid, CheckedArrayLoader)


def dynamic_loaders(oid: int, resolved: t.Resolved) -> dict[int, type[adapt.Loader]]:
    """Loaders a column of a non-built-in type needs (enum, citext, arrays of those and of
    domains): its own OID, and for arrays the element OID found inside the wire data."""
    if resolved.key is None or oid in t.BUILTIN:
        return {}
    loader = LOADERS_BY_KEY[resolved.key]
    if not resolved.array:
        return {oid: loader}
    loaders: dict[int, type[adapt.Loader]] = {}
    if oid not in t.BUILTIN_ARRAYS:
        loaders[oid] = CheckedArrayLoader
    if resolved.element_oid not in t.BUILTIN:
        loaders[resolved.element_oid] = loader
    return loaders


# ------------------------------------------------------------------------------- builders


def column_error(name: str, detail: str, hint: str | None = None) -> SourceError:
    """A value of column ``name`` that its Arrow type cannot hold."""
    return SourceError(f"column {name!r}: {detail}",
                       hint=hint or f"filter or convert these values in SQL, or cast {name} "
                                    f"to text")


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01; year 0 is 1 BC.
    (Howard Hinnant's algorithm; Python's ``date`` stops at year 1.)"""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def pg_date_text(days_since_2000: int) -> str:
    """A wire date as PostgreSQL prints it (``2024-02-29``, ``0044-03-15 BC``, ``infinity``)."""
    if days_since_2000 == _DATE_INFINITY:
        return "infinity"
    if days_since_2000 == _DATE_NEG_INFINITY:
        return "-infinity"
    year, month, day = _civil_from_days(days_since_2000 + _EPOCH_SHIFT_DAYS)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} BC"
    return f"{year:04d}-{month:02d}-{day:02d}"


def pg_timestamp_text(us_since_2000: int) -> str:
    """A wire timestamp as PostgreSQL prints it (UTC for timestamptz)."""
    if us_since_2000 == _TS_INFINITY:
        return "infinity"
    if us_since_2000 == _TS_NEG_INFINITY:
        return "-infinity"
    days, us = divmod(us_since_2000, _US_PER_DAY)
    date = pg_date_text(days)
    seconds, micros = divmod(us, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if micros:
        clock += f".{micros:06d}".rstrip("0")
    if date.endswith(" BC"):
        return f"{date[:-3]} {clock} BC"
    return f"{date} {clock}"


def _build_date(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    days = pa.array(values, type=pa.int32())
    bounds = pc.min_max(days)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == _DATE_INFINITY:
        raise column_error(name, "value infinity has no date32 equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY:
        raise column_error(name, f"value {pg_date_text(low.as_py())} is before 0001-01-01; "
                          f"BC dates and -infinity are not exported")
    return pc.add_checked(days, pa.scalar(_EPOCH_SHIFT_DAYS, pa.int32())).cast(arrow_type)


def _build_timestamp(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    bounds = pc.min_max(micros)
    low, high = bounds["min"], bounds["max"]
    if high.is_valid and high.as_py() == _TS_INFINITY:
        raise column_error(name, "value infinity has no timestamp equivalent")
    if low.is_valid and low.as_py() < _FIRST_AD_DAY * _US_PER_DAY:
        raise column_error(name, f"value {pg_timestamp_text(low.as_py())} is before 0001-01-01; "
                          f"BC timestamps and -infinity are not exported")
    try:
        shifted = pc.add_checked(micros, _EPOCH_SHIFT_US)
    except pa.ArrowInvalid:
        raise column_error(name, f"value {pg_timestamp_text(high.as_py())} is beyond the range of "
                          f"timestamp[us]") from None
    return shifted.view(arrow_type)


def _build_time(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    micros = pa.array(values, type=pa.int64())
    high = pc.max(micros)
    if high.is_valid and high.as_py() >= _US_PER_DAY:
        raise column_error(name, "value 24:00:00 is not a time of day in time64")
    return micros.view(arrow_type)


def _build_jsonb(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    text = pa.array(values, type=pa.string())
    # jsonb's binary format is a version byte (1 since PostgreSQL 9.4) and then the text.
    if pc.all(pc.starts_with(text, "\x01")).as_py() is False:
        raise column_error(name, "unknown jsonb binary format version")
    return pc.utf8_slice_codeunits(text, 1).cast(arrow_type)


_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def _build_uuid(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    return uuid_text(pa.array(values, type=pa.binary(16))).cast(arrow_type)


def uuid_text(raw: pa.Array) -> pa.Array:
    """Lowercase hyphenated text of 16-byte uuids, with one ``bytes.hex()`` over the whole
    data buffer and Arrow string kernels."""
    if raw.offset:
        raw = pa.concat_arrays([raw])  # a slice: rebase its buffers at zero
    count = len(raw)
    validity, data = raw.buffers()
    # Null slots hold zero bytes; the validity bitmap carries over and masks them.
    hexed = pa.py_buffer(data.to_pybytes()[: 16 * count].hex().encode("ascii"))
    offsets = pa.array(range(0, 32 * count + 1, 32), type=pa.int32()).buffers()[1]
    flat = pa.StringArray.from_buffers(count, offsets, hexed, validity, raw.null_count)
    groups = [pc.utf8_slice_codeunits(flat, start, stop) for start, stop in _UUID_GROUPS]
    return pc.binary_join_element_wise(*groups, "-")


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "…"


def _build_money(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    return money_decimal(pa.array(values, type=pa.int64()), arrow_type)


def money_decimal(amounts: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """int64 money amounts as the decimal ``arrow_type`` (scale = ``lc_monetary``'s)."""
    # The wire amount is the unscaled integer of the decimal: same buffer, new scale.
    unscaled = amounts.cast(pa.decimal128(arrow_type.precision, 0))
    return pa.Array.from_buffers(arrow_type, len(unscaled), unscaled.buffers(),
                                 unscaled.null_count)


def decimal_needs(value: Decimal) -> tuple[int, int]:
    """(integer digits, decimals) a decimal type needs to hold ``value`` exactly."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return max(len(digits) + exponent, 0), max(-exponent, 0)


def suggest_decimal(value: Decimal, current: pa.DataType) -> str | None:
    """The override that holds ``value`` and everything ``current`` holds: ``decimal(38,s)``
    when 38 digits suffice, else the digits needed, or None beyond 76 digits."""
    integer_digits, scale = decimal_needs(value)
    scale = max(scale, current.scale)
    integer_digits = max(integer_digits, min(current.precision - current.scale, 38 - scale))
    precision = max(integer_digits + scale, 38)
    if precision > MAX_DECIMAL_PRECISION:
        return None
    return f"decimal({precision},{scale})"


def build_decimal(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    """Decimals into ``arrow_type``, refusing (naming the value and the override that holds
    it) any value that would need rounding or more digits."""
    # pa.array refuses (rather than rounds) a Decimal that needs more scale or digits than the
    # type holds; the slow search for the culprit only runs to write the error.
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    for value in values:
        if value is None:
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            raise column_error(name, f"value {value} cannot be stored in {arrow_type}",
                        hint=f'filter it out, or export the column as text with the '
                             f'[exports.columns] override {name} = "string"')
        try:
            pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            suggestion = suggest_decimal(value, arrow_type)
            fix = (f'set the [exports.columns] override {name} = "{suggestion}"'
                   if suggestion else f'export it as text: {name} = "string"')
            raise column_error(name, f"value {_short(value)} does not fit {arrow_type} without "
                              f"rounding or overflow",
                        hint=f"{fix} (Rivet never rounds a decimal)") from None
    raise column_error(name, f"values cannot be stored in {arrow_type}")


def _decimal_text(values: Sequence[Any]) -> pa.Array:
    """Exact plain text of each decimal (``format(d, "f")`` never uses an exponent)."""
    return pa.array([None if v is None else format(v, "f") for v in values], pa.string())


def _build_plain(values: Sequence[Any], arrow_type: pa.DataType, name: str) -> pa.Array:
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise column_error(name, f"values cannot be stored in {arrow_type}: {exc}") from None


Builder = Callable[[Sequence[Any], pa.DataType, str], pa.Array]

BUILDERS: dict[str, Builder] = {
    "date": _build_date,
    "time": _build_time,
    "timestamp": _build_timestamp,
    "timestamptz": _build_timestamp,
    "jsonb": _build_jsonb,
    "uuid": _build_uuid,
    "numeric": build_decimal,
    "money": _build_money,
}
"""Column builders by type key; any other mapped type is one ``pa.array`` call."""


def _build_list(values: Sequence[Any], arrow_type: pa.DataType, name: str,
                element: Builder) -> pa.Array:
    if element is _build_plain:
        return _build_plain(values, arrow_type, name)
    # Elements that need a builder of their own (raw integers of dates, uuid bytes...) are
    # flattened, built as one column, and put back behind the same offsets.
    flat = [item for value in values if value is not None for item in value]
    items = element(flat, arrow_type.value_type, name)
    offsets = pa.array(list(accumulate((0 if v is None else len(v) for v in values),
                                       initial=0)), pa.int32())
    nulls = pa.array([v is None for v in values], pa.bool_())
    return pa.ListArray.from_arrays(offsets, items, type=arrow_type, mask=nulls)


class ColumnPlan:
    """How one result column is decoded: its mapped type key, whether it is an array, the
    natural Arrow type and the written one, and whether an override is built directly from
    the loaded values (numeric → decimal or text) instead of by casting."""

    __slots__ = ("array", "direct", "key", "name", "natural", "target")

    def __init__(self, name: str, key: str | None, array: bool, natural: pa.DataType | None,
                 target: pa.DataType, direct: bool) -> None:
        self.name = name
        self.key = key
        self.array = array
        self.natural = natural
        self.target = target
        self.direct = direct


def build_column(values: Sequence[Any], plan: ColumnPlan) -> pa.Array:
    """One column of a batch as an Arrow array of type ``plan.target``.

    An override that is not built directly is applied with pyarrow's safe cast: overflow,
    truncation or lost scale raise :class:`SourceError` naming the column."""
    name, target = plan.name, plan.target
    if plan.direct:
        if pa.types.is_decimal(target):
            return build_decimal(values, target, name)
        return _decimal_text(values)
    builder = BUILDERS.get(plan.key or "", _build_plain)
    natural = plan.natural
    assert natural is not None
    if plan.array:
        array = _build_list(values, natural, name, builder)
    else:
        array = builder(values, natural, name)
    return cast_override(array, plan)


def cast_override(array: pa.Array, plan: ColumnPlan) -> pa.Array:
    """A column built as its natural type, cast to an override's type with pyarrow's safe
    cast (overflow, truncation or lost scale fail naming the column)."""
    name, natural, target = plan.name, plan.natural, plan.target
    if natural == target:
        return array
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise column_error(name, f"cannot convert {natural} to the override {target} without "
                          f"loss: {exc}") from None
