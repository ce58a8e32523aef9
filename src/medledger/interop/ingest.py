"""Store requisitions and results through the records layer, idempotently.

Whatever interface a message came through, its neutral model (``interop.model``) is stored
here as one FHIR transaction per message (all its reports, or none):

- **requisitions**: the sender's item codes are translated to the performer's dictionary
  (an unmapped code *holds* the message, never passes silently); lab and pathology specimens
  get a barcode unique across the group (``urn:medledger:id:group:barcode``), allocated once
  and kept when the message is processed again; an order already stored (same placer number)
  is updated in place (a cancel becomes a new version), an unchanged one is left alone;
- **results**: linked to their order by placer number (a result whose order is not there yet
  is *held* until it arrives; one naming another patient is a *mismatch*); a report already
  stored (same filler number) is updated in place, so a correction or recall is a new version
  of the same DiagnosticReport and Observations and the history shows both.

Every write is conditional on a business key, so processing a message twice (after a crash
before its ACK, or a redelivery) creates nothing new.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from medledger.errors import Gone, InputError, NotFound
from medledger.interop.barcode.scheme import BarcodeScheme
from medledger.interop.barcode.sequences import Sequences, allocate
from medledger.interop.hl7.fhir_orders import requisition_bundle
from medledger.interop.hl7.fhir_results import result_bundle, result_children
from medledger.interop.ingest_rules import (
    business_keys,
    institution_of,
    locations,
    relink,
    same_patient,
    unchanged,
)
from medledger.interop.journal import CST
from medledger.interop.model import (
    LAB_KINDS,
    Coded,
    Requisition,
    Result,
    code_system,
    identifier_system,
)
from medledger.interop.terminology.translate import Translator
from medledger.records.bundles import process_bundle
from medledger.records.guard import SystemGuard
from medledger.records.service import RecordService

__all__ = ["GROUP_BARCODE", "Ingest", "Plan", "Stored", "Unresolved"]

GROUP_BARCODE = identifier_system("group", "barcode")


@dataclass(frozen=True)
class Stored:
    """What a message produced: the resource versions written (or found unchanged)."""

    refs: tuple[str, ...]
    reports: tuple[tuple[str, str], ...] = ()  # (report version ref, placer institution)
    placers: tuple[tuple[str, str], ...] = ()  # (institution, placer) of stored orders


@dataclass(frozen=True)
class Unresolved:
    """Why a message cannot be stored now: held (waits for a mapping or its order) or a
    mismatch (quarantined). ``detail`` names codes and numbers, never patient data."""

    status: str  # held | quarantined
    reason: str
    mismatch: str | None = None
    unmapped: tuple[str, ...] = ()
    waiting_for: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Plan:
    """How a message will be stored: its sender's transactions (a bundle, and for a result
    the institution that placed the order), unchanged PUTs already left out."""

    sender: str
    parts: tuple[tuple[dict[str, Any], str | None], ...]
    placers: tuple[tuple[str, str], ...] = ()

    def keys(self) -> frozenset[str]:
        """The business keys it writes (its entries' fullUrls): two plans that share none
        can run in one transaction."""
        return frozenset(
            str(e.get("fullUrl") or e["request"]["url"]) for b, _ in self.parts for e in b["entry"]
        )


class Ingest:
    """Store models through one node's records layer."""

    def __init__(
        self,
        service: RecordService,
        *,
        translator: Callable[[], Translator],
        barcodes: BarcodeScheme | None,
        clock: Callable[[], float],
    ) -> None:
        self.service = service
        self.translator = translator
        self.barcodes = barcodes
        self.sequences = Sequences(service.ledger.store.engine)
        self.clock = clock
        self._local = threading.local()  # identifiers looked up ahead (``prefetched``)

    # -- requisitions ------------------------------------------------------------------------

    def plan_requisition(self, req: Requisition) -> Plan | Unresolved:
        """The transaction that stores ``req``, or why it cannot be stored yet."""
        translations, unmapped = self.translations(req)
        if unmapped:
            return Unresolved(
                "held",
                f"no mapping to {req.performer}'s dictionary for {', '.join(unmapped)}",
                unmapped=unmapped,
            )
        placer_system = identifier_system(req.sender, "placer")
        existing: dict[str, tuple[str, int]] = {}
        for item in req.items:
            found = self._one("ServiceRequest", placer_system, item.placer)
            if found is not None:
                existing[item.placer] = (found["id"], int(found["meta"]["versionId"]))
        req, allocated = self._with_barcodes(req)
        bundle = requisition_bundle(req, translations=translations, existing=existing)
        self._add_group_barcodes(bundle, req, allocated)
        return Plan(
            req.sender,
            ((self._drop_unchanged(bundle), None),),
            placers=tuple((req.sender, i.placer) for i in req.items),
        )

    def translations(
        self, req: Requisition
    ) -> tuple[dict[tuple[str, str], Sequence[Coded]], tuple[str, ...]]:
        """The performer's codes for each item code of ``req``, and the codes without one
        (``system|code``); nothing to translate when the sender performs it itself."""
        if req.performer is None or req.performer == req.sender:
            return {}, ()
        target = code_system(req.performer)
        translator = self.translator()
        out: dict[tuple[str, str], Sequence[Coded]] = {}
        missing: list[str] = []
        for item in req.items:
            key = (item.code.system, item.code.code)
            found = translator.lookup(item.code.system, item.code.code, target)
            if found:
                out[key] = found
            elif f"{key[0]}|{key[1]}" not in missing:
                missing.append(f"{key[0]}|{key[1]}")
        return out, tuple(missing)

    def _with_barcodes(self, req: Requisition) -> tuple[Requisition, set[str]]:
        """Lab items without the sender's barcode get the group barcode as their specimen id,
        so each gets a Specimen (one per distinct sender barcode otherwise)."""
        if self.barcodes is None:
            return req, set()
        items, allocated = [], set()
        for item in req.items:
            if item.kind in LAB_KINDS and not item.barcode:
                value = self._group_barcode(req.sender, None, item.placer)
                allocated.add(value)
                item = replace(item, barcode=value)
            items.append(item)
        return replace(req, items=tuple(items)), allocated

    def _add_group_barcodes(
        self, bundle: dict[str, Any], req: Requisition, allocated: set[str]
    ) -> None:
        if self.barcodes is None:
            return
        system = identifier_system(req.sender, "barcode")
        for e in bundle.get("entry", []):
            resource = e.get("resource", {})
            if resource.get("resourceType") != "Specimen":
                continue
            ids = resource.setdefault("identifier", [])
            if any(i.get("system") == GROUP_BARCODE for i in ids):
                continue
            own = next((i["value"] for i in ids if i.get("system") == system), None)
            value = own if own in allocated else self._group_barcode(req.sender, own, None)
            ids.append({"system": GROUP_BARCODE, "value": value})

    def _group_barcode(self, sender: str, own: str | None, placer: str | None) -> str:
        """The Specimen's group barcode: the one stored before (processing again keeps it),
        else a new one from the scheme."""
        if own is not None:
            found = self._one("Specimen", identifier_system(sender, "barcode"), own)
            if found is not None:
                for ident in found.get("identifier", []):
                    if ident.get("system") == GROUP_BARCODE:
                        return str(ident["value"])
        if placer is not None:
            sr = self._one("ServiceRequest", identifier_system(sender, "placer"), placer)
            if sr is not None:
                for ref in sr.get("specimen", []):
                    rid = str(ref.get("reference", "")).split("/")[-1]
                    spec = self._current("Specimen", rid) or {}
                    for ident in spec.get("identifier", []):
                        if ident.get("system") == GROUP_BARCODE:
                            return str(ident["value"])
        assert self.barcodes is not None
        return allocate(self.barcodes, self.sequences, sender, self._today())

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), CST).date()

    # -- results -----------------------------------------------------------------------------

    def plan_results(self, results: Sequence[Result]) -> Plan | Unresolved:
        """The transactions that store a message's reports, or why they cannot be yet."""
        parts = []
        for res in results:
            planned = self._plan_result(res)
            if isinstance(planned, Unresolved):
                return planned
            _, bundle, placer_inst = planned
            parts.append((self._drop_unchanged(bundle), placer_inst))
        return Plan(results[0].sender if results else "", tuple(parts))

    def write(self, plan: Plan) -> Stored:
        """Run a plan as ONE transaction as its sender: every report of a message, or none."""
        return self._transaction([plan])[0]

    def write_many(self, plans: Sequence[Plan]) -> list[Stored]:
        """Run the plans of several messages of one sender as ONE transaction (all of them or
        none); their entries must not share a fullUrl (a business key): see ``disjoint``."""
        return self._transaction(plans)

    def _transaction(self, plans: Sequence[Plan]) -> list[Stored]:
        senders = {p.sender for p in plans}
        if len(senders) != 1:
            raise InputError("plans of one sender only", field="sender", value=sorted(senders))
        entries = [e for p in plans for bundle, _ in p.parts for e in bundle["entry"]]
        if not entries:
            return [self._stored(p, [() for _ in p.parts]) for p in plans]
        merged = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = process_bundle(self.service, merged, guard=SystemGuard(senders.pop()))
        refs = iter(locations(merged, answer))
        return [
            self._stored(p, [tuple(next(refs) for _ in b["entry"]) for b, _ in p.parts])
            for p in plans
        ]

    @staticmethod
    def _stored(plan: Plan, written: Sequence[tuple[str, ...]]) -> Stored:
        refs: list[str] = []
        reports: list[tuple[str, str]] = []
        for (_, placer_inst), wrote in zip(plan.parts, written, strict=True):
            refs += wrote
            report = next((r for r in wrote if r.startswith("DiagnosticReport/")), None)
            if report is not None and placer_inst is not None:
                reports.append((report, placer_inst))
        return Stored(tuple(refs), reports=tuple(reports), placers=plan.placers)

    def _plan_result(self, res: Result) -> tuple[Result, dict[str, Any], str] | Unresolved:
        if res.placer is None:
            return Unresolved(
                "quarantined",
                f"report {res.filler} names no placer order number (OBR-2): it cannot be linked",
                mismatch="no-placer",
            )
        order = self._order_of(res)
        if order is None:
            return Unresolved(
                "held",
                f"order {res.placer} of report {res.filler} is not here yet",
                mismatch="order-unknown",
                waiting_for=(res.placer,),
            )
        performers = {
            str(p.get("identifier", {}).get("value"))
            for p in order.get("performer", [])
            if isinstance(p, dict) and p.get("identifier")
        }
        if performers and res.sender not in performers:
            return Unresolved(
                "quarantined",
                f"report {res.filler} comes from {res.sender}; order {res.placer} was sent to "
                f"{', '.join(sorted(performers))}",
                mismatch="performer-mismatch",
            )
        subject = str(order.get("subject", {}).get("reference", ""))
        patient = self.service.store.load("Patient", subject.split("/")[-1]) if subject else None
        if patient is not None and not same_patient(patient.resource, res):
            return Unresolved(
                "quarantined",
                f"report {res.filler} names another patient than order {res.placer}",
                mismatch="patient-mismatch",
            )
        system = identifier_system(res.sender, "filler")
        report = self._one("DiagnosticReport", system, res.filler)
        existing = (report["id"], int(report["meta"]["versionId"])) if report else None
        children: dict[str, tuple[str, int]] = {}
        if report is not None:
            for rtype, key in result_children(res):
                found = self._one(rtype, system, key)
                if found is not None:
                    children[key] = (found["id"], int(found["meta"]["versionId"]))
        bundle = result_bundle(
            res,
            order_ref=f"ServiceRequest/{order['id']}",
            existing=existing,
            patient_existing=subject or None,
            existing_children=children,
        )
        placer_inst = institution_of(order, res.placer) or res.placer_institution or ""
        return res, bundle, placer_inst

    def _order_of(self, res: Result) -> dict[str, Any] | None:
        assert res.placer is not None
        if res.placer_institution:
            system = identifier_system(res.placer_institution, "placer")
            return self._one("ServiceRequest", system, res.placer)
        page = self.service.search("ServiceRequest", [("identifier", res.placer)])
        for found in page.resources:
            if institution_of(found, res.placer) is not None:
                return found
        return None

    # -- shared ------------------------------------------------------------------------------

    def _one(self, rtype: str, system: str, value: str) -> dict[str, Any] | None:
        """The oldest current resource with this identifier, or None."""
        known: dict[tuple[str, str, str], Any] | None = getattr(self._local, "known", None)
        if known is not None and (rtype, system, value) in known:
            return known[(rtype, system, value)]  # type: ignore[no-any-return]
        return self._oldest(rtype, [(system, value)])[(rtype, system, value)]

    def _oldest(
        self, rtype: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str, str], dict[str, Any] | None]:
        """The oldest current ``rtype`` resource with each identifier (system, value), or None."""
        found = self.service.by_identifier(rtype, pairs)
        return {(rtype, s, v): next(iter(found.get((s, v), ())), None) for s, v in pairs}

    @contextmanager
    def prefetched(self, models: Sequence[object]) -> Iterator[None]:
        """Plan ``models`` with their orders and reports looked up together beforehand (one
        query per resource type instead of one per message), on this thread only."""
        wanted: dict[str, set[tuple[str, str]]] = {}
        for model in models:
            for rtype, system, value in business_keys(model):
                wanted.setdefault(rtype, set()).add((system, value))
        known: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        for rtype, pairs in wanted.items():
            known.update(self._oldest(rtype, sorted(pairs)))
        self._local.known = known
        try:
            yield
        finally:
            self._local.known = None

    def _current(self, rtype: str, rid: str) -> dict[str, Any] | None:
        """The current version of ``rtype/rid`` as the node sees it, or None (absent, deleted,
        erased)."""
        try:
            return self.service.store.load(rtype, rid).resource
        except (NotFound, Gone):
            return None

    def _drop_unchanged(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Leave out PUTs that change nothing; references to them point at the stored id."""
        kept, dropped = [], {}
        for e in bundle.get("entry", []):
            request = e.get("request", {})
            if request.get("method") == "PUT":
                rtype, rid = str(request["url"]).split("/")[:2]
                current = self._current(rtype, rid)
                if current is not None and unchanged(current, e["resource"]):
                    if e.get("fullUrl"):
                        dropped[str(e["fullUrl"])] = f"{rtype}/{rid}"
                    continue
            kept.append(e)
        if dropped:
            kept = [relink(e, dropped) for e in kept]
        return {**bundle, "entry": kept}
