"""Every request: who is asking (bearer token), and its audit event, durable before the answer.

``SecurityMiddleware`` wraps the whole app (pure ASGI, below the error handlers' outermost
layer). For each HTTP request it

1. lets through, unauthenticated, only the public endpoints in ``PUBLIC`` (exact method and
   path); everything else, including paths no route serves, needs ``Authorization: Bearer``;
2. verifies the token and builds the ``Caller`` and its ``CallerGuard`` (``request.state``);
3. when the response starts, writes the request's audit event and waits until it is durable
   (``AuditTrail.record_async``); only then does the response go out. If the event cannot be
   written the client gets a 503 instead of its answer: no request completes unaudited.

Health probes (``/healthz``, ``/readyz``) are not audited: they touch no data and would
flood the trail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import anyio.to_thread
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medledger.access.audit_event import OWNER_PREFIX, AuditRecord
from medledger.access.audit_trail import AuditTrail
from medledger.access.caller import ANONYMOUS, PURPOSE_TREAT, Caller
from medledger.access.consent import ConsentIndex
from medledger.access.decide import CallerGuard
from medledger.access.sharing import SharingPolicy
from medledger.access.token_service import TokenService
from medledger.api.errors import native_error
from medledger.errors import AuthenticationFailed, InputError, MedLedgerError
from medledger.records.fhir_model import outcome_for

__all__ = ["PUBLIC", "SecurityMiddleware", "interaction_of"]

log = logging.getLogger(__name__)

PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/fhir/R4/metadata"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("POST", "/api/v1/verify"),
        ("POST", "/auth/token"),
        ("POST", "/auth/revoke"),
        ("POST", "/auth/password"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/.well-known/smart-configuration"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/openapi.json"),
    }
)
"""(method, path) pairs answered without a token. HEAD is allowed wherever GET is."""
UNAUDITED = frozenset({"/healthz", "/readyz"})
PURPOSES = frozenset({"TREAT", "ETREAT", "HPAYMT", "HOPERAT", "PUBHLTH", "HRESCH", "HLEGAL"})
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.\-]{0,39}$")
_REASON = re.compile(r"^[^\x00-\x1f\x7f]{4,200}$")

# (method, route template) -> (FHIR restful-interaction code, AuditEvent action C/R/U/D/E)
_INTERACTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/fhir/R4"): ("transaction", "E"),
    ("GET", "/fhir/R4/metadata"): ("capabilities", "R"),
    ("GET", "/fhir/R4/AuditEvent"): ("search-type", "E"),
    ("GET", "/fhir/R4/AuditEvent/{eid}"): ("read", "R"),
    ("GET", "/fhir/R4/AuditEvent/{eid}/$certificate"): ("certificate", "R"),
    ("GET", "/fhir/R4/{rtype}"): ("search-type", "E"),
    ("POST", "/fhir/R4/{rtype}/_search"): ("search-type", "E"),
    ("POST", "/fhir/R4/{rtype}"): ("create", "C"),
    ("GET", "/fhir/R4/{rtype}/_history"): ("history-type", "R"),
    ("GET", "/fhir/R4/{rtype}/{rid}"): ("read", "R"),
    ("PUT", "/fhir/R4/{rtype}/{rid}"): ("update", "U"),
    ("DELETE", "/fhir/R4/{rtype}/{rid}"): ("delete", "D"),
    ("GET", "/fhir/R4/{rtype}/{rid}/_history"): ("history-instance", "R"),
    ("GET", "/fhir/R4/{rtype}/{rid}/_history/{vid}"): ("vread", "R"),
    ("GET", "/fhir/R4/{rtype}/{rid}/_history/{vid}/$certificate"): ("certificate", "R"),
    ("POST", "/api/v1/verify"): ("verify", "E"),
    ("POST", "/auth/token"): ("token", "E"),
    # "token": an interaction audit_event accepts (it has no "logout"; an unknown code made
    # every revocation a 503 after the token was already revoked).
    ("POST", "/auth/revoke"): ("token", "E"),
}


def interaction_of(method: str, template: str | None) -> tuple[str, str]:
    """The audit interaction and action of a request to route ``template``."""
    if template is None:
        return "unknown", "E"
    if template.startswith("/api/v1/admin"):
        return "admin", {"GET": "R", "POST": "C", "PUT": "U", "DELETE": "D"}.get(method, "E")
    return _INTERACTIONS.get((method, template), ("operation", "E"))


class SecurityMiddleware:
    """Authenticate, authorize (via the guard the handlers use) and audit every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenService,
        trail: AuditTrail,
        policy: SharingPolicy,
        consents: ConsentIndex,
        inline: bool,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.trail = trail
        self.policy = policy
        self.consents = consents
        self.inline = inline  # SQLite: token checks are sub-millisecond, run on the loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in UNAUDITED:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        audit = _Audit(scope, self.trail, send)
        try:
            if (method, path) not in PUBLIC:
                caller = await self._authenticate(scope, audit)
                state["caller"] = caller
                state["guard"] = CallerGuard(caller, self.policy, self.consents)
                audit.caller = caller
            else:
                state["caller"] = audit.caller
        except MedLedgerError as exc:
            audit.error = exc
            claimed = getattr(exc, "claimed", None)
            if isinstance(claimed, Caller) and not audit.caller.authenticated:
                audit.caller = claimed  # a genuine but refused token (expired, revoked)
            await _send_error(scope, exc, audit.send)
            return
        try:
            await self.app(scope, receive, audit.send)
        except _Abort:
            return
        except Exception:
            if not audit.started:
                audit.status = 500
                await audit.record()
            raise

    async def _authenticate(self, scope: Scope, audit: _Audit) -> Caller:
        """Verify the token first (so a refused header is audited under its caller), then
        the purpose-of-use and break-glass headers."""
        headers = _headers(scope)
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "this endpoint needs an access token",
                field="Authorization",
                expected="Authorization: Bearer <token from POST /auth/token>",
            )
        client = scope.get("client")
        address = client[0] if client else None
        check = self.tokens.authenticate_bearer
        kwargs = {"address": address, "purpose": PURPOSE_TREAT, "break_glass": None}
        if self.inline:
            caller = check(token.strip(), **kwargs)
        else:
            caller = await anyio.to_thread.run_sync(lambda: check(token.strip(), **kwargs))
        audit.caller = caller  # from here on, a refusal is audited under the caller
        purpose = headers.get("x-purpose-of-use", PURPOSE_TREAT)
        if purpose not in PURPOSES:
            raise InputError(
                "unknown purpose of use",
                field="X-Purpose-Of-Use",
                value=purpose[:40],
                expected=", ".join(sorted(PURPOSES)),
            )
        reason = headers.get("x-break-glass")
        if reason is not None:  # HTTP headers are bytes: a Chinese reason arrives as UTF-8
            reason = reason.encode("latin-1").decode("utf-8", errors="replace")
        if reason is not None and not _REASON.fullmatch(reason):
            raise InputError(
                "break-glass needs a stated reason of 4 to 200 printable characters",
                field="X-Break-Glass",
                expected="e.g. X-Break-Glass: emergency, patient unconscious in ED",
            )
        caller = replace(caller, purpose=purpose, break_glass=reason)
        audit.caller = caller
        return caller


