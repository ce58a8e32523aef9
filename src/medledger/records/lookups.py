"""Lookups the node makes for itself: conditional creates and business identifiers.

A mixin of ``RecordService``: a conditional create's ``ifNoneExist`` (nearly always one
``identifier=system|value``) is matched by one prepared query per resource type
(``RecordStore.by_identifier``), other criteria by the general search; the criteria key makes
identical conditional creates of one institution converge on one resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from medledger.records.paging import SearchPage
from medledger.records.visibility import Visibility

if TYPE_CHECKING:
    from medledger.crypto.suite import Suite
    from medledger.records.guard import Guard
    from medledger.records.indexing import Indexer
    from medledger.records.store import RecordStore

__all__ = ["Lookups"]


class Lookups:
    """Conditional-create matching and identifier lookups over the service's store."""

    store: RecordStore
    indexer: Indexer
    suite: Suite

    def search(
        self,
        rtype: str,
        params: list[tuple[str, str]],
        *,
        guard: Guard | None = None,
        visible: Visibility | None = None,
    ) -> SearchPage:
        raise NotImplementedError  # RecordService.search

    def own_matches(self, rtype: str, params: list[tuple[str, str]], inst: str) -> SearchPage:
        """Up to two current resources of ``inst`` matching a conditional create's criteria."""
        return self.own_matches_many(rtype, [params], inst)[0]

    def own_matches_many(
        self, rtype: str, queries: Sequence[list[tuple[str, str]]], inst: str
    ) -> list[SearchPage]:
        """``own_matches`` for several criteria of one type: those that are one
        ``identifier=system|value`` (the usual business key) in one prepared query."""
        keys = [_identifier_key(params) for params in queries]
        simple = [k for k in keys if k is not None]
        found = self.by_identifier(rtype, simple, owner=inst) if simple else {}
        own = Visibility(owners=frozenset({inst}))
        return [
            SearchPage(found.get(key, [])[:2], None, None)
            if key is not None
            else self.search(rtype, [*params, ("_count", "2")], visible=own)
            for params, key in zip(queries, keys, strict=True)
        ]

    def by_identifier(
        self, rtype: str, identifiers: Sequence[tuple[str, str]], owner: str | None = None
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The current ``rtype`` resources (of ``owner``, if given) with each identifier
        (system, value), oldest first: the system's own lookup, with no caller's visibility."""
        tokens = {self.indexer.blind_value("identifier", s, v): (s, v) for s, v in identifiers}
        found = self.store.by_identifier(rtype, list(tokens), owner)
        return {tokens[t]: [loaded.resource for loaded in rows] for t, rows in found.items()}

    def conditional_criteria(self, rtype: str, params: list[tuple[str, str]], inst: str) -> str:
        """The key that makes identical conditional creates of one institution converge
        (sorted parameters); two institutions' identical criteria never share a resource."""
        key = f"{inst}|{rtype}?{urlencode(sorted(params))}"
        return self.suite.hash(key.encode()).hex()

    def forget_stale_conditional(
        self,
        rtype: str,
        criteria: str,
        params: list[tuple[str, str]],
        rid: str | None = None,
        *,
        institution: str,
    ) -> bool:
        """Drop the criteria row if the resource it names (``rid`` or the stored one) no
        longer matches ``params``; return whether it was dropped."""
        rid = rid or self.store.conditional_winner(rtype, criteria)
        if rid is None:
            return False
        again = self.own_matches(rtype, params, institution)
        if any(r["id"] == rid for r in again.resources):
            return False
        self.store.forget_conditional(rtype, criteria, rid)
        return True


def _identifier_key(params: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(system, value) when ``params`` is exactly one plain ``identifier=system|value``."""
    if len(params) != 1 or params[0][0] != "identifier":
        return None
    token = params[0][1]
    if token.count("|") != 1 or "," in token or "\\" in token:
        return None
    system, value = token.split("|")
    return (system, value) if system and value else None
