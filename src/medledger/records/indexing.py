"""What a resource is stored under: its patient pseudonym, its search rows and its parties.

Names and identifiers are indexed only as blind-index tokens (DESIGN §5); the parties a
resource names (``records.parties``), and those it inherits from the orders it is based on,
are indexed as ``_party`` rows so that sharing rules filter searches in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from medledger.crypto.suite import Suite
from medledger.records.blind import BlindIndex, GroupSecret, pseudonym
from medledger.records.parties import (
    CONSENT_ACTOR,
    PARTY_PARAM,
    REQUESTER,
    based_on_orders,
    extract_parties,
)
from medledger.records.search_index import extract_index
from medledger.records.versions import IndexRow
from medledger.records.visibility import Facts

__all__ = ["ANY_SYSTEM", "BLIND_PARAMS", "Indexer"]

# Parameters whose values identify a person: stored only as blind-index tokens.
_BLIND_TOKENS = frozenset({"identifier"})
ANY_SYSTEM = "\x00any-system"  # a control character: no identifier system URI can contain it
BLIND_PARAMS = frozenset({"identifier", "name", "family", "given"})

Parties = frozenset[tuple[str, str]]


class Indexer:
    """Pseudonyms and search rows of one node's resources."""

    def __init__(
        self,
        group: GroupSecret,
        suite: Suite,
        institution: str,
        facts: Callable[[str, str], Facts | None],
    ) -> None:
        self.group = group
        self.suite = suite
        self.institution = institution
        self.blind = BlindIndex.from_group_secret(group, suite)
        self._facts = facts

    def subject_of(self, rtype: str, rid: str, resource: dict[str, Any]) -> str:
        """Return the pseudonym whose data key encrypts this resource.

        All of one patient's resources share the patient's pseudonym (so erasing the patient
        shreds them all); resources about no patient use the institution's own.
        """
        if rtype == "Patient":
            return pseudonym(self.group, self.institution, f"Patient/{rid}", self.suite)
        for field in ("subject", "patient"):
            ref = resource.get(field)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                target = ref["reference"].rsplit("/_history/", 1)[0]
                # Only a local reference names one of this node's patients; an absolute URL
                # points at another server's patient, so the data gets the institution's key.
                if target.startswith("Patient/") and "://" not in target:
                    return pseudonym(self.group, self.institution, target, self.suite)
        return pseudonym(self.group, self.institution, "institution", self.suite)

    def patient_pseudonym(self, patient_ref: str) -> str:
        """The pseudonym of ``Patient/<id>`` (what Consent-based access is keyed on)."""
        return pseudonym(self.group, self.institution, patient_ref, self.suite)

    def parties(
        self, rtype: str, resource: dict[str, Any], local: Mapping[str, Parties] | None = None
    ) -> Parties:
        """The (role, institution) pairs of ``resource``, with those of its orders.

        ``local`` holds the parties of orders written in the same transaction (by id). The
        owner of an order counts as its ``requester``.
        """
        found = set(extract_parties(rtype, resource))
        for order in based_on_orders(rtype, resource):
            inherited = (local or {}).get(order)
            if inherited is None:
                facts = self._facts("ServiceRequest", order)
                # The institution that placed the order requested what answers it.
                inherited = (
                    facts.parties | {(REQUESTER, facts.owner)} if facts is not None else frozenset()
                )
            found |= {p for p in inherited if p[0] != CONSENT_ACTOR}
        return frozenset(found)

    def index_rows(
        self, rtype: str, resource: dict[str, Any], parties: Parties | None = None
    ) -> list[IndexRow]:
        """Return the search rows of ``resource``, names and identifiers blind-indexed, and
        its ``_party`` rows (``parties``, computed if not given)."""
        rows = []
        for v in extract_index(resource):
            if v.param.startswith("_"):
                continue  # _id and _lastUpdated are searched on the store's own columns
            if v.param in _BLIND_TOKENS:
                # Two tokens: one for "system|value" (or "|value": no system) searches and one
                # for "value" in any system, under a tag no real system can equal.
                for system in {v.system, ANY_SYSTEM}:
                    rows.append(IndexRow(v.param, v.kind, None, self.blind.token(system, v.value)))
                continue
            value = self.blind.name(v.value) if v.kind == "string" else v.value
            rows.append(IndexRow(v.param, v.kind, v.system, value, v.low, v.high))
        if parties is None:
            parties = self.parties(rtype, resource)
        for role, inst in sorted(parties):
            rows.append(IndexRow(PARTY_PARAM, "token", role, inst))
        return rows

    def blind_value(self, param: str, system: str | None, value: str) -> str:
        """The stored form of a searched name or identifier value."""
        if param in _BLIND_TOKENS:
            return self.blind.token(ANY_SYSTEM if system is None else system, value)
        return self.blind.name(value)
