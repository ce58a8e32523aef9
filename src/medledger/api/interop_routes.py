"""``/api/v1/interop``: the gateway over HTTP.

- ``POST /api/v1/interop/hl7``: one HL7 v2 message (``application/hl7-v2``, any charset
  the message declares) in, its ACK out: the same processing as MLLP, over an authenticated
  connection. The caller must act for the message's sending institution (MSH-4).
- ``GET /api/v1/interop/reconciliation?since=&until=&interface=``: counts per interface and
  day, and every gap (``interop.reconcile``).
- ``GET /api/v1/interop/worklist?status=held,quarantined``: messages waiting for a mapping or
  their order, or quarantined with their reason; ``POST …/worklist/{id}/retry`` runs one again.
- ``GET /api/v1/interop/deliveries/dead`` and ``POST /api/v1/interop/deliveries/redeliver``
  (``{"ids": [...]}`` or ``{"all": true}``).

These answers hold ids, codes, control ids and reasons, never patient data. Only callers with
an integration or admin role may use them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from medledger.access.caller import Caller
from medledger.access.model import ANY
from medledger.api.admin import caller_of
from medledger.api.bodies import read_body
from medledger.crypto.canonical import parse_json_object
from medledger.errors import InputError, MessageRejected, NotFound, PermissionDenied
from medledger.interop.hl7.codec import Decoded, decode
from medledger.interop.hl7.inbound import to_model
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.model import Requisition
from medledger.interop.runtime import Interop

__all__ = ["HL7_TYPES", "router"]

HL7_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
_ROLES = frozenset({"integration", "institution_admin", "group_admin"})
_STATUSES = frozenset({"held", "quarantined", "rejected", "received"})


def _operator(request: Request) -> Caller:
    caller = caller_of(request)
    if not _ROLES & set(caller.roles):
        raise PermissionDenied(
            f"{caller.principal} holds no integration or admin role",
            field="caller",
            value=caller.principal,
            expected="a token of an integration client or an admin",
        )
    return caller


def _scope(caller: Caller) -> frozenset[str] | None:
    """The institutions whose messages the caller sees: None (all) for a group-wide grant."""
    if any(p.scope == ANY for p in caller.permissions):
        return None
    return frozenset({caller.institution} | {p.scope for p in caller.permissions})


def _check_owner(caller: Caller, institution: str) -> None:
    scope = _scope(caller)
    if scope is not None and institution not in scope:
        raise NotFound(
            "no such message or delivery for this caller",
            field="id",
            expected="an id from this institution's worklist",
        )


def router(interop: Interop, *, max_body: int) -> APIRouter:
    """Build the ``/api/v1/interop`` routes over a running gateway."""
    r = APIRouter(prefix="/api/v1/interop", tags=["interop"])
    gateway = interop.gateway

    async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    @r.post("/hl7", response_class=Response)
    async def hl7(request: Request) -> Response:
        """Process one HL7 v2 message (as over MLLP) and answer its ACK."""
        caller = _operator(request)
        raw = await read_body(request, max_body, HL7_TYPES)
        try:
            decoded: Decoded | None = decode(raw, max_bytes=gateway.config.max_message_bytes)
        except MessageRejected:
            decoded = None  # the gateway answers AR and journals it
        owners = _owners(decoded, gateway.senders) if decoded is not None else set()
        scope = _scope(caller)
        foreign = sorted(owners - scope) if scope is not None else []
        if foreign:
            raise PermissionDenied(
                f"{caller.principal} acts for {caller.institution}; the message would store "
                f"records of {', '.join(foreign)}",
                field="MSH-4",
                value=", ".join(foreign),
                expected=f"a message of {caller.institution}",
            )
        client = request.client
        peer = client.host if client else ""
        ack = await _run(gateway.handle_hl7, raw, interface="http", peer=peer, decoded=decoded)
        return Response(ack, media_type="application/hl7-v2")

    @r.get("/reconciliation")
    async def reconciliation(
        request: Request,
        since: str | None = None,
        until: str | None = None,
        interface: str | None = None,
    ) -> JSONResponse:
        """Per interface and day: received, stored, acknowledged, forwarded and delivered,
        duplicates suppressed, quarantined, mismatches; and every gap item by item."""
        caller = _operator(request)
        report = await _run(
            interop.report,
            since=since,
            until=until,
            interface=interface,
            institutions=_scope(caller),
        )
        return JSONResponse(report)

    @r.get("/worklist")
    async def worklist(request: Request, status: str = "held,quarantined") -> JSONResponse:
        """Messages not stored: held (waiting for a mapping or their order), quarantined."""
        caller = _operator(request)
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        for s in wanted:
            if s not in _STATUSES:
                raise InputError(
                    "unknown status", field="status", value=s, expected=", ".join(_STATUSES)
                )
        found = await _run(gateway.journal.by_status, *wanted)
        scope = _scope(caller)
        return JSONResponse([m.to_json() for m in found if scope is None or m.institution in scope])

    @r.post("/worklist/{message_id}/retry")
    async def retry(request: Request, message_id: int) -> JSONResponse:
        """Process a held or quarantined message again (e.g. after fixing a mapping)."""
        caller = _operator(request)
        message = await _run(gateway.journal.get, message_id)
        _check_owner(caller, message.institution)
        if message.status not in ("held", "quarantined", "received"):
            raise NotFound(
                f"message {message_id} is {message.status}, not waiting",
                field="id",
                value=message_id,
                expected="a held or quarantined message",
            )
        outcome = await _run(gateway.retry, message)
        return JSONResponse({"status": outcome.status, "ack": outcome.ack_code})

    @r.get("/deliveries/dead")
    async def dead(request: Request) -> JSONResponse:
        """Pushes that ran out of retries (the dead-letter list)."""
        caller = _operator(request)
        scope = _scope(caller)
        found = [
            d
            for d in await _run(interop.queue.dead, 1000)
            if scope is None or d.institution in scope
        ]
        return JSONResponse(
            [
                {
                    "id": d.id,
                    "channel": d.channel,
                    "target": d.target,
                    "institution": d.institution,
                    "ref": d.ref,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "day": d.day,
                }
                for d in found
            ]
        )

    @r.post("/deliveries/redeliver")
    async def redeliver(request: Request) -> JSONResponse:
        """Put dead-lettered pushes back in the queue: ``{"ids": [..]}`` or ``{"all": true}``
        (group-wide callers only: a push belongs to the recipient, not to the caller)."""
        caller = _operator(request)
        if _scope(caller) is not None:
            raise PermissionDenied(
                "redelivery needs a group-wide integration or admin grant",
                field="caller",
                value=caller.principal,
                expected="a grant with scope *",
            )
        raw = await read_body(request, 64 * 1024, ("application/json",))
        body = parse_json_object(raw, field="body", error=InputError)
        ids = body.get("ids")
        if body.get("all") is True:
            count = await _run(interop.queue.redeliver, all_dead=True)
        elif isinstance(ids, list) and all(isinstance(i, int) for i in ids) and ids:
            count = await _run(interop.queue.redeliver, ids)
        else:
            raise InputError(
                "say which deliveries",
                field="ids",
                value=ids,
                expected='{"ids": [1, 2]} or {"all": true}',
            )
        return JSONResponse({"redelivered": count})

    return r


def _owners(decoded: Decoded, senders: SenderMap) -> set[str]:
    """The institutions that would own what the message stores (orders: the placer;
    results: the performer)."""
    try:
        model = to_model(decoded, senders)
    except MessageRejected:
        return set()  # the gateway answers AE/AR and stores nothing
    if isinstance(model, Requisition):
        return {model.sender}
    if isinstance(model, list):
        return {r.sender for r in model}
    return set()
