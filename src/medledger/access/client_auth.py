"""Client authentication at the token and revocation endpoints (RFC 6749 §2.3, RFC 7523 §2.2).

Three methods, one per request:

- ``client_secret_basic``: HTTP Basic with the client id and secret (each form-urlencoded, as
  RFC 6749 §2.3.1 says; the HTTP layer decodes them and passes ``(id, secret)``);
- ``client_secret_post``: ``client_id`` and ``client_secret`` in the form;
- ``private_key_jwt``: ``client_assertion_type`` =
  ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and ``client_assertion``, a JWT
  the client signed with the key it registered (checked by ``assertions``; its ``jti`` is
  remembered so that it works once).

Every failure (unknown, disabled or secret-less client, wrong secret, bad assertion) is the
same ``AuthenticationFailed("invalid client credentials")`` with ``oauth_error``
``invalid_client``, so the answer never tells which clients exist; the precise reason goes to
the audit event only. Secret checks go through ``Credentials.authenticate`` and so count
towards the client's lockout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.access._jwt import _b64, _payload
from medledger.access.assertions import CLIENT_ASSERTION_TYPE, SeenJtis, verify_client_assertion
from medledger.access.credentials import Credentials
from medledger.access.directory import Directory
from medledger.access.jose_sm2 import check_compact
from medledger.access.model import Client, PrincipalKind
from medledger.errors import AccountLocked, AuthenticationFailed, InputError, TokenInvalid

__all__ = [
    "AUTH_METHODS",
    "ClientAuth",
    "authenticate_client",
    "client_auth_of",
    "invalid_client",
]

AUTH_BASIC = "client_secret_basic"
AUTH_POST = "client_secret_post"
AUTH_JWT = "private_key_jwt"
AUTH_METHODS = (AUTH_BASIC, AUTH_POST, AUTH_JWT)
"""The ``token_endpoint_auth_methods_supported`` (RFC 8414)."""


@dataclass(frozen=True)
class ClientAuth:
    """The client authentication one request carries (secrets kept out of ``repr``)."""

    method: str
    client_id: str
    secret: str | None = field(default=None, repr=False)
    assertion: str | None = field(default=None, repr=False)


def invalid_client(reason: str) -> AuthenticationFailed:
    """Return the one answer to every failed client authentication (``reason``: audit only)."""
    return AuthenticationFailed(
        "invalid client credentials", oauth_error="invalid_client", reason=reason
    )


def client_auth_of(form: dict[str, str], basic_auth: tuple[str, str] | None) -> ClientAuth | None:
    """Return the request's client authentication, or None if it carries none.

    A bare ``client_id`` (no secret, no assertion) is not authentication and yields None.
    More than one method at once is an ``invalid_request`` (RFC 6749 §2.3).
    """
    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    found = [m for m, v in (("basic", basic_auth), ("post", secret), ("jwt", assertion)) if v]
    if len(found) > 1:
        raise InputError(
            "use one client authentication method per request",
            field="client_authentication",
            value=", ".join(found),
            expected="HTTP Basic, or client_secret, or client_assertion",
            oauth_error="invalid_request",
        )
    if assertion_type is not None and assertion is None:
        raise _missing("client_assertion")
    if basic_auth is not None:
        client_id, basic_secret = basic_auth
        if form.get("client_id") not in (None, client_id):
            raise invalid_client("client_id differs from the Basic user name")
        return ClientAuth(AUTH_BASIC, client_id, secret=basic_secret)
    if secret is not None:
        posted_id = form.get("client_id")
        if posted_id is None:
            raise _missing("client_id")
        return ClientAuth(AUTH_POST, posted_id, secret=secret)
    if assertion is not None:
        if assertion_type != CLIENT_ASSERTION_TYPE:
            raise InputError(
                "unsupported client_assertion_type",
                field="client_assertion_type",
                value=assertion_type,
                expected=CLIENT_ASSERTION_TYPE,
                oauth_error="invalid_request",
            )
        client_id = form.get("client_id") or _claimed_client(assertion)
        return ClientAuth(AUTH_JWT, client_id, assertion=assertion)
    return None


def authenticate_client(
    auth: ClientAuth,
    *,
    directory: Directory,
    credentials: Credentials,
    seen_jtis: SeenJtis,
    token_endpoint_url: str | None,
    now: float,
) -> Client:
    """Return the enabled client ``auth`` proves to be; ``invalid_client`` otherwise.

    ``AccountLocked`` (a client secret guessed too often) passes through, with
    ``oauth_error`` ``invalid_client``.
    """
    if auth.secret is not None:
        try:
            credentials.authenticate(PrincipalKind.CLIENT, auth.client_id, auth.secret)
        except AccountLocked as exc:
            raise AccountLocked(
                exc.message, retry_after=exc.details["retry_after"], oauth_error="invalid_client"
            ) from None
        except AuthenticationFailed:
            raise invalid_client("bad-secret") from None
    client = directory.get_client(auth.client_id)
    if client is None or client.disabled:
        raise invalid_client("unknown-or-disabled")
    if auth.assertion is not None:
        if client.jwk is None or token_endpoint_url is None:
            raise invalid_client("no-registered-key")
        try:
            verify_client_assertion(
                auth.assertion,
                client_id=client.client_id,
                public_jwk=client.jwk,
                token_endpoint_url=token_endpoint_url,
                now=now,
                seen_jti=seen_jtis,
            )
        except TokenInvalid as exc:
            raise invalid_client(f"assertion-{exc.reason}") from None
        except InputError:  # a registered key that no longer loads
            raise invalid_client("unusable-registered-key") from None
    return client


def _claimed_client(assertion: str) -> str:
    """Return the (not yet verified) ``sub`` of an assertion: whose key to check it with."""
    try:
        payload = _b64(check_compact(assertion, "client assertion").split(b".")[1])
        claims = _payload(payload or b"", "client assertion")
    except TokenInvalid:
        raise invalid_client("assertion-malformed") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise invalid_client("assertion-malformed")
    return sub


def _missing(name: str) -> InputError:
    return InputError(
        f"missing parameter {name}", field=name, expected="a value", oauth_error="invalid_request"
    )
