"""The native API at /api/v1. ``POST /api/v1/verify`` is public: verification needs no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from medledger.crypto.canonical import canonical_bytes, parse_json_object
from medledger.crypto.trust import TrustBundle
from medledger.errors import InputError, MalformedDocument, VerificationFailed
from medledger.verify.certificate import parse_certificate, verify_certificate


def router(trust: TrustBundle, *, max_body: int) -> APIRouter:
    """Build the /api/v1 routes; certificates are checked against this node's trust bundle."""
    r = APIRouter(prefix="/api/v1")

    @r.post("/verify")
    async def verify(request: Request) -> JSONResponse:
        """Verify a certificate (and optionally its payload) and return a readable verdict.

        Body: ``{"certificate": {...}, "payload": <the resource as JSON, or a string>}``. A
        well-formed certificate always gets 200 with ``valid`` true or false and the failed
        check; a malformed request gets 400.
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:  # refuse before buffering it
            err = InputError(f"body of {declared} bytes exceeds {max_body}", field="body")
            err.http_status = 413
            raise err
        raw = await request.body()
        if len(raw) > max_body:
            err = InputError(f"body of {len(raw)} bytes exceeds {max_body}", field="body")
            err.http_status = 413
            raise err
        body = parse_json_object(raw, field="body", error=MalformedDocument)
        extra = sorted(set(body) - {"certificate", "payload"})
        if extra or "certificate" not in body:
            raise MalformedDocument(
                "expected exactly certificate and an optional payload",
                field=extra[0] if extra else "certificate",
                expected='{"certificate": {...}, "payload": ...}',
            )
        cert = parse_certificate(body["certificate"])
        payload = _payload(body.get("payload"))
        try:
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
        return canonical_bytes(value)
    raise MalformedDocument(
        "payload must be the resource (a JSON object) or a string",
        field="payload",
        value=type(value).__name__,
        expected="object or string",
    )
