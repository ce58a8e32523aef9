"""The typed result of parsing a FHIR search: criteria, paging, and their reference semantics.

Each criterion's ``matches`` states, over :class:`IndexValue` entries, what a store must
implement (in SQL or otherwise): it is the executable definition the tests pin.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from medledger.records.search_dates import range_matches
from medledger.records.search_index import IndexValue, extract_index

__all__ = [
    "DEFAULT_COUNT",
    "Criterion",
    "DateCriterion",
    "DateValue",
    "ReferenceCriterion",
    "SearchQuery",
    "StringCriterion",
    "TokenCriterion",
    "TokenValue",
    "normalize_string",
]

DEFAULT_COUNT = 20


def normalize_string(text: str) -> str:
    """Fold a string for the default (non-``:exact``) string match: NFKC, casefold, one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True, slots=True)
class TokenValue:
    """One token alternative: ``system`` None = any system, ``""`` = no system; ``code`` None =
    any code of ``system`` (the ``system|`` form)."""

    system: str | None
    code: str | None

    def matches(self, system: str | None, code: str) -> bool:
        """Tell whether an indexed ``(system, code)`` matches this alternative."""
        if self.code is not None and code != self.code:
            return False
        if self.system is None:
            return True
        return (system or "") == self.system


@dataclass(frozen=True, slots=True)
class DateValue:
    """One date alternative: the prefix and the half-open UTC range of the searched value."""

    prefix: str
    low: str | None
    high: str | None
    text: str

    def matches(self, low: str | None, high: str | None) -> bool:
        """Tell whether an indexed range ``[low, high)`` satisfies this alternative."""
        return range_matches(self.prefix, (self.low, self.high), (low, high))


@dataclass(frozen=True, slots=True)
class TokenCriterion:
    """Token parameter: any of ``values`` matches (comma = OR)."""

    param: str
    values: tuple[TokenValue, ...]

    def matches(self, entries: Iterable[IndexValue]) -> bool:
        """Tell whether a resource with these index entries satisfies the criterion."""
        return any(
            v.matches(e.system, e.value)
            for e in entries
            if e.param == self.param
            for v in self.values
        )


@dataclass(frozen=True, slots=True)
class ReferenceCriterion:
    """Reference parameter: the entry's ``Type/id`` is one of ``references`` (OR)."""

    param: str
    references: tuple[str, ...]

    def matches(self, entries: Iterable[IndexValue]) -> bool:
        """Tell whether a resource with these index entries satisfies the criterion."""
        return any(e.value in self.references for e in entries if e.param == self.param)


@dataclass(frozen=True, slots=True)
class DateCriterion:
    """Date parameter: any of ``values`` matches some indexed range (OR)."""

    param: str
    values: tuple[DateValue, ...]

    def matches(self, entries: Iterable[IndexValue]) -> bool:
        """Tell whether a resource with these index entries satisfies the criterion."""
        return any(
            v.matches(e.low, e.high) for e in entries if e.param == self.param for v in self.values
        )


@dataclass(frozen=True, slots=True)
class StringCriterion:
    """String parameter: by default an indexed value *starts with* one of ``values`` after
    :func:`normalize_string`; with ``exact`` (``:exact``) it equals one exactly."""

    param: str
    values: tuple[str, ...]
    exact: bool = False

    def matches(self, entries: Iterable[IndexValue]) -> bool:
        """Tell whether a resource with these index entries satisfies the criterion."""
        found = [e.value for e in entries if e.param == self.param]
        if self.exact:
            return any(v in self.values for v in found)
        wanted = [normalize_string(v) for v in self.values]
        return any(normalize_string(v).startswith(w) for v in found for w in wanted)


Criterion = TokenCriterion | ReferenceCriterion | DateCriterion | StringCriterion


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: every criterion must hold (repeated parameter = AND).

    ``sort`` is None (store order), ``_lastUpdated`` or ``-_lastUpdated``; ``total`` is
    ``none`` unless the client asks ``_total=accurate``; ``page_token`` is the opaque cursor of
    a 'next' link, passed back as given.
    """

    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    sort: Literal["_lastUpdated", "-_lastUpdated"] | None = None
    total: Literal["accurate", "none"] = "none"
    page_token: str | None = None

    def matches(self, resource: dict[str, Any]) -> bool:
        """Tell whether ``resource`` satisfies every criterion (reference semantics)."""
        entries = extract_index(resource)
        return all(c.matches(entries) for c in self.criteria)
