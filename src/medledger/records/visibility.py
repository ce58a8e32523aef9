"""Which records a caller may see, as data: applied in SQL to searches, in Python to one record.

The access layer decides (roles, sharing policy, consents, break-glass) and hands the records
layer a ``Visibility``; the records layer never knows why. Searches add ``clause`` to their
WHERE, so a page, its next link and ``_total`` only ever count visible resources. A single
read checks ``admits`` on the same facts; ``tests/records/test_visibility.py`` holds the two to
the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, false, or_, select, true, tuple_

from medledger.records.parties import PARTY_PARAM
from medledger.store.schema_records import record_current, record_search

__all__ = ["EVERYTHING", "Facts", "Shared", "Visibility"]

ANY_PARTY = "*"
"""A ``Shared`` role meaning every institution of the group."""


@dataclass(frozen=True, slots=True)
class Shared:
    """A sharing rule as it applies to one caller: records naming the caller's institution in
    one of ``roles`` (``*``: whatever they name), and of one of ``categories`` (empty: any)."""

    roles: frozenset[str]
    categories: frozenset[str] = frozenset()
    name: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """What visibility depends on for one record: owner, subject, parties and categories."""

    owner: str
    subject: str
    parties: frozenset[tuple[str, str]]
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class Visibility:
    """The records of one type a caller may see for one action.

    ``everything``: no restriction (a group-wide grant, or break-glass). Otherwise a record is
    visible when its owner is in ``owners``, when a ``shared`` rule admits ``member`` (the
    caller's institution), or when its (subject, owner) pair is in ``consented``.
    """

    everything: bool = False
    owners: frozenset[str] = frozenset()
    member: str = ""
    shared: tuple[Shared, ...] = ()
    consented: frozenset[tuple[str, str]] = frozenset()

    def basis(self, facts: Facts) -> str | None:
        """Why a record with ``facts`` is visible: ``grant``, ``sharing:<rule>``, ``consent``,
        or None when it is not. (``everything`` answers ``grant``; the caller knows whether
        that came from break-glass.)"""
        if self.everything or facts.owner in self.owners:
            return "grant"
        for rule in self.shared:
            if _rule_admits(rule, self.member, facts):
                return f"sharing:{rule.name}" if rule.name else "sharing"
        if (facts.subject, facts.owner) in self.consented:
            return "consent"
        return None

    def admits(self, facts: Facts) -> bool:
        """Whether a record with ``facts`` is visible."""
        return self.basis(facts) is not None

    def clause(self, rtype: str) -> Any:
        """The SQL condition on ``record_current`` rows of ``rtype`` (None: no condition)."""
        if self.everything:
            return None
        c = record_current.c
        parts: list[Any] = []
        if self.owners:
            parts.append(c.inst.in_(sorted(self.owners)))
        for rule in self.shared:
            parts.append(_rule_clause(rtype, rule, self.member))
        if self.consented:
            parts.append(tuple_(c.subject, c.inst).in_(sorted(self.consented)))
        return or_(*parts) if parts else false()


EVERYTHING = Visibility(everything=True)


def _rule_admits(rule: Shared, member: str, facts: Facts) -> bool:
    if rule.categories and not rule.categories & facts.categories:
        return False
    if ANY_PARTY in rule.roles:
        return True
    return any(role in rule.roles and inst == member for role, inst in facts.parties)


def _search_row(rtype: str, param: str, values: Iterable[str], systems: Any = None) -> Any:
    s, c = record_search.c, record_current.c
    cond = [s.rtype == rtype, s.rid == c.rid, s.param == param, s.value.in_(sorted(values))]
    if systems is not None:
        cond.append(s.system.in_(sorted(systems)))
    return exists(select(s.rid).where(and_(*cond)))


def _rule_clause(rtype: str, rule: Shared, member: str) -> Any:
    parts: list[Any] = []
    if rule.categories:
        parts.append(_search_row(rtype, "category", rule.categories))
    if ANY_PARTY not in rule.roles:
        if not rule.roles or not member:
            return false()
        parts.append(_search_row(rtype, PARTY_PARAM, [member], rule.roles))
    return and_(*parts) if parts else true()
