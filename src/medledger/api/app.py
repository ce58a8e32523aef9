"""The FastAPI application of a MedLedger node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from medledger import __version__
from medledger.access.audit_trail import AuditTrail
from medledger.access.consent import ConsentIndex
from medledger.access.sharing import SharingPolicy, load_policy
from medledger.access.token_service import TokenService
from medledger.api import (
    admin,
    audit_routes,
    auth,
    errors,
    fhir,
    interop_routes,
    native,
    specimens,
    terminology,
)
from medledger.api.schemas import ErrorResponse, Health, Ready
from medledger.api.security import SecurityMiddleware
from medledger.interop.runtime import Interop
from medledger.records.service import RecordService

DEFAULT_MAX_BODY = 1024 * 1024


@dataclass
class Security:
    """What the app adds on top of the records: tokens, the audit trail, the policy.

    The caller of ``create_app`` owns its lifetime: ``close()`` after the server stopped,
    before the node closes (it anchors the last audit events).
    """

    tokens: TokenService
    trail: AuditTrail
    policy: SharingPolicy
    consents: ConsentIndex

    def close(self) -> None:
        self.trail.close()


def open_security(
    service: RecordService, *, audit_interval: float = 1.0, token_ttl: int | None = None
) -> Security:
    """Open the audit trail (recovering a crash's pending batches) and the token service
    (access tokens live ``token_ttl`` seconds: default 600, at most 3600)."""
    node = service.ledger
    trail = AuditTrail(
        node.store.engine, node, node=service.institution, batch_interval=audit_interval
    )
    trail.recover()
    trail.start()
    tokens = TokenService.for_node(node, on_event=trail.record_access_event, ttl=token_ttl)
    return Security(tokens, trail, load_policy(node.data_dir), ConsentIndex(service))


def create_app(
    service: RecordService,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    security: Security | None = None,
    interop: Interop | None = None,
) -> FastAPI:
    """Build the app over an open ``RecordService`` (the caller owns its lifetime).

    Every route but the public ones needs a bearer token, and every request is audited
    (``api.security``). ``app.state.security`` is what ``open_security`` opened (when it was
    not given): close it when the server stops. ``interop`` (the gateway) adds
    ``/api/v1/interop`` and runs its MLLP listener and push worker while the app runs.
    """
    sec = security or open_security(service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if interop is not None:
            await interop.start()
        try:
            yield
        finally:
            if interop is not None:
                await interop.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="MedLedger",
        version=__version__,
        description="Verifiable clinical-data exchange for hospital groups: FHIR R4 records, "
        "encrypted at rest, every version anchored on an RFC 6962 ledger.",
    )
    app.state.security = sec
    errors.install(app)
    app.include_router(auth.router(sec.tokens, max_body=max_body))
    app.include_router(audit_routes.router(sec.trail))
    # $translate before the generic /fhir/R4/{rtype}/{rid} routes, which would take it.
    app.include_router(terminology.router(service, max_body=max_body))
    app.include_router(fhir.router(service, max_body=max_body))
    app.include_router(native.router(service.ledger.trust, max_body=max_body))
    app.include_router(admin.router(sec.tokens.admin(), service.ledger, max_body=max_body))
    app.include_router(specimens.router(service, max_body=max_body))
    if interop is not None:
        app.include_router(interop_routes.router(interop, max_body=max_body))
    app.add_middleware(
        SecurityMiddleware,
        tokens=sec.tokens,
        trail=sec.trail,
        policy=sec.policy,
        consents=sec.consents,
        inline=service.store.engine.dialect.name == "sqlite",
    )

    @app.get(
        "/healthz",
        tags=["health"],
        response_class=JSONResponse,
        responses={200: {"model": Health, "description": "The process is up."}},
    )
    def healthz() -> JSONResponse:
        """Liveness: answers as long as the process serves HTTP; touches no storage."""
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["health"],
        response_class=JSONResponse,
        responses={
            200: {"model": Ready, "description": "The ledger is readable; its current head."},
            503: {"model": ErrorResponse, "description": "The database is unavailable."},
        },
    )
    def readyz() -> JSONResponse:
        """Readiness: reads the ledger head, so it fails (503) while the database is down."""
        head = service.ledger.head()  # raises StorageError (503) if the database is down
        return JSONResponse({"status": "ready", "tree_size": head.tree_size, "height": head.height})

    return app
