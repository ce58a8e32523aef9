"""FHIR ``transaction`` and ``batch`` Bundles.

A transaction is all or nothing: every entry is validated first (issues name
``Bundle.entry[i]…`` paths), ``urn:uuid`` full URLs are resolved to the ids the server
assigns, and every version is stored in one database transaction before the ledger entries
are appended together. A batch processes each entry on its own and reports each outcome.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from medledger.errors import InputError, MedLedgerError, NotFound, ResourceInvalid, WriteConflict
from medledger.records.fhir_model import outcome_for, validate_resource
from medledger.records.guard import DELETE, WRITE, Guard
from medledger.records.paging import SearchPage
from medledger.records.parties import REQUESTER, based_on_orders
from medledger.records.service import RecordService, Saved

MAX_ENTRIES = 1000
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_METHODS = ("POST", "PUT", "DELETE")


@dataclass(slots=True)
class _Entry:
    index: int
    method: str
    rtype: str
    rid: str | None
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: int | None
    criteria: str | None = None  # a conditional create's key, once no match was found


def process_bundle(
    service: RecordService, bundle: Any, guard: Guard | None = None
) -> dict[str, Any]:
    """Run a transaction or batch Bundle and return its response Bundle.

    ``guard`` decides every entry (a transaction with one refused entry writes nothing)."""
    g = guard or service.system
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _invalid("Bundle.resourceType", "the body must be a Bundle", "structure")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise _invalid(
            "Bundle.type",
            f"Bundle type {kind!r} cannot be posted here; use transaction or batch",
            "not-supported",
        )
    raw = bundle.get("entry", [])
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise _invalid(
            "Bundle.entry", f"entry must be a list of at most {MAX_ENTRIES}", "structure"
        )
    if kind == "batch":
        return {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [_batch_entry(service, g, i, e) for i, e in enumerate(raw)],
        }
    entries = [_parse(i, e) for i, e in enumerate(raw)]
    seen: set[str] = set()
    for e in entries:
        if e.full_url is not None:
            if e.full_url in seen:
                raise _invalid(
                    f"Bundle.entry[{e.index}].fullUrl",
                    f"fullUrl {e.full_url} appears twice",
                    "invalid",
                )
            seen.add(e.full_url)
    for attempt in range(3):
        try:
            return _transaction(service, g, entries)
        except WriteConflict:
            # A concurrent twin of one of our conditional creates won, or a criteria row is
            # stale: drop stale rows, then run again (the winner is now found by search).
            if attempt == 2:
                raise
            for e in entries:
                if e.method == "POST":
                    e.rid = None  # assigned again on the next attempt
                if e.criteria is not None:
                    params = _query(e.if_none_exist or "")
                    service.forget_stale_conditional(
                        e.rtype, e.criteria, params, institution=g.institution
                    )
                    e.criteria = None
    raise AssertionError("unreachable")


def _transaction(service: RecordService, g: Guard, entries: list[_Entry]) -> dict[str, Any]:
    issues: list[dict[str, Any]] = []
    for e in entries:
        if e.resource is not None:
            try:
                validate_resource(
                    e.resource, expected_type=e.rtype, path=f"Bundle.entry[{e.index}].resource"
                )
            except ResourceInvalid as exc:
                issues += exc.issues
    if issues:
        raise ResourceInvalid(f"transaction has {len(issues)} invalid element(s)", issues=issues)
    existing: dict[int, Saved] = {}
    ids: dict[str, str] = {}
    criteria_seen: set[str] = set()
    matches = _conditional_matches(service, g, entries)
    for e in entries:
        if e.method == "POST":
            if e.if_none_exist:
                found = matches[e.index]
                if len(found.resources) > 1:
                    raise _invalid(
                        f"Bundle.entry[{e.index}].request.ifNoneExist",
                        "ifNoneExist matches more than one resource",
                        "multiple-matches",
                    )
                if found.resources:
                    e.rid = found.resources[0]["id"]
                    existing[e.index] = service.existing(e.rtype, e.rid)
                    v0 = existing[e.index].version
                    g.touched(v0.ref, v0.subject, v0.inst)
                else:
                    e.criteria = service.conditional_criteria(
                        e.rtype, _query(e.if_none_exist), g.institution
                    )
                    if e.criteria in criteria_seen:
                        raise _invalid(
                            f"Bundle.entry[{e.index}].request.ifNoneExist",
                            "two entries of the transaction have the same ifNoneExist",
                            "duplicate",
                        )
                    criteria_seen.add(e.criteria)
            e.rid = e.rid or str(uuid.uuid4())
        if e.full_url:
            ids[e.full_url] = f"{e.rtype}/{e.rid}"
    items = _items(service, g, entries, existing, ids)
    written = service.store.write_many(items)
    for w in written:
        g.touched(w.version.ref, w.version.subject, w.version.inst)
    new = [w for w in written if w.entry is not None]
    receipts = service.anchored.anchor_all(new)
    service.notify([w.version for w in new])
    by_ref = {w.version.ref: r.index for w, r in zip(new, receipts, strict=True)}
    out: list[dict[str, Any]] = []
    k = 0
    for e in entries:
        if e.index in existing:
            v = existing[e.index].version
            status, index = "200 OK", v.ledger_index
        else:
            v = written[k].version
            k += 1
            status = (
                "204 No Content"
                if v.deleted
                else ("201 Created" if e.method == "POST" or v.vid == 1 else "200 OK")
            )
            index = by_ref.get(v.ref)
        response: dict[str, Any] = {
            "status": status,
            "etag": f'W/"{v.vid}"',
            "lastModified": v.ts,
            "location": f"{v.rtype}/{v.rid}/_history/{v.vid}",
        }
        if index is not None:
            response["extension"] = [{"url": "urn:medledger:ledger-index", "valueInteger": index}]
        out.append({"fullUrl": e.full_url or f"{v.rtype}/{v.rid}", "response": response})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}


def _conditional_matches(
    service: RecordService, g: Guard, entries: list[_Entry]
) -> dict[int, SearchPage]:
    """What each conditional create's ifNoneExist matches, one lookup per resource type."""
    wanted: dict[str, list[_Entry]] = {}
    for e in entries:
        if e.method == "POST" and e.if_none_exist:
            if not isinstance(e.if_none_exist, str):
                raise _invalid(
                    f"Bundle.entry[{e.index}].request.ifNoneExist",
                    "ifNoneExist must be a search string",
                    "structure",
                )
            wanted.setdefault(e.rtype, []).append(e)
    out: dict[int, SearchPage] = {}
    for rtype, group in wanted.items():
        queries = [_query(str(e.if_none_exist)) for e in group]
        pages = service.own_matches_many(rtype, queries, g.institution)
        out.update({e.index: page for e, page in zip(group, pages, strict=True)})
    return out


