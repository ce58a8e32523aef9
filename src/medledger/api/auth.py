"""The OAuth 2.0 endpoints: token, revocation, the node's JWKS and the SMART configuration.

All four are public (they need no bearer token). ``POST /auth/token`` and ``POST
/auth/revoke`` take ``application/x-www-form-urlencoded`` only, size-limited, each parameter
at most once (RFC 6749 §3.2), and answer errors the OAuth way, ``{"error",
"error_description"}`` (RFC 6749 §5.2), never with the native envelope: 400 for a bad request
or grant, 401 with ``WWW-Authenticate`` for a failed client authentication, 429 with
``Retry-After`` while an account is locked. Every answer carries ``Cache-Control: no-store``.

Password and client-secret checks cost ~100 ms of Argon2id each, so token requests run on a
few worker threads, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from medledger.access.assertions import CLIENT_ASSERTION_ALGS
from medledger.access.client_auth import AUTH_METHODS
from medledger.access.token_scopes import KEPT_SCOPES
from medledger.access.token_service import GRANT_TYPES, TokenService
from medledger.api.auth_schemas import (
    FORM,
    REVOKE_OPENAPI,
    TOKEN_OPENAPI,
    Jwks,
    OAuthError,
    SmartConfiguration,
    TokenResponse,
)
from medledger.api.bodies import read_body
from medledger.errors import (
    AccountLocked,
    AuthenticationFailed,
    InputError,
    MedLedgerError,
    TokenInvalid,
)

__all__ = ["NO_STORE", "oauth_error", "router"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_THREADS = 4  # Argon2id verifications at once: each ~100 ms of CPU and 64 MiB
MAX_FIELDS = 20
REALM = 'Basic realm="medledger", charset="UTF-8"'
_STATUS = {"invalid_client": 401}


def _oauth_doc(description: str) -> dict[str, Any]:
    return {"model": OAuthError, "description": description}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _oauth_doc("invalid_request, invalid_grant, invalid_scope or unsupported_grant_type."),
    401: _oauth_doc("invalid_client: client authentication failed (WWW-Authenticate: Basic)."),
    413: _oauth_doc("invalid_request: the body is larger than the server's limit."),
    415: _oauth_doc("invalid_request: the Content-Type is not a form."),
    429: _oauth_doc("Too many failed sign-ins: the account is locked for Retry-After seconds."),
}


def router(service: TokenService, *, max_body: int) -> APIRouter:
    """Build ``/auth/token``, ``/auth/revoke``, ``/auth/password`` and the two
    ``/.well-known`` documents."""
    r = APIRouter(tags=["auth"])
    limiter: list[anyio.CapacityLimiter] = []  # created on first use, inside the event loop

    async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(TOKEN_THREADS))
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=limiter[0])

    @r.post(
        "/auth/token",
        name="oauth_token",
        response_model=TokenResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        openapi_extra=TOKEN_OPENAPI,
    )
    async def token(request: Request) -> Response:
        """Issue an access token (RFC 6749): client_credentials, password or refresh_token."""
        try:
            form = _form(await read_body(request, max_body, (FORM,)))
            basic = _basic(request.headers.get("authorization"))
            url = str(request.url_for("oauth_token"))
            answer = await _run(service.handle, form, basic, token_endpoint_url=url)
        except MedLedgerError as exc:
            return oauth_error(exc)
        return JSONResponse(answer, headers=NO_STORE)

    @r.post("/auth/revoke", name="oauth_revoke", responses=_ERRORS, openapi_extra=REVOKE_OPENAPI)
    async def revoke(request: Request) -> Response:
        """Revoke a token (RFC 7009); 200 for unknown and expired tokens too."""
        try:
            form = _form(await read_body(request, max_body, (FORM,)))
            basic = _basic(request.headers.get("authorization"))
            url = str(request.url_for("oauth_token"))
            await _run(service.revoke, form, basic, token_endpoint_url=url)
        except MedLedgerError as exc:
            return oauth_error(exc)
        return Response(status_code=200, headers=NO_STORE)

    @r.post("/auth/password", name="change_password", responses=_ERRORS)
    async def change_password(request: Request) -> Response:
        """Change one's own password (form: ``username``, ``password``, ``new_password``).

        The current password is checked as at sign-in (failures count towards the lockout);
        the new one must meet the policy. Every sign-in of the user ends, and the change is
        anchored on the ledger and audited."""
        try:
            form = _form(await read_body(request, max_body, (FORM,)))
            fields = [form.get(k, "") for k in ("username", "password", "new_password")]
            for name, value in zip(("username", "password", "new_password"), fields, strict=True):
                if not value:
                    raise _bad_form(f"{name} is required", name)
            ended = await _run(service.change_password, *fields)
        except MedLedgerError as exc:
            return oauth_error(exc)
        return JSONResponse({"sessions_ended": ended}, headers=NO_STORE)

    @r.get("/.well-known/jwks.json", response_model=Jwks)
    async def jwks() -> JSONResponse:
        """The node's public key, which verifies every access token it issued."""
        return JSONResponse(
            {"keys": [service.key.public_jwk()]}, headers={"Cache-Control": "max-age=300"}
        )

    @r.get("/.well-known/smart-configuration", response_model=SmartConfiguration)
    async def smart_configuration(request: Request) -> JSONResponse:
        """SMART App Launch discovery: endpoints, grant types, client authentication, scopes."""
        doc = {
            "token_endpoint": str(request.url_for("oauth_token")),
            "revocation_endpoint": str(request.url_for("oauth_revoke")),
            "jwks_uri": str(request.url_for("jwks")),
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
            "access_token_signing_alg": service.key.alg,
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "user/*.cruds",
                "user/*.rs",
                *sorted(KEPT_SCOPES),
            ],
            "capabilities": [
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "permission-offline",
                "permission-user",
                "permission-v1",
                "permission-v2",
            ],
        }
        return JSONResponse(doc, headers={"Cache-Control": "max-age=300"})

    return r


