"""Paged reads: page sizes, page tokens and ``_since`` instants, for search and history."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medledger.errors import InputError
from medledger.ledger.block import format_ts
from medledger.records.versions import Version

MAX_COUNT = 1000
MAX_OFFSET = 1_000_000
_LAST_MILLI = 253402300799999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, slots=True)
class SearchPage:
    resources: list[dict[str, Any]]
    total: int | None
    next_token: str | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Versions with their bodies (None for a deletion), and the next page's token."""

    versions: list[tuple[Version, dict[str, Any] | None]]
    next_token: str | None


def page_count(raw: str) -> int:
    """Return ``_count`` as an integer from 1 to MAX_COUNT (ASCII digits only)."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
        raise InputError(
            f"_count must be an integer from 1 to {MAX_COUNT}",
            field="_count",
            value=raw,
            expected=f"1..{MAX_COUNT}",
        )
    return int(raw)


def encode_page(offset: int) -> str:
    """Return the opaque ``_page_token`` of a next link."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_page(token: str | None) -> int:
    """Return the offset a ``_page_token`` stands for (0 without one)."""
    if token is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset = json.loads(raw)["o"]
        if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(offset)
        return offset
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            "_page_token is not one this server issued",
            field="_page_token",
            value=token,
            expected="the token from a Bundle's next link",
        ) from exc


def since_instant(value: str) -> str:
    """Return ``_since`` as a stored timestamp (UTC, milliseconds, rounded up) for comparison."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")) if value.isascii() else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InputError(
            f"_since {value!r} is not an instant",
            field="_since",
            value=value,
            expected="an instant with a time zone, e.g. 2026-11-22T08:00:00+08:00",
        )
    # Stored times have milliseconds: round up, so nothing before the instant is included.
    millis = math.ceil((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000 - 1e-6)
    millis = min(max(millis, 0), _LAST_MILLI)  # before 1970 nothing is older; cap at year 9999
    return format_ts(millis / 1000)
