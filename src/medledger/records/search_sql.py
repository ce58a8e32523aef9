"""Turn a parsed FHIR search into SQL over the record tables.

Each criterion becomes ``rid IN (SELECT rid FROM record_search WHERE …)``: criteria are ANDed,
a criterion's alternatives ORed, with the same rules as ``records.search_query`` (which the
tests use as the oracle). Values of blind-indexed parameters arrive already tokenized.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_, select, true

from medledger.errors import InputError
from medledger.records.search_query import (
    Criterion,
    DateCriterion,
    ReferenceCriterion,
    StringCriterion,
    TokenCriterion,
)
from medledger.store.schema_records import record_current, record_search

S = record_search.c
C = record_current.c
Blind = Callable[[str, str | None, str], str]  # (param, system, value) -> stored value


def where_clauses(
    rtype: str, criteria: tuple[Criterion, ...], blind: Blind, blind_params: frozenset[str]
) -> list[ColumnElement[bool]]:
    """Return one SQL condition on ``record_current`` per criterion."""
    out: list[ColumnElement[bool]] = []
    for crit in criteria:
        if crit.param == "_id":
            assert isinstance(crit, TokenCriterion)
            out.append(C.rid.in_([v.code for v in crit.values if v.code is not None]))
        elif crit.param == "_lastUpdated":
            assert isinstance(crit, DateCriterion)
            out.append(or_(*[_instant(v.prefix, v.low, v.high) for v in crit.values]))
        else:
            cond = _alternatives(crit, blind, blind_params)
            sub = select(S.rid).where(and_(S.rtype == rtype, S.param == crit.param, cond))
            out.append(C.rid.in_(sub))
    return out


def _alternatives(crit: Criterion, blind: Blind, blind_params: frozenset[str]) -> Any:
    if isinstance(crit, TokenCriterion):
        alts = []
        for v in crit.values:
            if crit.param in blind_params:
                if v.code is None:
                    raise InputError(
                        f"{crit.param} search needs a value: identifiers are stored only as "
                        "blind-index tokens, so 'system|' (any value) cannot be matched",
                        field=crit.param,
                        value=f"{v.system}|",
                        expected="system|value or value",
                    )
                # system None = any system; "" = no system (kept distinct by the blinder)
                alts.append(S.value == blind(crit.param, v.system, v.code))
                continue
            parts = []
            if v.code is not None:
                parts.append(S.value == v.code)
            if v.system == "":
                parts.append(or_(S.system.is_(None), S.system == ""))
            elif v.system is not None:
                parts.append(S.system == v.system)
            alts.append(and_(*parts) if parts else true())
        return or_(*alts)
    if isinstance(crit, ReferenceCriterion):
        return S.value.in_(list(crit.references))
    if isinstance(crit, StringCriterion):
        return S.value.in_([blind(crit.param, None, v) for v in crit.values])
    if isinstance(crit, DateCriterion):
        return or_(*[_range(v.prefix, v.low, v.high) for v in crit.values])
    raise InputError(f"unsupported search criterion {crit!r}", field="search")


def _range(prefix: str, s_low: str | None, s_high: str | None) -> Any:
    """R4 date prefixes over stored half-open ranges [low, high) (see search_dates)."""
    contained = and_(
        true() if s_low is None else and_(S.low.is_not(None), S.low >= s_low),
        true() if s_high is None else and_(S.high.is_not(None), S.high <= s_high),
    )
    gt = false() if s_high is None else or_(S.high.is_(None), S.high > s_high)
    lt = false() if s_low is None else or_(S.low.is_(None), S.low < s_low)
    return {
        "eq": contained,
        "ne": not_(contained),
        "ge": or_(contained, gt),
        "le": or_(contained, lt),
        "gt": gt,
        "lt": lt,
        "sa": false() if s_high is None else and_(S.low.is_not(None), S.low >= s_high),
        "eb": false() if s_low is None else and_(S.high.is_not(None), S.high <= s_low),
    }[prefix]


def _instant(prefix: str, s_low: str | None, s_high: str | None) -> Any:
    """``_lastUpdated``: the stored time is an instant, compared in the stored format."""
    lo = None if s_low is None else _stored(s_low)
    hi = None if s_high is None else _stored(s_high)
    inside = and_(true() if lo is None else C.ts >= lo, true() if hi is None else C.ts < hi)
    return {
        "eq": inside,
        "ne": not_(inside),
        "ge": true() if lo is None else C.ts >= lo,
        "gt": false() if hi is None else C.ts >= hi,
        "le": true() if hi is None else C.ts < hi,
        "lt": false() if lo is None else C.ts < lo,
        "sa": false() if hi is None else C.ts >= hi,
        "eb": false() if lo is None else C.ts < lo,
    }[prefix]


def _stored(bound: str) -> str:
    """Convert a search bound to the store's ``lastUpdated`` format (UTC, milliseconds, Z).

    Stored times have millisecond precision, so a finer bound rounds *up*: ``ts < b`` and
    ``ts >= b`` then keep their meaning. Years are zero-padded to four digits.
    """
    when = datetime.fromisoformat(bound.replace("Z", "+00:00")).astimezone(UTC)
    if when.microsecond % 1000:
        when += timedelta(microseconds=1000 - when.microsecond % 1000)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
        f"{when.second:02d}.{when.microsecond // 1000:03d}Z"
    )
