"""Specimen download (送检条码下载): the rows a performing LIS fetches for stored lab orders.

The gateway stores each requisition as ServiceRequests and Specimens
(:mod:`medledger.interop.hl7.fhir_orders`) and gives every lab Specimen a barcode unique across
the group, an identifier under :data:`GROUP_BARCODE`. The performer's LIS downloads them as
one row per Specimen:

- a Specimen is listed when it carries a group barcode and a current lab or pathology
  ServiceRequest (category SNOMED CT 108252007 or 108257001) names it in ``specimen`` and
  matches the query (``performer``: the order names that institution as performer;
  ``status``: the order has one of those statuses);
- its ``items`` are those orders (all their statuses; only the asked performer's), each with
  the sender's code and, when the order carries one, the performer's translated code (the
  coding of ``code_system(performer)``);
- ``status`` is the most current item status, in the order of :data:`STATUSES`; ``updated``
  is the newest ``lastUpdated`` of the Specimen and its items;
- the patient is the Specimen's subject pseudonym; names never appear.

Paging is a keyset over (Specimen ``lastUpdated``, id), oldest first: a Specimen written again
while a client pages moves behind the cursor and is delivered again, never skipped. A page may
hold fewer rows than ``_count`` (Specimens without a group barcode yet, or whose orders the
caller may not see, are passed over); the client follows the token until there is none.
``since`` keeps Specimens that changed at or after the instant, or one of whose matching orders
did (a cancelled order is a new ServiceRequest version, so it shows again).

Visibility is the records layer's: the caller's guard filters Specimens in SQL and orders
through the ordinary search, and is told of every record read, for the audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, String, and_, exists, literal, or_, select
from sqlalchemy.exc import SQLAlchemyError

from medledger.errors import NotFound, PermissionDenied, StateError, StorageError
from medledger.interop.hl7.fhir_common import INSTITUTION_SYSTEM, KIND_SNOMED, SNOMED
from medledger.interop.model import LAB_KINDS, code_system, identifier_system
from medledger.records.guard import READ, SEARCH, Guard
from medledger.records.parties import PARTY_PARAM
from medledger.records.service import RecordService
from medledger.records.store import Loaded
from medledger.store.schema_records import record_current, record_search

__all__ = [
    "DEFAULT_COUNT",
    "GROUP_BARCODE",
    "STATUSES",
    "DownloadItem",
    "DownloadPage",
    "DownloadRow",
    "SpecimenQuery",
    "find_specimen",
    "label_time",
    "list_specimens",
    "row_for_barcode",
    "specimen_row",
]

GROUP_BARCODE = identifier_system("group", "barcode")
DEFAULT_COUNT = 100
STATUSES = ("active", "on-hold", "draft", "completed", "revoked", "entered-in-error", "unknown")
"""FHIR request statuses, most current first: a row's status is its items' first one here."""
CST = timezone(timedelta(hours=8))
_SR = "ServiceRequest"
_LAB_CODES = {KIND_SNOMED[k][0]: k for k in sorted(LAB_KINDS)}
_REFS_PER_SEARCH = 80  # a search value holds at most 4096 characters
_C = record_current.c


@dataclass(frozen=True)
class SpecimenQuery:
    """A download request: filters, page size and the keyset position to continue after."""

    performer: str | None = None
    since: str | None = None  # in the store's lastUpdated format
    statuses: tuple[str, ...] = ()
    count: int = DEFAULT_COUNT
    after: tuple[str, str] | None = None  # keyset cursor: (lastUpdated, id) last scanned


@dataclass(frozen=True)
class DownloadItem:
    """One ordered item (ServiceRequest) of a specimen."""

    placer: str | None
    system: str | None
    code: str | None
    name: str | None
    performer_code: str | None
    performer_name: str | None
    kind: str
    status: str
    ordered: str | None
    updated: str
    fhir_ref: str

    def to_json(self) -> dict[str, Any]:
        """Return the item as the download API's JSON object."""
        return {
            "placer": self.placer, "system": self.system, "code": self.code, "name": self.name,
            "performer_code": self.performer_code, "performer_name": self.performer_name,
            "kind": self.kind, "status": self.status, "fhir_ref": self.fhir_ref,
        }  # fmt: skip


