"""Consent-based access: which patients' records an institution may use because they agreed.

A FHIR R4 ``Consent`` admits a caller of institution A to the records of one patient when

- its ``status`` is ``active``;
- its top-level ``provision.type`` is ``permit`` (or absent, which R4 reads as permit);
- one of ``provision.actor[].reference`` names institution A (``Organization/<id>`` or the
  ``urn:medledger:institution`` identifier, as in ``records.parties``);
- ``provision.period``, if given, contains the current time;
- ``provision.purpose``, if given, holds the caller's purpose of use (HL7 v3 ActReason code,
  ``TREAT`` unless the request says otherwise);
- ``patient`` is a local ``Patient/<id>`` reference.

It admits only records **owned by the institution that recorded the Consent**: an
institution cannot consent on behalf of another's records, so writing a Consent never lets
anyone into data the writer does not hold. Nested provisions are not interpreted: a
consent with exceptions should be recorded as separate Consents. The result is cached per
(institution, purpose) until a Consent is written or a period boundary passes.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from medledger.errors import Gone
from medledger.records.parties import CONSENT_ACTOR, extract_parties
from medledger.records.service import RecordService

__all__ = ["ConsentIndex", "consent_admits"]

_Key = tuple[str, str]
Pairs = frozenset[tuple[str, str]]


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text if "T" in text else text[:10])
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def consent_admits(
    consent: dict[str, Any], institution: str, purpose: str, now: datetime
) -> tuple[bool, datetime | None]:
    """Whether ``consent`` admits ``institution`` for ``purpose`` at ``now``, and the next
    instant at which that answer may change (a period boundary), if any."""
    if consent.get("status") != "active":
        return False, None
    provision = consent.get("provision") or {}
    if not isinstance(provision, dict) or provision.get("type", "permit") != "permit":
        return False, None
    if (CONSENT_ACTOR, institution) not in extract_parties("Consent", consent):
        return False, None
    purposes = provision.get("purpose") or []
    codes = {p.get("code") for p in purposes if isinstance(p, dict)}
    if codes and purpose not in codes:
        return False, None
    period = provision.get("period") or {}
    start, end = _instant(period.get("start")), _instant(period.get("end"))
    if start is not None and now < start:
        return False, start
    if end is not None and now > end:
        return False, None
    return True, end


class ConsentIndex:
    """The (patient pseudonym, owner) pairs each institution is admitted to by Consent."""

    def __init__(self, service: RecordService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._cache: dict[_Key, tuple[str, datetime | None, Pairs]] = {}

    def admitted(self, institution: str, purpose: str, now: datetime | None = None) -> Pairs:
        """Return the (subject, owner) pairs ``institution`` may use for ``purpose``."""
        now = now or datetime.now(UTC)
        store = self.service.store
        newest = store.newest("Consent")
        key = (institution, purpose)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == newest and (hit[1] is None or now < hit[1]):
            return hit[2]
        pairs: set[tuple[str, str]] = set()
        boundary: datetime | None = None
        for rid, owner in store.naming("Consent", CONSENT_ACTOR, institution):
            try:
                consent = store.load("Consent", rid).resource
            except Gone:  # the patient was erased
                continue
            ok, change = consent_admits(consent, institution, purpose, now)
            if change is not None and (boundary is None or change < boundary):
                boundary = change
            patient = (consent.get("patient") or {}).get("reference")
            if ok and isinstance(patient, str) and patient.startswith("Patient/"):
                target = patient.split("/_history/")[0]
                pairs.add((self.service.indexer.patient_pseudonym(target), owner))
        result = frozenset(pairs)
        with self._lock:
            self._cache[key] = (newest, boundary, result)
        return result
