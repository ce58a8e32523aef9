"""OpenAPI descriptions of the OAuth endpoints (``api.auth``); documentation only.

The routes parse their form bodies themselves (strictly: one value per parameter, UTF-8, size
limited), so these models only say truthfully what that code accepts and answers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medledger.access.assertions import CLIENT_ASSERTION_ALGS, CLIENT_ASSERTION_TYPE
from medledger.access.client_auth import AUTH_METHODS

__all__ = [
    "FORM",
    "REVOKE_OPENAPI",
    "TOKEN_OPENAPI",
    "Jwks",
    "OAuthError",
    "SmartConfiguration",
    "TokenResponse",
]

FORM = "application/x-www-form-urlencoded"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(_Doc):
    """RFC 6749 §5.1: the access token (a JWT, RFC 9068) and, for people, a refresh token."""

    access_token: str = Field(description="a JWT signed with the node key (EdDSA or SM2SM3)")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the access token expires")
    scope: str = Field(description="the SMART scopes granted, space-separated")
    refresh_token: str | None = Field(
        default=None,
        description="password and refresh_token grants only: spend it once, with grant_type "
        "refresh_token; presenting a spent one again revokes the whole sign-in",
    )


class OAuthError(_Doc):
    """RFC 6749 §5.2 (401 for invalid_client, 429 with Retry-After while an account is locked)."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "invalid_scope",
        "unauthorized_client",
        "unsupported_grant_type",
        "temporarily_unavailable",
        "server_error",
    ]
    error_description: str


class Jwks(_Doc):
    """The node's public keys (RFC 7517 §5): what access tokens are signed with."""

    keys: list[dict[str, str]]


class SmartConfiguration(BaseModel):
    """SMART App Launch 2.x ``.well-known/smart-configuration`` (backend services subset)."""

    model_config = ConfigDict(extra="allow")

    token_endpoint: str
    revocation_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    capabilities: list[str]


def _form_body(properties: dict[str, Any], required: list[str], description: str) -> Any:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "properties": properties,
                        "required": required,
                    }
                }
            },
        }
    }


_CLIENT_AUTH: dict[str, Any] = {
    "client_id": {"type": "string", "description": "with client_secret (client_secret_post)"},
    "client_secret": {"type": "string", "description": "client_secret_post"},
    "client_assertion_type": {"type": "string", "enum": [CLIENT_ASSERTION_TYPE]},
    "client_assertion": {
        "type": "string",
        "description": "private_key_jwt (RFC 7523): a JWT signed with the client's registered "
        f"key, aud = the token endpoint URL; algorithms {', '.join(CLIENT_ASSERTION_ALGS)}",
    },
}

TOKEN_OPENAPI = _form_body(
    {
        "grant_type": {
            "type": "string",
            "enum": ["client_credentials", "password", "refresh_token"],
        },
        "scope": {
            "type": "string",
            "description": "SMART scopes within the account's roles (default: all they allow)",
        },
        "username": {"type": "string", "description": "password grant"},
        "password": {"type": "string", "format": "password", "description": "password grant"},
        "refresh_token": {"type": "string", "description": "refresh_token grant"},
        **_CLIENT_AUTH,
    },
    ["grant_type"],
    "RFC 6749 token request. Service accounts: client_credentials with HTTP Basic "
    f"({AUTH_METHODS[0]}), client_id + client_secret, or a client assertion. People: password, "
    "then refresh_token, without client credentials.",
)

REVOKE_OPENAPI = _form_body(
    {
        "token": {"type": "string", "description": "an access token or a refresh token"},
        "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
        **_CLIENT_AUTH,
    },
    ["token"],
    "RFC 7009 revocation. A refresh token revokes its whole sign-in (and its access tokens). "
    "Clients authenticate to revoke their own tokens; people's tokens need no credentials.",
)