@dataclass(frozen=True)
class DownloadRow:
    """One specimen (送检条码) as the LIS downloads it."""

    barcode: str
    member_barcode: str | None
    sender: str
    performer: str | None
    patient_pseudonym: str
    items: tuple[DownloadItem, ...]
    specimen_type: dict[str, str | None] | None
    collected: str | None
    specimen_ref: str
    updated: str

    @property
    def status(self) -> str:
        """The most current item status (``unknown`` without items)."""
        found = {i.status for i in self.items}
        return next((s for s in STATUSES if s in found), "unknown")

    def to_json(self) -> dict[str, Any]:
        """Return the row as the download API's JSON object."""
        return {
            "barcode": self.barcode, "member_barcode": self.member_barcode,
            "placers": [i.placer for i in self.items if i.placer is not None],
            "sender": self.sender, "performer": self.performer,
            "patient_pseudonym": self.patient_pseudonym,
            "items": [i.to_json() for i in self.items], "specimen_type": self.specimen_type,
            "collected": self.collected,
            "ordered": next((i.ordered for i in self.items if i.ordered), None),
            "status": self.status, "updated": self.updated,
            "fhir": {"specimen": self.specimen_ref,
                     "service_requests": [i.fhir_ref for i in self.items]},
        }  # fmt: skip


@dataclass(frozen=True)
class DownloadPage:
    """One page of rows and the keyset position after it (None: nothing more now)."""

    rows: tuple[DownloadRow, ...]
    after: tuple[str, str] | None


def list_specimens(service: RecordService, guard: Guard, query: SpecimenQuery) -> DownloadPage:
    """Return one page of download rows the caller may see (see the module docstring)."""
    visible = guard.visibility(SEARCH, "Specimen")
    conditions = [_orders_naming(query)]
    if query.since is not None:
        changed = _orders_naming(query, changed_since=query.since)
        conditions.append(or_(_C.ts >= query.since, changed))
    if query.after is not None:
        ts, rid = query.after
        conditions.append(or_(_C.ts > ts, and_(_C.ts == ts, _C.rid > rid)))
    try:
        found, _, more = service.store.search(
            "Specimen", conditions, newest_first=False, limit=query.count + 1, offset=0,
            with_total=False, visible=visible.clause("Specimen"),
        )  # fmt: skip
    except SQLAlchemyError as exc:
        raise StorageError(f"record store: {type(exc).__name__}") from exc
    for loaded in found:
        guard.touched(loaded.version.ref, loaded.version.subject, loaded.version.inst)
    orders = _orders_of(service, guard, [loaded.version.rid for loaded in found])
    rows = []
    for loaded in found:
        row = specimen_row(loaded, orders[loaded.version.rid], performer=query.performer)
        if row is not None and row.items:
            rows.append(row)
    after = None
    if more and found:
        after = (found[-1].version.ts, found[-1].version.rid)
    elif more:  # every Specimen of the page was erased while it was read: scan it again
        after = query.after
    return DownloadPage(tuple(rows), after)


def find_specimen(service: RecordService, barcode: str, guard: Guard) -> Loaded:
    """Return the Specimen with group barcode ``barcode`` if the caller may read it.

    NotFound both when there is none and when the caller may not read it, so the answer never
    tells a caller that a barcode exists. StateError if two readable Specimens carry it.
    """
    missing = NotFound(
        "no specimen with this barcode", field="barcode", value=barcode,
        expected="the group barcode of a specimen you may read",
    )  # fmt: skip
    if not isinstance(barcode, str) or not 0 < len(barcode) <= 40:
        raise missing
    if any(not 0x21 <= ord(c) <= 0x7E for c in barcode):
        raise missing
    value = re.sub(r"([\\,|$])", r"\\\1", barcode)  # FHIR search escaping
    try:
        visible = guard.visibility(READ, "Specimen")
        page = service.search(
            "Specimen", [("identifier", f"{GROUP_BARCODE}|{value}"), ("_count", "2")],
            guard=guard, visible=visible,
        )  # fmt: skip
        if len(page.resources) == 1:
            return service.read("Specimen", str(page.resources[0]["id"]), guard=guard)
    except (PermissionDenied, NotFound) as exc:
        raise missing from exc
    if page.resources:
        raise StateError(
            "more than one specimen carries this group barcode", field="barcode",
            value=barcode, expected="a barcode unique across the group",
        )  # fmt: skip
    raise missing


