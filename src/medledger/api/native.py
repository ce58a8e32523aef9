"""The native API at /api/v1. ``POST /api/v1/verify`` is public: verification needs no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from medledger.api.bodies import read_body
from medledger.api.schemas import ErrorResponse, VerdictInvalid, VerdictValid, verify_request_schema
from medledger.crypto.canonical import canonical_bytes, parse_json_object
from medledger.crypto.trust import TrustBundle
from medledger.errors import InputError, MalformedDocument, VerificationFailed
from medledger.verify.audit import (
    AUDIT_CERT_FORMAT,
    parse_audit_certificate,
    verify_audit_certificate,
)
from medledger.verify.certificate import parse_certificate, verify_certificate

JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# OpenAPI only: the route below parses the raw bytes itself (strictly), never through these.
VERIFY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A medledger-cert/1 certificate (docs/certificate.md) and, optionally, "
        "the data it certifies.",
        "content": {JSON: {"schema": verify_request_schema()}},
    }
}
VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": VerdictValid | VerdictInvalid,
        "description": "The verdict on a well-formed certificate: valid, or the first failed "
        "check.",
    },
    400: _error(
        "Malformed request: not one strict JSON object (UTF-8, no duplicate keys, finite "
        "numbers, not nested too deeply to parse), members other than certificate and payload, a "
        "certificate without the medledger-cert/1 shape (including integers written as 7.0), "
        "an entry or payload RFC 8785 cannot encode (an integer beyond 2**53), or a payload "
        "the certificate cannot check (no payload_hash or payload_salt)."
    ),
    413: _error("The body is larger than the server's limit (refused before it is buffered)."),
    415: _error("The Content-Type is not application/json."),
}


def router(trust: TrustBundle, *, max_body: int) -> APIRouter:
    """Build the /api/v1 routes; certificates are checked against this node's trust bundle."""
    r = APIRouter(prefix="/api/v1", tags=["native"])

    @r.post(
        "/verify",
        response_class=JSONResponse,
        responses=VERIFY_RESPONSES,
        openapi_extra=VERIFY_OPENAPI,
    )
    async def verify(request: Request) -> JSONResponse:
        """Verify a certificate (and optionally its payload) and return a readable verdict.

        ``certificate`` may also be an audit-event certificate (``medledger-audit-cert/1``),
        without a payload; ``leaf_index`` then names its batch's ledger entry.

        Body: ``{"certificate": {...}, "payload": <the resource as JSON, or a string>}``. A
        well-formed certificate always gets 200 with ``valid`` true or false and the failed
        check; a malformed request gets 400. Verification reads nothing from the ledger: it
        uses only this node's trust bundle. Like every request, it leaves an audit event.
        """
        body = parse_json_object(
            await read_body(request, max_body, (JSON,)), field="body", error=MalformedDocument
        )
        extra = sorted(set(body) - {"certificate", "payload"})
        if extra or "certificate" not in body:
            raise MalformedDocument(
                "expected exactly certificate and an optional payload",
                field=extra[0] if extra else "certificate",
                expected='{"certificate": {...}, "payload": ...}',
            )
        raw = body["certificate"]
        audit = None
        if isinstance(raw, dict) and raw.get("format") == AUDIT_CERT_FORMAT:
            if "payload" in body:
                raise MalformedDocument(
                    "an audit certificate certifies no payload",
                    field="payload",
                    expected='{"certificate": {...}} alone',
                )
            audit = parse_audit_certificate(raw)
            cert = parse_certificate(audit.ledger)
        else:
            cert = parse_certificate(raw)
        payload = _payload(body.get("payload"))
        try:
            if audit is not None:
                report = verify_audit_certificate(audit, trust)
            else:
                report = verify_certificate(cert, trust, payload=payload)
        except VerificationFailed as exc:
            return JSONResponse({"valid": False, "check": exc.check, "message": exc.message})
        return JSONResponse(
            {
                "valid": True,
                "checks": report.passed,
                "leaf_hash": report.leaf_hash,
                "leaf_index": cert.leaf_index,
                "tree_size": report.tree_size,
            }
        )

    return r


def _payload(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        try:
            return canonical_bytes(value)
        except InputError as exc:  # e.g. an integer beyond 2**53: name the payload, not "entry"
            raise MalformedDocument(
                f"payload cannot be canonicalized: {exc.message}",
                field="payload",
                expected="RFC 8785 encodable JSON",
            ) from exc
    raise MalformedDocument(
        "payload must be the resource (a JSON object) or a string",
        field="payload",
        value=type(value).__name__,
        expected="object or string",
    )
