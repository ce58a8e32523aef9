"""HL7 v2 data types we read and write: TS/DTM and DT times, NM numbers, person names.

Times: HL7 ``YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`` becomes a FHIR ``dateTime``
(``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm:ss[.f]+zz:zz``). A time without
seconds is padded with zeros (FHIR needs seconds), and **a time without an offset is taken to
be China Standard Time, +08:00**: Chinese HIS, LIS and PACS send local time and rarely an
offset. A FHIR ``instant`` additionally needs a full date and a time; a date alone is read
as midnight. The readers return None for text that is not a valid time (the caller names the
field); the writers raise ``InputError``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from medledger.errors import InputError

__all__ = [
    "CST",
    "fhir_to_hl7_date",
    "fhir_to_hl7_ts",
    "hl7_now",
    "is_number",
    "join_name",
    "to_date",
    "to_datetime",
    "to_instant",
]

CST = timezone(timedelta(hours=8), "CST")
_TS = re.compile(
    r"(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?)?)?)?(?P<z>[+-]\d{4})?"
)
_FHIR = re.compile(
    r"(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<z>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def _valid(m: re.Match[str]) -> bool:
    """Check the calendar and clock ranges of a matched time."""
    try:
        date(int(m["y"]), int(m["mo"] or 1), int(m["d"] or 1))
    except ValueError:
        return False
    if m["h"] is not None and (int(m["h"]) > 23 or int(m["mi"] or 0) > 59 or int(m["s"] or 0) > 59):
        return False
    z = m["z"]
    if z and z != "Z":
        hours, minutes = int(z.replace(":", "")[1:3]), int(z.replace(":", "")[3:5])
        if minutes > 59 or hours > 14 or (hours == 14 and minutes):  # FHIR: -14:00 … +14:00
            return False
    return True


def _parse(text: str) -> re.Match[str] | None:
    """Match an HL7 TS and check its ranges; None when it is not one."""
    m = _TS.fullmatch(text.strip())
    return m if m is not None and _valid(m) else None


def _offset(z: str | None) -> str:
    """Return a FHIR offset for an HL7 one (+08:00 when absent)."""
    return "+08:00" if not z else f"{z[:3]}:{z[3:]}"


def _clock(m: re.Match[str]) -> str:
    """Return the FHIR time part (seconds padded, with offset) of a matched TS."""
    frac = f".{m['f']}" if m["f"] else ""
    return f"{m['h'] or '00'}:{m['mi'] or '00'}:{m['s'] or '00'}{frac}{_offset(m['z'])}"


def to_datetime(text: str) -> str | None:
    """Return the FHIR dateTime for an HL7 TS/DTM/DT value, or None when it is not one."""
    m = _parse(text)
    if m is None:
        return None
    day = "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)
    if m["h"] is None:
        return day
    if m["d"] is None:
        return None  # a time needs a full date
    return f"{day}T{_clock(m)}"


def to_instant(text: str) -> str | None:
    """Return the FHIR instant for an HL7 TS (a full date at least), or None."""
    m = _parse(text)
    if m is None or m["d"] is None:
        return None
    return f"{m['y']}-{m['mo']}-{m['d']}T{_clock(m)}"


def to_date(text: str) -> str | None:
    """Return the FHIR date (``YYYY[-MM[-DD]]``) of an HL7 DT or TS, dropping any time."""
    m = _parse(text)
    if m is None:
        return None
    return "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)


def fhir_to_hl7_ts(value: str, *, field: str) -> str:
    """Return the HL7 TS for a FHIR date, dateTime or instant; ``Z`` becomes ``+0000``."""
    m = _FHIR.fullmatch(value)
    if m is None or not _valid(m):
        raise InputError(
            f"{field}: not a FHIR dateTime",
            field=field,
            value=value,
            expected="YYYY[-MM[-DD[Thh:mm[:ss[.f]]±hh:mm]]]",
        )
    out = m["y"] + (m["mo"] or "") + (m["d"] or "")
    if m["h"] is not None:
        out += m["h"] + m["mi"] + (m["s"] or "") + (f".{m['f']}" if m["f"] else "")
        z = m["z"]
        if z:
            out += "+0000" if z == "Z" else z.replace(":", "")
    return out


def fhir_to_hl7_date(value: str, *, field: str) -> str:
    """Return the HL7 DT for a FHIR date (``YYYY[-MM[-DD]]``)."""
    m = _FHIR.fullmatch(value)
    if m is None or not _valid(m) or m["h"] is not None:
        raise InputError(
            f"{field}: not a FHIR date", field=field, value=value, expected="YYYY[-MM[-DD]]"
        )
    return m["y"] + (m["mo"] or "") + (m["d"] or "")


def hl7_now(now: datetime) -> str:
    """Return ``now`` as an HL7 TS with seconds and offset (a naive time is taken as +08:00)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=CST)
    return aware.strftime("%Y%m%d%H%M%S%z")


def is_number(text: str) -> bool:
    """Tell whether ``text`` is an HL7 NM: optional sign, digits, optional decimal point."""
    return _NUMBER.fullmatch(text) is not None


def join_name(family: str | None, given: str | None) -> str | None:
    """Join family and given name: without a space when either is Chinese, else with one."""
    if not family or not given:
        return family or given
    sep = "" if _CJK.search(family) or _CJK.search(given) else " "
    return f"{family}{sep}{given}"
