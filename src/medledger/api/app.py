"""The FastAPI application of a MedLedger node."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from medledger import __version__
from medledger.api import errors, fhir, native
from medledger.api.schemas import ErrorResponse, Health, Ready
from medledger.records.service import RecordService

DEFAULT_MAX_BODY = 1024 * 1024


def create_app(service: RecordService, *, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """Build the app over an open ``RecordService`` (the caller owns its lifetime)."""
    app = FastAPI(
        title="MedLedger",
        version=__version__,
        description="Verifiable clinical-data exchange for hospital groups: FHIR R4 records, "
        "encrypted at rest, every version anchored on an RFC 6962 ledger.",
    )
    errors.install(app)
    app.include_router(fhir.router(service, max_body=max_body))
    app.include_router(native.router(service.ledger.trust, max_body=max_body))

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