def _items(
    service: RecordService,
    g: Guard,
    entries: list[_Entry],
    existing: dict[int, Saved],
    ids: dict[str, str],
) -> list[dict[str, Any]]:
    """Decide every entry, then return the store's write items (orders first resolved, so
    results in the same transaction inherit their parties)."""
    todo = [e for e in entries if e.index not in existing]
    facts_of = {
        e.index: None if e.method == "POST" else service.store.facts(e.rtype, str(e.rid))
        for e in todo
    }
    resolved: dict[int, dict[str, Any]] = {}
    local_orders: dict[str, frozenset[tuple[str, str]]] = {}
    for e in todo:
        if e.resource is not None:
            resolved[e.index] = _resolve(e.resource, ids, f"Bundle.entry[{e.index}].resource")
    # The stored orders the results answer, read together: they pass their parties on.
    stored = service.store.facts_many(
        "ServiceRequest",
        [
            o
            for e in todo
            if e.index in resolved
            for o in based_on_orders(e.rtype, resolved[e.index])
        ],
    )
    for rid, order in stored.items():
        local_orders[rid] = order.parties | {(REQUESTER, order.owner)}
    for e in todo:
        if e.index in resolved and e.rtype == "ServiceRequest" and e.rid is not None:
            parties = service.indexer.parties(e.rtype, resolved[e.index])
            known = facts_of[e.index]
            owner = known.owner if known is not None else g.institution
            local_orders[e.rid] = parties | {(REQUESTER, owner)}
    items: list[dict[str, Any]] = []
    for e in todo:
        assert e.rid is not None
        facts = facts_of[e.index]
        if e.method == "DELETE":
            if facts is None:
                raise NotFound(f"{e.rtype}/{e.rid} does not exist", field="id", value=e.rid)
            g.check(DELETE, e.rtype, e.rid, facts)
            items.append(
                {
                    "rtype": e.rtype,
                    "rid": e.rid,
                    "resource": None,
                    "inst": facts.owner,
                    "subject": facts.subject,
                    "if_match": e.if_match,
                    "owner": facts.owner,
                }
            )
            continue
        g.check(WRITE, e.rtype, None if e.method == "POST" else e.rid, facts)
        resource = resolved[e.index]
        parties = service.indexer.parties(e.rtype, resource, local_orders)
        items.append(
            {
                "rtype": e.rtype,
                "rid": e.rid,
                "resource": resource,
                "inst": facts.owner if facts is not None else g.institution,
                "subject": service.indexer.subject_of(e.rtype, e.rid, resource),
                "index": service.indexer.index_rows(e.rtype, resource, parties),
                "if_match": e.if_match,
                "must_be_new": e.method == "POST",
                "conditional": e.criteria,
                "owner": None if e.method == "POST" else (facts.owner if facts else ""),
            }
        )
    return items


