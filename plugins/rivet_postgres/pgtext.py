"""PostgreSQL's text of values Rivet exports as text, or names in errors, computed from
their binary wire format exactly as the server would print them.

``interval`` (ISO 8601, as ``IntervalStyle = iso_8601`` prints it), ``timetz``, ``inet`` /
``cidr`` and ``macaddr`` / ``macaddr8`` are exported as this text (:mod:`.loaders` calls
these functions); dates and timestamps Arrow cannot hold (BC, ``±infinity``) are named in
errors with it (:mod:`.builders`, :mod:`.copyconvert`). Pure functions of wire values: no
psycopg, no Arrow.
"""

from __future__ import annotations

# The PostgreSQL epoch is 2000-01-01; Arrow's is 1970-01-01.
EPOCH_SHIFT_DAYS = 10_957
US_PER_DAY = 86_400_000_000
# PostgreSQL sends ±infinity as the extreme integers of the wire type.
DATE_INFINITY = 2**31 - 1
DATE_NEG_INFINITY = -(2**31)
TS_INFINITY = 2**63 - 1
TS_NEG_INFINITY = -(2**63)
_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000
_US_PER_SECOND = 1_000_000


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
    if days_since_2000 == DATE_INFINITY:
        return "infinity"
    if days_since_2000 == DATE_NEG_INFINITY:
        return "-infinity"
    year, month, day = _civil_from_days(days_since_2000 + EPOCH_SHIFT_DAYS)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} BC"
    return f"{year:04d}-{month:02d}-{day:02d}"


def pg_timestamp_text(us_since_2000: int) -> str:
    """A wire timestamp as PostgreSQL prints it (UTC for timestamptz)."""
    if us_since_2000 == TS_INFINITY:
        return "infinity"
    if us_since_2000 == TS_NEG_INFINITY:
        return "-infinity"
    days, us = divmod(us_since_2000, US_PER_DAY)
    date = pg_date_text(days)
    seconds, micros = divmod(us, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if micros:
        clock += f".{micros:06d}".rstrip("0")
    if date.endswith(" BC"):
        return f"{date[:-3]} {clock} BC"
    return f"{date} {clock}"