def row_for_barcode(service: RecordService, barcode: str, guard: Guard) -> DownloadRow:
    """Return the download row of the Specimen with group barcode ``barcode`` (all its lab
    orders the caller may see, whoever performs them); NotFound as :func:`find_specimen`."""
    loaded = find_specimen(service, barcode, guard)
    try:
        orders = _orders_of(service, guard, [loaded.version.rid])[loaded.version.rid]
    except PermissionDenied:  # it may read the Specimen but not orders: a label without items
        orders = []
    row = specimen_row(loaded, orders, performer=None)
    if row is None or row.barcode != barcode:  # its barcode changed since the search
        raise NotFound(
            "no specimen with this barcode", field="barcode", value=barcode,
            expected="the group barcode of a specimen you may read",
        )  # fmt: skip
    return row


def label_time(text: str | None) -> str | None:
    """Return a FHIR dateTime as the label prints it: ``YYYY-MM-DD HH:MM`` in China time
    (UTC+8) when it has a time and offset, else as given."""
    if text is None or "T" not in text:
        return text
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.astimezone(CST).strftime("%Y-%m-%d %H:%M")


def specimen_row(
    loaded: Loaded, orders: Iterable[dict[str, Any]], *, performer: str | None
) -> DownloadRow | None:
    """Build the row of one Specimen from its orders (None: it has no group barcode).

    Only lab and pathology orders become items, and only ``performer``'s when given.
    """
    spec, version = loaded.resource, loaded.version
    idents = [i for i in spec.get("identifier", []) if isinstance(i, dict)]
    barcode = next((str(i["value"]) for i in idents if i.get("system") == GROUP_BARCODE), None)
    if barcode is None:
        return None
    sender = version.inst
    own_system = identifier_system(sender, "barcode")
    own = next((str(i["value"]) for i in idents if i.get("system") == own_system), None)
    place = {_ref_id(r, _SR): n for n, r in enumerate(spec.get("request", []))}
    items = []
    for sr in sorted(orders, key=lambda o: (place.get(str(o.get("id")), len(place)), o["id"])):
        item = _item(sr, sender, performer)
        if item is not None:
            items.append(item)
    kind = spec.get("type") or {}
    coding = (kind.get("coding") or [{}])[0]
    specimen_type = None
    if kind:
        name = coding.get("display") or kind.get("text")
        specimen_type = {"system": coding.get("system"), "code": coding.get("code"), "name": name}
    collection = spec.get("collection") or {}
    collected = collection.get("collectedDateTime") or (
        (collection.get("collectedPeriod") or {}).get("start")
    )
    return DownloadRow(
        barcode=barcode, member_barcode=own if own != barcode else None, sender=sender,
        performer=performer or next((i.performer for i in items if i.performer), None),
        patient_pseudonym=version.subject, items=tuple(i.item for i in items),
        specimen_type=specimen_type, collected=collected,
        specimen_ref=f"Specimen/{version.rid}",
        updated=max([version.ts, *(i.item.updated for i in items)]),
    )  # fmt: skip


@dataclass(frozen=True)
class _Found:
    item: DownloadItem
    performer: str | None


