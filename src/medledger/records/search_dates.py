"""FHIR dates as half-open UTC ranges, and the R4 date-search prefixes over them.

A FHIR date is imprecise on purpose: ``2026-11`` means the whole of November. Both the stored
value and the searched value become a range ``[low, high)`` at their own precision, and a
prefix (``eq``, ``ge`` …) compares the two ranges as the R4 search page defines.

Bounds are ISO 8601 UTC strings of fixed width (``2026-11-21T16:00:00.000000Z``), so they
compare correctly as plain strings, in Python or in SQL. ``None`` is an open bound: a Period
without ``end`` runs forever. A value without a time zone (a date, or a search value without an
offset) is read in the server's local time zone, China Standard Time by default, as FHIR asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

__all__ = [
    "CHINA_TZ",
    "PREFIXES",
    "date_range",
    "range_matches",
    "utc_iso",
]

CHINA_TZ: tzinfo = timezone(timedelta(hours=8), "Asia/Shanghai")
"""Default local time zone for dates without an offset (China has no daylight saving time)."""

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
"""Date-search prefixes this server supports (``ap`` is refused: its width is server-defined)."""

_Step = Callable[[datetime], datetime]

_DATE = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as a fixed-width UTC ISO string with microseconds."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


def date_range(
    text: str, *, local_tz: tzinfo = CHINA_TZ, search: bool = False
) -> tuple[str | None, str | None] | None:
    """Return the half-open UTC range ``(low, high)`` a FHIR date, dateTime or instant covers.

    Return None when ``text`` is not such a value. Stored values with a time must carry an
    offset and seconds (FHIR requires both); with ``search=True`` a search value may stop at
    minutes and omit the offset. A bound outside years 1–9999 once in UTC is None (open).
    """
    found = _DATE.fullmatch(text)
    if found is None:
        return None
    parts = found.groupdict()
    if parts["H"] is not None and not search and (parts["S"] is None or parts["tz"] is None):
        return None
    try:
        start, step = _start_and_step(parts, local_tz)
    except (ValueError, OverflowError):
        return None
    low = _bound(lambda: start)
    high = _bound(lambda: step(start))
    return low, high


def _start_and_step(parts: dict[str, str | None], local_tz: tzinfo) -> tuple[datetime, _Step]:
    year = int(parts["y"] or 0)
    if parts["m"] is None:
        return datetime(year, 1, 1, tzinfo=local_tz), _next_year
    month = int(parts["m"])
    if parts["d"] is None:
        return datetime(year, month, 1, tzinfo=local_tz), _next_month
    day = date(year, month, int(parts["d"]))
    if parts["H"] is None:
        start = datetime(day.year, day.month, day.day, tzinfo=local_tz)
        return start, _plus(timedelta(days=1))
    zone = _zone(parts["tz"], local_tz)
    second = int(parts["S"] or 0)
    if parts["S"] is None:
        step = timedelta(minutes=1)
    elif parts["f"] is None:
        step = timedelta(seconds=1)
    else:
        step = timedelta(microseconds=10 ** (6 - min(len(parts["f"]), 6)))
    micro = int((parts["f"] or "0")[:6].ljust(6, "0"))
    if second == 60:  # a leap second: Python cannot hold it, the last instant before it will do
        second, micro, step = 59, 999_999, timedelta(microseconds=1)
    start = datetime(
        day.year,
        day.month,
        day.day,
        int(parts["H"] or 0),
        int(parts["M"] or 0),
        second,
        micro,
        tzinfo=zone,
    )
    return start, _plus(step)


def _plus(delta: timedelta) -> _Step:
    return lambda moment: moment + delta


def _next_year(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + 1)


def _next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)


def _zone(text: str | None, local_tz: tzinfo) -> tzinfo:
    if text is None:
        return local_tz
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _bound(make: Callable[[], datetime]) -> str | None:
    try:
        return utc_iso(make())
    except (ValueError, OverflowError):
        return None


def range_matches(
    prefix: str,
    search: tuple[str | None, str | None],
    target: tuple[str | None, str | None],
) -> bool:
    """Tell whether a stored range ``target`` satisfies ``prefix`` + the ``search`` range.

    R4 semantics over half-open ranges (None is an open bound):

    - ``eq``: the search range contains the target range; ``ne``: it does not;
    - ``gt``: the target reaches past the end of the search range; ``lt``: it starts before it;
    - ``ge`` / ``le``: ``gt`` / ``lt``, or ``eq``;
    - ``sa``: the target starts at or after the search range ends; ``eb``: it ends at or
      before the search range starts.
    """
    s_low, s_high = search
    t_low, t_high = target
    if prefix in ("eq", "ne", "ge", "le"):
        contained = (s_low is None or (t_low is not None and t_low >= s_low)) and (
            s_high is None or (t_high is not None and t_high <= s_high)
        )
        if prefix == "eq":
            return contained
        if prefix == "ne":
            return not contained
        if contained:
            return True
        prefix = "gt" if prefix == "ge" else "lt"
    if prefix == "gt":
        return s_high is not None and (t_high is None or t_high > s_high)
    if prefix == "lt":
        return s_low is not None and (t_low is None or t_low < s_low)
    if prefix == "sa":
        return s_high is not None and t_low is not None and t_low >= s_high
    if prefix == "eb":
        return s_low is not None and t_high is not None and t_high <= s_low
    raise ValueError(f"unknown date prefix {prefix!r}")