def oauth_error(exc: MedLedgerError) -> JSONResponse:
    """Render ``exc`` as an RFC 6749 §5.2 error, with the headers its status needs."""
    code = exc.details.get("oauth_error")
    headers = dict(NO_STORE)
    if isinstance(exc, AccountLocked):
        status, code = 429, code or "invalid_grant"
        headers["Retry-After"] = str(exc.details.get("retry_after", 1))
    elif code is None and isinstance(exc, AuthenticationFailed):
        status, code = 401, "invalid_client"
    elif isinstance(code, str):
        status = _STATUS.get(code, 400)
    elif isinstance(exc, TokenInvalid):
        status, code = 400, "invalid_grant"
    elif isinstance(exc, InputError):
        status, code = exc.http_status, "invalid_request"  # 400, or 413 / 415 for the body
    else:  # the database is down, or a bug: say so without the driver's words
        status = 503 if exc.http_status == 503 else 500
        code = "temporarily_unavailable" if status == 503 else "server_error"
        return JSONResponse(
            {"error": code, "error_description": "the server cannot answer now; try again"},
            status_code=status,
            headers=headers,
        )
    if status == 401:
        headers["WWW-Authenticate"] = REALM
    return JSONResponse(
        {"error": code, "error_description": _description(exc.message)},
        status_code=status,
        headers=headers,
    )


def _description(text: str) -> str:
    """RFC 6749 §5.2 allows printable ASCII but ``"`` and ``\\`` in error_description."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:500]


def _form(body: bytes) -> dict[str, str]:
    """Parse a form body strictly: UTF-8, at most ``MAX_FIELDS`` parameters, none repeated."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise _bad_form("the body is not a UTF-8 form of at most 20 parameters") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _bad_form(f"parameter {name[:40]!r} appears more than once", name[:40])
        form[name] = value
    return form


def _bad_form(message: str, field: str = "body") -> InputError:
    return InputError(
        message, field=field, expected=f"one {FORM} body", oauth_error="invalid_request"
    )


def _basic(header: str | None) -> tuple[str, str] | None:
    """Return the client id and secret of an HTTP Basic header (RFC 6749 §2.3.1 encoding)."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _bad_basic("only HTTP Basic client authentication is accepted here")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        client_id, sep, secret = decoded.partition(":")
        if sep and client_id:
            return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        pass
    raise _bad_basic("malformed HTTP Basic credentials")


def _bad_basic(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, oauth_error="invalid_client", reason="bad-basic-header")
