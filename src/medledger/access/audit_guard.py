"""Keep personal data out of audit events: what each field of an event may hold.

An audit event names resources by reference, patients by pseudonym and people by principal
id; nothing else identifying may reach it. Every check here raises InputError naming the field,
the value and what was expected, so a route that builds a bad event fails in its tests.

- references: ``Type/id`` or ``Type/id/_history/n`` (FHIR) or ``user|client|institution/id``
  (access), and an id must not be a PRC resident identity number (18 characters whose
  GB 11643-1999 check digit and birth date hold);
- texts the server writes (``description``, the route template ``path``): printable ASCII
  from a small alphabet and no run of six or more digits (identity, phone, record numbers);
- the break-glass reason, typed by a clinician, is the one free text: it is cleaned, not
  refused (an emergency must never fail on its wording), with digit runs masked.
"""

from __future__ import annotations

import re
from datetime import date

from medledger.access.caller import Caller
from medledger.errors import InputError

__all__ = [
    "check_caller",
    "check_code",
    "check_items",
    "check_ref",
    "check_text",
    "clean_reason",
    "looks_like_id_number",
]

MAX_TEXT = 200
MAX_REASON = 200
_FHIR_REF = re.compile(
    r"[A-Z][A-Za-z]{1,39}/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/[1-9][0-9]{0,9})?"
)
_ACCESS_REF = re.compile(r"(user|client|institution)/[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_TEXT = re.compile(r"[A-Za-z0-9 .,:;()'/_#=+@*{}$-]*")
_DIGITS = re.compile(r"[0-9]{6,}")
_ID_RUN = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_INSTITUTION = re.compile(r"(|[a-z0-9][a-z0-9-]{0,62}[a-z0-9])")
_ROLE = re.compile(r"[a-z][a-z_]{0,31}")
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ADDRESS = re.compile(r"[A-Za-z0-9.:_%\[\]-]{1,64}")
_PURPOSE = re.compile(r"[A-Z][A-Z0-9_-]{1,31}")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def looks_like_id_number(text: str) -> bool:
    """Return True if ``text`` holds an 18-character PRC resident identity number.

    Requires the check digit (GB 11643-1999, ISO 7064 MOD 11-2) and a real birth date, so a
    random 18-digit number passes this test only about once in 30.
    """
    for found in _ID_RUN.finditer(text):
        number = found.group().upper()
        total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
        if _CHECK[total % 11] != number[17]:
            continue
        try:
            born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        except ValueError:
            continue
        if 1900 <= born.year <= 2100:
            return True
    return False


def check_ref(value: object, field: str) -> str:
    """Return ``value`` if it is a FHIR or access reference with no identity number in it."""
    if isinstance(value, str) and _ACCESS_REF.fullmatch(value):
        return value
    found = _FHIR_REF.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise InputError(
            f"{field} must be a reference, never a name or identifier",
            field=field,
            value=_redacted(value),
            expected="Type/id, Type/id/_history/n, or user|client|institution/id",
        )
    if looks_like_id_number(found.group("id")):
        raise InputError(
            f"{field} holds what looks like a resident identity number; audit events carry "
            "references with server-assigned ids only",
            field=field,
            value="(withheld)",
            expected="a reference whose id is not a personal identifier",
        )
    return str(value)


def check_text(value: object, field: str, *, limit: int = MAX_TEXT) -> str:
    """Return ``value`` if it is a short server-written text that cannot carry personal data."""
    if not isinstance(value, str) or len(value) > limit or not _TEXT.fullmatch(value):
        raise InputError(
            f"{field} must be short ASCII text without personal data",
            field=field,
            value=_redacted(value),
            expected=f"at most {limit} characters of A-Z a-z 0-9 space and .,:;()'/_#=+@*{{}}$-",
        )
    if _DIGITS.search(value):
        raise InputError(
            f"{field} holds a number of six or more digits (an identifier?); put references in "
            "entities instead",
            field=field,
            value="(withheld)",
            expected="no run of six or more digits",
        )
    return value


def check_code(value: object, field: str, pattern: re.Pattern[str], expected: str) -> str:
    """Return ``value`` if it fully matches ``pattern``; else InputError naming the field."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InputError(f"bad {field}", field=field, value=_redacted(value), expected=expected)
    return value


def check_items(items: object, field: str, limit: int) -> tuple[str, ...]:
    """Return ``items`` (a tuple or list) as a tuple without repeats; refuse more than limit."""
    if isinstance(items, str) or not isinstance(items, (tuple, list)):
        raise InputError(f"{field} must be a tuple of strings", field=field, expected="tuple")
    if len(items) > limit:
        raise InputError(
            f"{field} has {len(items)} items, the limit is {limit}",
            field=field,
            value=len(items),
            expected=f"at most {limit}",
        )
    return tuple(dict.fromkeys(items))  # keep order, drop repeats


def check_caller(c: Caller) -> None:
    """Check every field of the caller an audit event names (ids, codes, address)."""
    if not isinstance(c, Caller):
        raise InputError("caller must be a Caller", field="caller", expected="Caller")
    check_code(c.principal, "caller.principal", _PRINCIPAL, "a user or client id")
    check_code(c.institution, "caller.institution", _INSTITUTION, "an institution id or empty")
    for role in c.roles:
        check_code(role, "caller.roles", _ROLE, "a role name such as clinician")
    if c.token_id is not None:
        check_code(c.token_id, "caller.token_id", _TOKEN, "a token id (jti)")
    if c.client_id is not None:
        check_code(c.client_id, "caller.client_id", _PRINCIPAL, "a client id")
    if c.address is not None:
        check_code(c.address, "caller.address", _ADDRESS, "an IP address or host name")
    check_code(c.purpose, "caller.purpose", _PURPOSE, "an HL7 v3 ActReason code such as TREAT")
    if c.break_glass is not None and not isinstance(c.break_glass, str):
        raise InputError("caller.break_glass must be the stated reason", field="caller.break_glass")


def clean_reason(value: str) -> str:
    """Return a break-glass reason fit for the trail: one line, digit runs masked, bounded."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    text = _DIGITS.sub("[number removed]", text)
    if not text:
        return "(no reason given)"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _redacted(value: object) -> object:
    """Echo a refused value only when it cannot be personal data (ASCII, no long numbers)."""
    if isinstance(value, str) and value.isascii() and not _DIGITS.search(value):
        return value[:80]
    if isinstance(value, (int, bool)) or value is None:
        return value
    return "(withheld)"
