"""One place that turns errors into responses: OperationOutcome under /fhir, JSON elsewhere."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medledger.errors import InputError, MedLedgerError, StorageError
from medledger.records.fhir_model import operation_outcome, outcome_for

FHIR_JSON = "application/fhir+json"


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (several times faster for search Bundles)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # beyond orjson's range (e.g. an integer over 64 bits): stdlib
            return super().render(content)


log = logging.getLogger(__name__)


def error_response(request: Request, exc: MedLedgerError) -> JSONResponse:
    """Render ``exc`` as an OperationOutcome (FHIR paths) or the native JSON envelope."""
    headers = {"WWW-Authenticate": 'Bearer realm="medledger"'} if exc.http_status == 401 else None
    if request.url.path.startswith("/fhir/"):
        return JSONResponse(
            outcome_for(exc), status_code=exc.http_status, media_type=FHIR_JSON, headers=headers
        )
    return JSONResponse(native_error(exc), status_code=exc.http_status, headers=headers)


def native_error(exc: MedLedgerError) -> dict[str, Any]:
    """Return the native envelope ``{"error": ...}`` (details size-bounded by errors.py)."""
    return {"error": exc.to_dict()}


def install(app: FastAPI) -> None:
    """Register the handlers: nothing a client sends may produce a traceback or a bare 500."""

    @app.exception_handler(MedLedgerError)
    async def _ours(request: Request, exc: MedLedgerError) -> JSONResponse:
        request.state.audit_note = exc.code  # the audit event names the error, not its text
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(
            request,
            InputError(f"bad request: {first.get('msg', 'invalid')}", field=where or None),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = InputError(str(exc.detail))
        err.http_status = exc.status_code
        headers = exc.headers  # e.g. the Allow header a 405 must carry (RFC 9110 §15.5.6)
        if request.url.path.startswith("/fhir/"):
            body = operation_outcome(
                [
                    {
                        "severity": "error",
                        "code": "not-found" if exc.status_code == 404 else "invalid",
                        "diagnostics": str(exc.detail),
                    }
                ]
            )
            return JSONResponse(
                body, status_code=exc.status_code, media_type=FHIR_JSON, headers=headers
            )
        return JSONResponse(native_error(err), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the client's fault: log it (no request body, so no PHI) and say so.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, StorageError("internal error; see the server log"))