def _batch_entry(service: RecordService, g: Guard, i: int, raw: Any) -> dict[str, Any]:
    try:
        e = _parse(i, raw)
        if e.method == "POST":
            saved = service.create(e.rtype, e.resource, if_none_exist=e.if_none_exist, guard=g)
        elif e.method == "PUT":
            assert e.rid is not None
            saved = service.update(e.rtype, e.rid, e.resource, if_match=e.if_match, guard=g)
        else:
            assert e.rid is not None
            saved = service.delete(e.rtype, e.rid, if_match=e.if_match, guard=g)
    except MedLedgerError as exc:
        return {"response": {"status": f"{exc.http_status}", "outcome": outcome_for(exc)}}
    v = saved.version
    status = "204 No Content" if v.deleted else ("201 Created" if saved.created else "200 OK")
    return {
        "response": {
            "status": status,
            "etag": f'W/"{v.vid}"',
            "lastModified": v.ts,
            "location": f"{v.rtype}/{v.rid}/_history/{v.vid}",
        }
    }


def _parse(i: int, raw: Any) -> _Entry:
    at = f"Bundle.entry[{i}]"
    if not isinstance(raw, dict):
        raise _invalid(at, "each entry must be an object", "structure")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise _invalid(f"{at}.request", "each entry needs a request", "required")
    method, url = request.get("method"), request.get("url")
    if method not in _METHODS:
        raise _invalid(
            f"{at}.request.method",
            f"method {method!r} is not supported here; use POST, PUT or DELETE",
            "not-supported",
        )
    if not isinstance(url, str) or not url or url.startswith("/"):
        raise _invalid(
            f"{at}.request.url", "url must be relative, like Patient or Patient/1", "required"
        )
    parts = url.split("?")[0].split("/")
    rtype = parts[0]
    rid = parts[1] if len(parts) > 1 else None
    if (method == "POST") != (rid is None) or len(parts) > 2:
        raise _invalid(
            f"{at}.request.url",
            f"{method} needs " + ("a type URL like Patient" if method == "POST" else "Type/id"),
            "invalid",
        )
    if rid is not None and not _ID.fullmatch(rid):
        raise _invalid(f"{at}.request.url", f"{rid!r} is not a valid FHIR id", "value")
    resource = raw.get("resource")
    if method != "DELETE" and not isinstance(resource, dict):
        raise _invalid(f"{at}.resource", f"{method} needs a resource", "required")
    if method == "PUT" and isinstance(resource, dict) and resource.get("id") not in (None, rid):
        raise _invalid(f"{at}.resource.id", "resource id does not match the request url", "value")
    if not isinstance(request.get("ifNoneExist", ""), str):
        raise _invalid(
            f"{at}.request.ifNoneExist", "ifNoneExist must be a search string", "structure"
        )
    full = raw.get("fullUrl")
    if_match = request.get("ifMatch")
    return _Entry(
        i,
        method,
        rtype,
        rid,
        full if isinstance(full, str) else None,
        resource if method != "DELETE" else None,
        request.get("ifNoneExist"),
        _etag(if_match, f"{at}.request.ifMatch"),
    )


def _resolve(node: Any, ids: dict[str, str], path: str) -> Any:
    """Replace references to ``urn:uuid:`` full URLs of this Bundle by their assigned ids."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and v.startswith("urn:uuid:"):
                if v not in ids:
                    raise _invalid(
                        f"{path}.reference",
                        f"{v} is not the fullUrl of any entry of this transaction",
                        "not-found",
                    )
                out[k] = ids[v]
            else:
                out[k] = _resolve(v, ids, f"{path}.{k}")
        return out
    if isinstance(node, list):
        return [_resolve(v, ids, f"{path}[{n}]") for n, v in enumerate(node)]
    return node


def _query(text: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(text.lstrip("?"), keep_blank_values=True)


def _etag(value: Any, field: str) -> int | None:
    if value is None:
        return None
    text = str(value).strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise InputError(
            f'{value!r} is not a version ETag like W/"3"',
            field=field,
            value=value,
            expected='W/"<version>"',
        )
    return int(text)


def _invalid(path: str, message: str, code: str) -> ResourceInvalid:
    return ResourceInvalid(
        message,
        issues=[{"severity": "error", "code": code, "diagnostics": message, "expression": [path]}],
    )