class _Audit:
    """The audit event of one request, written when its response starts."""

    def __init__(self, scope: Scope, trail: AuditTrail, send: Send) -> None:
        self.scope = scope
        self.trail = trail
        self._send = send
        self.caller: Caller = ANONYMOUS
        self.status = 0
        self.started = False
        self.error: MedLedgerError | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.started:
            self.status = int(message["status"])
            try:
                await self.record()
            except MedLedgerError as exc:
                log.error("audit event not recorded (%s): refusing the response", exc.code)
                self.started = True
                await _plain(self._send, 503, "the audit trail is unavailable; retry")
                raise _Abort() from None
            self.started = True
        await self._send(message)

    async def record(self) -> None:
        scope = self.scope
        state = scope.get("state", {})
        route = scope.get("route")
        template = getattr(route, "path", None)
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        interaction, action = interaction_of(method, template)
        guard: CallerGuard | None = state.get("guard")
        note = state.get("audit_note") or (self.error.code if self.error else "")
        bases = sorted(guard.bases) if guard is not None else []
        more = ""
        if guard is not None and guard.touched_count > len(guard.refs):
            more = f"{guard.touched_count} resources, the first {len(guard.refs)} listed"
        description = "; ".join(x for x in (note, ",".join(bases), more) if x)
        query = _query_names(scope)
        fields: dict[str, Any] = {
            "caller": self.caller,
            "interaction": interaction,
            "action": action,
            "status": self.status,
            "description": description[:200],
            "entities": _entities(guard),
            "patients": tuple(sorted(guard.patients)) if guard is not None else (),
            "query": query,
            "path": template or "(no route)",
        }
        try:
            rec = AuditRecord(**fields)
        except InputError:
            # The PHI guard refused a part (e.g. a resource id shaped like an ID card number):
            # record the request without it rather than answer without an audit event.
            fields.update(entities=(), description="entities withheld: not storable in the trail")
            rec = AuditRecord(**fields)
        await self.trail.record_async(rec)


def _entities(guard: CallerGuard | None) -> tuple[str, ...]:
    """The refs a request touched, then ``institution/<id>`` for each other institution whose
    records they are, so that institution's auditors find the access in their trail."""
    if guard is None:
        return ()
    return (*guard.refs, *(f"{OWNER_PREFIX}{o}" for o in sorted(guard.owners)))


class _Abort(Exception):
    """The response was replaced (audit failure); unwinds the handler quietly."""


def _query_names(scope: Scope) -> tuple[str, ...]:
    """The names (never the values) of the query parameters; odd names become ``?``."""
    raw: bytes = scope.get("query_string", b"")
    names = {p.split(b"=")[0].decode("latin-1") for p in raw.split(b"&")[:50] if p}
    return tuple(sorted(n if _PARAM_NAME.fullmatch(n) else "?" for n in names))


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


async def _send_error(
    scope: Scope, exc: MedLedgerError, send: Callable[[Message], Awaitable[None]]
) -> None:
    fhir = scope["path"].startswith("/fhir/")
    body: Any = outcome_for(exc) if fhir else native_error(exc)
    headers = [(b"content-type", b"application/fhir+json" if fhir else b"application/json")]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="medledger"'))
    data = orjson.dumps(body)
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _plain(send: Send, status: int, text: str) -> None:
    data = orjson.dumps({"error": {"code": "audit.unavailable", "message": text}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
