"""The OAuth 2.0 token service: token requests, revocation and bearer authentication.

``TokenService`` is what the HTTP layer calls: ``handle`` for ``POST /auth/token`` (the grant
types, in ``_token_grants``), ``revoke`` for ``POST /auth/revoke`` (RFC 7009) and
``authenticate_bearer`` for every other API request.

``authenticate_bearer`` verifies the access token (signature, times, and revocation of the
token and of its sign-in) and re-reads the principal, so a disabled account, a revoked grant or
a revoked token takes effect on the very next request. Two indexed queries: the revocation
check and the principal with its active grants.
"""

from __future__ import annotations

from sqlalchemy import Connection

from medledger.access._token_grants import (
    _MAX_OPAQUE,
    CLIENT,
    GRANT_TYPES,
    USER,
    TokenGrants,
    _required,
)
from medledger.access.admin import AccessAdmin
from medledger.access.caller import PURPOSE_TREAT, Caller
from medledger.access.client_auth import authenticate_client, client_auth_of
from medledger.access.model import PrincipalKind
from medledger.access.permissions import effective_permissions
from medledger.access.refresh import refresh_token_hash
from medledger.access.token_store import SqlRevocations
from medledger.access.tokens import TokenClaims, revoke_access_token, verify_access_token
from medledger.errors import StateError, TokenInvalid

__all__ = ["GRANT_TYPES", "TokenService"]


class TokenService(TokenGrants):
    """Issue, rotate and revoke tokens; authenticate the bearer of an access token."""

    def admin(self) -> AccessAdmin:
        """Return an ``AccessAdmin`` on this service's directory and credentials (its node's
        data directory and suite); for the admin API. Requires a service from ``for_node``."""
        if self.node is None:
            raise StateError("this token service was not opened on a node (use for_node)")
        return AccessAdmin(self.directory, self.credentials, self.node.data_dir, self.node.suite)

    def change_password(self, username: str, current: str, new: str) -> int:
        """A user's own password change (``/auth/password``): anchored on the ledger and sent
        to ``on_event`` (the audit trail); return how many sign-ins it ended."""
        from medledger.access.admin_ledger import anchor

        admin = self.admin()
        self.verify_password(username, current)
        event = admin.change_password(username, current, new)
        if self.node is not None:  # admin() raised otherwise
            anchor(self.node, event)
        self.on_event(event)
        return int(event.get("sessions", 0))

    # -- revocation (RFC 7009) ---------------------------------------------------------------

    def revoke(
        self,
        form: dict[str, str],
        basic_auth: tuple[str, str] | None,
        *,
        token_endpoint_url: str | None = None,
    ) -> None:
        """Revoke an access token (until it expires) or a refresh token's whole sign-in.

        Return normally for unknown, expired and already revoked tokens too (RFC 7009 §2.2).
        A client that authenticates may revoke only its own tokens; without client
        authentication only people's tokens (which belong to no client) can be revoked.
        """
        now = self.clock()
        form = {k: v for k, v in form.items() if v != ""}
        auth = client_auth_of(form, basic_auth)
        client_id = None
        if auth is not None:
            client_id = authenticate_client(
                auth,
                directory=self.directory,
                credentials=self.credentials,
                seen_jtis=self.stores.seen_jtis,
                token_endpoint_url=token_endpoint_url,
                now=now,
            ).client_id
        token = _required(form, "token")
        if "." in token:
            try:
                claims = verify_access_token(
                    token,
                    key=self.key,
                    policy=self.policy,
                    revocations=self.stores.revocations,
                    now=now,
                )
            except TokenInvalid:
                return  # not ours, expired or revoked already: nothing to do
            if claims.client_id == client_id:
                revoke_access_token(self.stores.revocations, claims)
                self._event("auth.revoke", _kind_of(claims), now, None, revoked="access_token")
        elif token.isascii() and len(token) <= _MAX_OPAQUE:
            rec = self.stores.refresh.find(refresh_token_hash(token))
            if rec is not None and rec.client_id == client_id:
                self.stores.refresh.revoke_family(rec.family_id, int(now))
                self._event("auth.revoke", (USER, rec.subject), now, None, revoked="sign-in")

    # -- bearer authentication (every API request) -------------------------------------------

    def authenticate_bearer(
        self,
        token: str,
        *,
        address: str | None,
        purpose: str | None,
        break_glass: str | None,
    ) -> Caller:
        """Return the ``Caller`` behind ``token``; ``TokenInvalid`` if it may not act.

        Refused (``TokenInvalid``, 401) if the token does not verify, has expired, was revoked
        or belongs to a revoked sign-in, or if its principal is now disabled or deleted
        (``revoked``). The caller's permissions are those of its *current* grants whose roles
        the token named when it was issued: never more than at issue, and a revoked grant is
        gone at once.
        """
        try:
            with self.directory.read() as conn:  # both queries on one connection
                claims = verify_access_token(
                    token, key=self.key, policy=self.policy, revocations=_OnConnection(conn),
                    now=self.clock(),
                )  # fmt: skip
                kind, principal = _kind_of(claims)
                standing = self.directory.standing(kind, principal, conn)
            if standing is None or standing.disabled or standing.institution != claims.inst:
                refused = TokenInvalid(
                    "access token refused: the account is disabled", reason="revoked"
                )
                refused.claimed = claims
                raise refused
        except TokenInvalid as exc:
            if isinstance(exc.claimed, TokenClaims):  # name the refused caller for the audit
                who, name = _kind_of(exc.claimed)
                exc.claimed = Caller(
                    kind=who, principal=name, institution=exc.claimed.inst, address=address
                )
            raise
        held = set(claims.roles)
        grants = [g for g in standing.grants if g.role.value in held]
        return Caller(
            kind=kind,
            principal=principal,
            institution=standing.institution,
            roles=tuple(sorted({g.role.value for g in grants})),
            permissions=effective_permissions(grants),
            scopes=claims.scopes(),
            token_id=claims.jti,
            client_id=claims.client_id,
            address=address,
            purpose=purpose or PURPOSE_TREAT,
            break_glass=break_glass,
        )


class _OnConnection:
    """``Revocations`` reads on the request's connection (``authenticate_bearer`` only)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        return SqlRevocations.is_revoked_on(self.conn, jti, family)

    def revoke(self, jti: str, until: int) -> None:
        raise NotImplementedError("authenticate_bearer never revokes")


def _kind_of(claims: TokenClaims) -> tuple[PrincipalKind, str]:
    """Return whose token this is: a client's own (``client_id`` = ``sub``) or a person's."""
    if claims.client_id is None:
        return USER, claims.sub
    if claims.client_id != claims.sub:
        raise TokenInvalid("access token refused: client_id and sub differ", reason="malformed")
    return CLIENT, claims.sub
