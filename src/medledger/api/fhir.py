"""FHIR R4 REST: read, vread, create, update, delete, instance history, $certificate."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from medledger import __version__
from medledger.api.bodies import read_body
from medledger.api.errors import FHIR_JSON, FastJSONResponse
from medledger.crypto.canonical import parse_json_object
from medledger.errors import (
    AuthenticationFailed,
    InputError,
    MalformedDocument,
    PreconditionFailed,
)
from medledger.interop.subscription_match import check_subscription
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.records.guard import Guard
from medledger.records.search_defs import SEARCH_PARAMS
from medledger.records.service import RecordService, Saved
from medledger.records.store import Loaded, Version

BASE = "/fhir/R4"
WRITE_THREADS = 16
MAX_FORM_FIELDS = 100


_ETAG = re.compile(r'^(W/)?"([0-9]+)"\Z')
ACCEPTED_TYPES = ("application/fhir+json", "application/json")


def router(service: RecordService, *, max_body: int) -> APIRouter:
    """Build the /fhir/R4 routes over ``service``."""
    r = APIRouter(prefix=BASE)
    limiter: list[Any] = []  # created on first use, inside the server's event loop

    async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a write (which waits for its ledger block) on one of a few worker threads.

        Reads run on the event loop itself: they take well under a millisecond of CPU, and
        handing them to threads costs more than it saves (the process computes on one core;
        dozens of threads contending for it form convoys). Writes wait ~10 ms for their
        block's group commit, so they need threads, but only enough to fill blocks.
        """
        if not limiter:
            limiter.append(anyio.CapacityLimiter(WRITE_THREADS))
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=limiter[0])

    inline_reads = service.store.engine.dialect.name == "sqlite"

    async def _read(fn: Any, *args: Any) -> Any:
        """Run a read: inline on SQLite (sub-millisecond, local file); on a thread otherwise,
        where each query is a network round trip the event loop must not sit through."""
        if inline_reads:
            return fn(*args)
        return await anyio.to_thread.run_sync(partial(fn, *args))

    async def body_of(request: Request) -> Any:
        raw = await read_body(request, max_body, ACCEPTED_TYPES)
        return parse_json_object(raw, field="body", error=MalformedDocument)

    @r.post("")
    async def bundle(request: Request) -> JSONResponse:
        from medledger.records.bundles import process_bundle

        body = await body_of(request)
        result: dict[str, Any] = await _run(process_bundle, service, body, guard_of(request))
        return _fhir(result)

    @r.get("/metadata")
    async def metadata() -> JSONResponse:
        return _fhir(capability_statement())

    @r.get("/{rtype}")
    async def search(rtype: str, request: Request) -> JSONResponse:
        _known(rtype)
        params = list(request.query_params.multi_items())
        found: JSONResponse = await _read(_searchset, service, rtype, params, request)
        return found

    @r.post("/{rtype}/_search")
    async def search_post(rtype: str, request: Request) -> JSONResponse:
        _known(rtype)
        raw = await read_body(request, max_body, ("application/x-www-form-urlencoded",))
        try:
            params = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
            )
        except UnicodeDecodeError as exc:
            raise InputError("form body is not UTF-8", field="body") from exc
        except ValueError as exc:
            raise InputError(
                "form body has too many parameters",
                field="body",
                expected=f"at most {MAX_FORM_FIELDS} parameters",
            ) from exc
        params += list(request.query_params.multi_items())
        result: JSONResponse = await _read(_searchset, service, rtype, params, request)
        return result

    @r.post("/{rtype}")
    async def create(
        rtype: str,
        request: Request,
        if_none_exist: Annotated[str | None, Header()] = None,
    ) -> Response:
        body = await body_of(request)
        _check_special(rtype, body)
        saved = await _run(
            service.create, rtype, body, if_none_exist=if_none_exist, guard=guard_of(request)
        )
        return _saved(saved, status=201)

    @r.get("/{rtype}/_history")
    async def type_history(rtype: str, request: Request) -> JSONResponse:
        _known(rtype)
        params = list(request.query_params.multi_items())
        page = await _read(partial(service.type_history, guard=guard_of(request)), rtype, params)
        base = str(request.base_url).rstrip("/") + BASE
        links = page_links(f"{base}/{rtype}/_history", params, page.next_token)
        entries = [_history_entry(base, v, body) for v, body in page.versions]
        return _fhir({"resourceType": "Bundle", "type": "history", "link": links, "entry": entries})

    @r.get("/{rtype}/{rid}")
    async def read(rtype: str, rid: str, request: Request) -> Response:
        _known(rtype)
        return _loaded(await _read(partial(service.read, guard=guard_of(request)), rtype, rid))

    @r.put("/{rtype}/{rid}")
    async def update(
        rtype: str,
        rid: str,
        request: Request,
        if_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        body = await body_of(request)
        _check_special(rtype, body)
        saved = await _run(
            service.update, rtype, rid, body, if_match=_etag(if_match), guard=guard_of(request)
        )
        return _saved(saved, status=201 if saved.version.vid == 1 else 200)

    @r.delete("/{rtype}/{rid}")
    async def remove(
        rtype: str, rid: str, request: Request, if_match: Annotated[str | None, Header()] = None
    ) -> Response:
        _known(rtype)
        saved = await _run(
            service.delete, rtype, rid, if_match=_etag(if_match), guard=guard_of(request)
        )
        headers = {"ETag": f'W/"{saved.version.vid}"'}
        if saved.ledger_index is not None:
            headers["X-Ledger-Index"] = str(saved.ledger_index)
        return Response(status_code=204, headers=headers)

    @r.get("/{rtype}/{rid}/_history")
    async def history(rtype: str, rid: str, request: Request) -> JSONResponse:
        _known(rtype)
        base = str(request.base_url).rstrip("/") + BASE
        guard = guard_of(request)

        def entries() -> list[dict[str, Any]]:
            return [
                _history_entry(
                    base,
                    v,
                    None if v.deleted else service.store.load(rtype, rid, v.vid).resource,
                )
                for v in service.history(rtype, rid, guard=guard)
            ]

        found = await _read(entries)
        return _fhir(
            {"resourceType": "Bundle", "type": "history", "total": len(found), "entry": found}
        )

    @r.get("/{rtype}/{rid}/_history/{vid}")
    async def vread(rtype: str, rid: str, vid: int, request: Request) -> Response:
        _known(rtype)
        guard = guard_of(request)
        return _loaded(await _read(partial(service.read, guard=guard), rtype, rid, vid))

    @r.get("/{rtype}/{rid}/_history/{vid}/$certificate")
    async def certificate(rtype: str, rid: str, vid: int, request: Request) -> JSONResponse:
        _known(rtype)
        guard = guard_of(request)
        return JSONResponse(await _read(partial(service.certificate, guard=guard), rtype, rid, vid))

    return r


def _searchset(
    service: RecordService, rtype: str, params: list[tuple[str, str]], request: Request
) -> JSONResponse:
    page = service.search(rtype, params, guard=guard_of(request))
    base = str(request.base_url).rstrip("/") + BASE
    links = page_links(f"{base}/{rtype}", params, page.next_token)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["entry"] = [
        {"fullUrl": f"{base}/{rtype}/{res['id']}", "resource": res, "search": {"mode": "match"}}
        for res in page.resources
    ]
    return _fhir(bundle)


def guard_of(request: Request) -> Guard:
    """The request's guard (set by ``api.security``); fail closed if there is none."""
    guard: Guard | None = getattr(request.state, "guard", None)
    if guard is None:
        raise AuthenticationFailed(
            "this endpoint needs an access token",
            field="Authorization",
            expected="Authorization: Bearer <token>",
        )
    return guard


def page_links(url: str, params: list[tuple[str, str]], next_token: str | None) -> list[Any]:
    """A paged Bundle's ``self`` link and, when there is more, its ``next`` link."""
    links = [{"relation": "self", "url": f"{url}?{urlencode(params)}"}]
    if next_token is not None:
        own = [(k, v) for k, v in params if k != "_page_token"]
        links.append(
            {"relation": "next", "url": f"{url}?{urlencode([*own, ('_page_token', next_token)])}"}
        )
    return links


def _history_entry(base: str, v: Version, body: dict[str, Any] | None) -> dict[str, Any]:
    """One history Bundle entry: the version's request, response and (unless deleted) body."""
    entry: dict[str, Any] = {
        "fullUrl": f"{base}/{v.rtype}/{v.rid}",
        "request": {"method": "DELETE" if v.deleted else "PUT", "url": f"{v.rtype}/{v.rid}"},
        "response": {
            "status": "204" if v.deleted else "200",
            "etag": f'W/"{v.vid}"',
            "lastModified": v.ts,
        },
    }
    if body is not None:
        entry["resource"] = body
    return entry


def _known(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        from medledger.errors import UnknownResourceType

        raise UnknownResourceType(
            f"resource type {rtype!r} is not served here",
            field="type",
            value=rtype,
            expected="one of " + ", ".join(SUPPORTED_TYPES),
        )


def _etag(value: str | None) -> int | None:
    if value is None:
        return None
    m = _ETAG.match(value.strip())
    if m is None:
        raise PreconditionFailed(
            f'If-Match {value!r} is not a version ETag like W/"3"', field="If-Match"
        )
    return int(m.group(2))


def _fhir(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return FastJSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _headers(v: Version, ledger_index: int | None) -> dict[str, str]:
    when = datetime.fromisoformat(v.ts.replace("Z", "+00:00"))
    out = {"ETag": f'W/"{v.vid}"', "Last-Modified": format_datetime(when, usegmt=True)}
    index = ledger_index if ledger_index is not None else v.ledger_index
    if index is not None:
        out["X-Ledger-Index"] = str(index)
    return out


def _loaded(loaded: Loaded) -> JSONResponse:
    return _fhir(loaded.resource, headers=_headers(loaded.version, None))


def _saved(saved: Saved, *, status: int) -> JSONResponse:
    v = saved.version
    headers = _headers(v, saved.ledger_index)
    headers["Location"] = f"{BASE}/{v.rtype}/{v.rid}/_history/{v.vid}"
    assert saved.resource is not None
    return _fhir(saved.resource, status=status if saved.created else 200, headers=headers)


def capability_statement() -> dict[str, Any]:
    """Describe exactly what this server implements today."""
    interactions = [
        {"code": c}
        for c in (
            "read",
            "vread",
            "create",
            "update",
            "delete",
            "history-instance",
            "history-type",
            "search-type",
        )
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "kind": "instance",
        "software": {"name": "MedLedger", "version": __version__},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "resource": [
                    {
                        "type": t,
                        "interaction": interactions,
                        "versioning": "versioned",
                        "readHistory": True,
                        "updateCreate": True,
                        "conditionalCreate": True,
                        "conditionalUpdate": False,
                        "conditionalDelete": "not-supported",
                        "searchParam": [
                            {"name": name, "type": p.kind}
                            for name, p in SEARCH_PARAMS.get(t, {}).items()
                        ],
                    }
                    for t in SUPPORTED_TYPES
                ],
            }
        ],
    }


def _check_special(rtype: str, body: object) -> None:
    """Rules beyond FHIR validation for resources the server acts on: a Subscription must be
    one the gateway can deliver (rest-hook, a served criteria type, a signing secret)."""
    if rtype == "Subscription" and isinstance(body, dict):
        check_subscription(body)