def _item(sr: dict[str, Any], sender: str, wanted: str | None) -> _Found | None:
    """The item of one order, or None if it is no lab order (of ``wanted``)."""
    kind = next(
        (_LAB_CODES[c.get("code")] for cat in sr.get("category", []) for c in cat.get("coding", [])
         if c.get("system") == SNOMED and c.get("code") in _LAB_CODES),
        None,
    )  # fmt: skip
    performer = next(
        (str(p["identifier"]["value"]) for p in sr.get("performer", [])
         if (p.get("identifier") or {}).get("system") == INSTITUTION_SYSTEM),
        None,
    )  # fmt: skip
    if kind is None or (wanted is not None and performer != wanted):
        return None
    code = sr.get("code") or {}
    codings = [c for c in code.get("coding", []) if isinstance(c, dict)]
    target = code_system(performer) if performer and performer != sender else None
    theirs = next((c for c in codings if target and c.get("system") == target), {})
    ours = next((c for c in codings if c.get("system") != target), {})
    placer_system = identifier_system(sender, "placer")
    idents = [i for i in sr.get("identifier", []) if isinstance(i, dict)]
    placer = next((i.get("value") for i in idents if i.get("system") == placer_system), None)
    meta = sr.get("meta") or {}
    item = DownloadItem(
        placer=placer, system=ours.get("system"), code=ours.get("code"),
        name=ours.get("display") or code.get("text"), performer_code=theirs.get("code"),
        performer_name=theirs.get("display"), kind=kind, status=str(sr.get("status")),
        ordered=sr.get("authoredOn"), updated=str(meta.get("lastUpdated", "")),
        fhir_ref=f"{_SR}/{sr['id']}",
    )  # fmt: skip
    return _Found(item, performer)


def _orders_of(
    service: RecordService, guard: Guard, specimen_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The current ServiceRequests the caller may see that name each Specimen, by its id."""
    out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in specimen_ids}
    for start in range(0, len(specimen_ids), _REFS_PER_SEARCH):
        refs = ",".join(f"Specimen/{rid}" for rid in specimen_ids[start : start + _REFS_PER_SEARCH])
        token: str | None = None
        while True:
            params = [("specimen", refs), ("_count", "1000")]
            page = service.search(_SR, params + ([("_page_token", token)] if token else []),
                                  guard=guard)  # fmt: skip
            for sr in page.resources:
                for target in {_ref_id(r, "Specimen") for r in sr.get("specimen", [])}:
                    if target in out:
                        out[target].append(sr)
            token = page.next_token
            if token is None:
                break
    return out


def _orders_naming(query: SpecimenQuery, *, changed_since: str | None = None) -> Any:
    """SQL: a current lab ServiceRequest names this Specimen and matches the query."""
    link, order = record_search.alias(), record_current.alias()
    conditions: list[ColumnElement[bool]] = [
        link.c.rtype == _SR,
        link.c.param == "specimen",
        link.c.value == literal("Specimen/", String()) + _C.rid,
        _has(link.c.rid, "category", SNOMED, _LAB_CODES),
    ]
    if query.performer is not None:
        conditions.append(_has(link.c.rid, PARTY_PARAM, "performer", [query.performer]))
    if query.statuses:
        conditions.append(_has(link.c.rid, "status", None, query.statuses))
    if changed_since is not None:
        conditions.append(order.c.ts >= changed_since)
    joined = link.join(
        order, and_(order.c.rtype == _SR, order.c.rid == link.c.rid, order.c.deleted.is_(False))
    )
    return exists(select(link.c.rid).select_from(joined).where(and_(*conditions)))


def _has(rid: Any, param: str, system: str | None, values: Iterable[str]) -> Any:
    """SQL: ServiceRequest ``rid`` has a search row ``param`` with one of ``values``."""
    row = record_search.alias()
    conditions = [
        row.c.rtype == _SR, row.c.rid == rid, row.c.param == param,
        row.c.value.in_(sorted(values)),
    ]  # fmt: skip
    if system is not None:
        conditions.append(row.c.system == system)
    return exists(select(row.c.rid).where(and_(*conditions)))


def _ref_id(ref: Any, rtype: str) -> str:
    """The id of a literal reference ``<rtype>/<id>`` ("" for anything else)."""
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str) or not text.startswith(f"{rtype}/"):
        return ""
    return text[len(rtype) + 1 :].split("/", 1)[0]
