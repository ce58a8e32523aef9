"""The token endpoint of ``TokenService``: the three grant types, events and upkeep.

``TokenGrants.handle`` answers RFC 6749 token requests:

- ``client_credentials`` for service accounts, authenticated by client secret (HTTP Basic or
  form) or a private-key JWT assertion (``client_auth``); no refresh token (RFC 6749 §4.4.3);
- ``password`` for people (``username``, ``password``), with the lockout of ``Credentials``;
  the answer carries a refresh token that starts a new sign-in (a refresh token family);
- ``refresh_token``: rotation; a used refresh token presented again revokes the sign-in, and
  with it every access token of the family (they carry its id as ``fam``).

``password`` and ``refresh_token`` are for public clients (a person's app holds no secret of
its own), so a request of theirs that carries client credentials is refused; a bare
``client_id`` is ignored. The requested ``scope`` is checked against the principal's roles
(``token_scopes``); without one the token gets everything the roles allow.

Failures are ``medledger.errors`` exceptions with an ``oauth_error`` detail (``invalid_client``,
``invalid_grant``, ``invalid_scope``, ``invalid_request``, ``unsupported_grant_type``), which
the HTTP layer turns into RFC 6749 §5.2 answers; an unknown account, a disabled one and a wrong
secret all get the same one. Every outcome goes to ``on_event`` (the audit trail) as an
``auth.token`` event of ids only: never a secret or a token.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Self

from medledger.access.client_auth import authenticate_client, client_auth_of, invalid_client
from medledger.access.credentials import Clock, Credentials, EventSink, log_event
from medledger.access.directory import Directory
from medledger.access.lockout import rfc3339
from medledger.access.model import Client, PrincipalKind, check_principal_id
from medledger.access.passwords import PasswordHasher
from medledger.access.permissions import effective_permissions
from medledger.access.refresh import (
    RefreshGrant,
    RefreshPolicy,
    rotate_refresh_token,
    start_refresh_family,
)
from medledger.access.token_scopes import check_scope, check_subset, default_scope, still_allowed
from medledger.access.token_store import TokenStores
from medledger.access.tokens import (
    DEFAULT_TTL,
    IssuedToken,
    NodeTokenKey,
    TokenPolicy,
    issue_access_token,
)
from medledger.errors import (
    AccountLocked,
    AuthenticationFailed,
    InputError,
    MedLedgerError,
    StorageError,
    TokenInvalid,
)

if TYPE_CHECKING:
    from medledger.ledger.node import LedgerNode

__all__ = ["GRANT_TYPES", "TokenGrants"]

GRANT_TYPES = ("client_credentials", "password", "refresh_token")
USER, CLIENT = PrincipalKind.USER, PrincipalKind.CLIENT
UNKNOWN_ACCOUNT = "(unknown account)"
_MAX_OPAQUE = 128  # longer "refresh tokens" are not ours: no need to hash them

_log = logging.getLogger(__name__)


class TokenGrants:
    """Issue and rotate tokens (the state ``TokenService`` builds on)."""

    def __init__(
        self,
        directory: Directory,
        credentials: Credentials,
        key: NodeTokenKey,
        policy: TokenPolicy,
        stores: TokenStores,
        *,
        refresh_policy: RefreshPolicy | None = None,
        clock: Clock = time.time,
        on_event: EventSink | None = None,
        prune_every: float = 600.0,
    ) -> None:
        """Build the service; ``on_event`` defaults to the sink lockout events go to."""
        self.directory = directory
        self.credentials = credentials
        self.key = key
        self.policy = policy
        self.stores = stores
        self.refresh_policy = refresh_policy or RefreshPolicy()
        self.clock = clock
        self.on_event = on_event or credentials.on_event
        self.prune_every = prune_every
        self._next_prune = 0.0
        self.node: LedgerNode | None = None  # set by ``for_node``

    @classmethod
    def for_node(
        cls,
        node: LedgerNode,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock = time.time,
        on_event: EventSink | None = None,
        ttl: int | None = None,
    ) -> Self:
        """Build the service of an open node: its database, its key, its chain id as ``iss``
        and ``aud``; lockout events and sign-ins both go to ``on_event`` (default: the log)."""
        engine = node.store.engine
        creds = Credentials(engine, hasher=hasher, clock=clock, on_event=on_event or log_event)
        chain = node.config.chain
        policy = TokenPolicy(issuer=chain, audience=chain, ttl=ttl or DEFAULT_TTL)
        key = NodeTokenKey.for_node(node)
        service = cls(Directory(engine), creds, key, policy, TokenStores.open(engine), clock=clock)
        service.node = node
        return service

    # -- the token endpoint ------------------------------------------------------------------

    def handle(
        self, form: dict[str, str], basic_auth: tuple[str, str] | None, *, token_endpoint_url: str
    ) -> dict[str, Any]:
        """Answer a token request (RFC 6749 §4.3, §4.4, §6; RFC 7523 §2.2).

        ``form`` holds the request's parameters (empty values count as absent),
        ``basic_auth`` the decoded HTTP Basic credentials if any, ``token_endpoint_url`` the
        audience client assertions must name. Return the JSON answer; raise with an
        ``oauth_error`` detail otherwise.
        """
        now = self.clock()
        self._maybe_prune(now)
        form = {k: v for k, v in form.items() if v != ""}
        grant_type = form.get("grant_type", "")
        who = (CLIENT if grant_type == "client_credentials" else USER, "")
        try:
            auth = client_auth_of(form, basic_auth)
            if auth is not None:
                who = (CLIENT, auth.client_id)
            if grant_type == "client_credentials":
                if auth is None:
                    raise invalid_client("no-client-authentication")
                client = authenticate_client(
                    auth,
                    directory=self.directory,
                    credentials=self.credentials,
                    seen_jtis=self.stores.seen_jtis,
                    token_endpoint_url=token_endpoint_url,
                    now=now,
                )
                answer = self._client_token(client, form, now)
            elif grant_type in ("password", "refresh_token"):
                if auth is not None:
                    raise InputError(
                        f"the {grant_type} grant is for people's apps: send no client credentials",
                        field="client_authentication",
                        value=auth.method,
                        expected="no client authentication",
                        oauth_error="invalid_request",
                    )
                if grant_type == "password":
                    who = (USER, form.get("username", ""))
                    answer = self._password(form, now)
                else:
                    answer, who = self._refresh(form, now)
            else:
                raise _bad_grant_type(grant_type)
        except MedLedgerError as exc:
            who = self._named(who)
            self._event("auth.token", who, now, grant_type, outcome="failure", reason=_why(exc))
            raise
        self._event("auth.token", who, now, grant_type, outcome="success", scope=answer["scope"])
        return answer

    def _client_token(self, client: Client, form: dict[str, str], now: float) -> dict[str, Any]:
        scope = _scope(form, effective_permissions(client.grants), "system")
        issued = issue_access_token(
            self.key,
            self.policy,
            subject=client.client_id,
            institution=client.institution,
            roles=sorted(r.value for r in client.roles),
            scope=scope,
            now=now,
            client_id=client.client_id,
        )
        return _answer(issued, None)

    def verify_password(self, username: str, password: str) -> None:
        """Check a user's password as a sign-in does (failures count towards the lockout);
        refusals are OAuth ``invalid_grant`` errors that do not tell which part was wrong."""
        try:
            self.credentials.authenticate(USER, username, password)
        except AccountLocked as exc:
            raise AccountLocked(
                exc.message, retry_after=exc.details["retry_after"], oauth_error="invalid_grant"
            ) from None
        except AuthenticationFailed:
            raise _invalid_grant("invalid username or password", "bad-credentials") from None

    def _password(self, form: dict[str, str], now: float) -> dict[str, Any]:
        username, password = _required(form, "username"), _required(form, "password")
        self.verify_password(username, password)
        standing = self.directory.standing(USER, username)
        if standing is None or standing.disabled:  # disabled since it authenticated
            raise _invalid_grant("invalid username or password", "disabled")
        scope = _scope(form, effective_permissions(standing.grants), "user")
        family = start_refresh_family(
            self.stores.refresh,
            self.refresh_policy,
            subject=username,
            institution=standing.institution,
            client_id=None,
            scope=scope,
            now=now,
        )
        roles = sorted({g.role.value for g in standing.grants})
        return _answer(self._user_token(username, standing.institution, roles, family, now), family)

    def _refresh(
        self, form: dict[str, str], now: float
    ) -> tuple[dict[str, Any], tuple[PrincipalKind, str]]:
        token = _required(form, "refresh_token")
        try:
            family = rotate_refresh_token(
                self.stores.refresh, self.refresh_policy, token, client_id=None, now=now
            )
        except TokenInvalid as exc:
            raise _invalid_grant(
                "the refresh token is invalid, expired or revoked", exc.reason
            ) from None
        rec = family.record
        who = (USER, rec.subject)
        standing = self.directory.standing(USER, rec.subject)
        if standing is None or standing.disabled or standing.institution != rec.institution:
            self.stores.refresh.revoke_family(rec.family_id, int(now))
            raise _invalid_grant("the refresh token is invalid, expired or revoked", "disabled")
        perms = effective_permissions(standing.grants)
        requested = form.get("scope")
        if requested is not None:
            check_subset(requested, rec.scope)
            check_scope(requested, perms, "user")
        scope = still_allowed(rec.scope if requested is None else requested, perms, "user")
        roles = sorted({g.role.value for g in standing.grants})
        issued = self._user_token(rec.subject, standing.institution, roles, family, now, scope)
        return _answer(issued, family), who

    def _user_token(
        self,
        user: str,
        institution: str,
        roles: list[str],
        family: RefreshGrant,
        now: float,
        scope: str | None = None,
    ) -> IssuedToken:
        return issue_access_token(
            self.key,
            self.policy,
            subject=user,
            institution=institution,
            roles=roles,
            scope=family.record.scope if scope is None else scope,
            now=now,
            family=family.record.family_id,
        )

    # -- upkeep ------------------------------------------------------------------------------

    def prune(self) -> int:
        """Delete expired revocations, refresh tokens and assertion ids; return how many."""
        return self.stores.prune(self.clock())

    def _maybe_prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        try:
            self.stores.prune(now)
        except StorageError:  # upkeep must not fail a sign-in; the next interval tries again
            _log.warning("pruning expired token rows failed; will retry")

    def _named(self, who: tuple[PrincipalKind, str]) -> tuple[PrincipalKind, str]:
        """Return ``who`` if it names an account; else say so without echoing the name.

        A failed sign-in's user name may be a password typed into the wrong field.
        """
        kind, principal = who
        if not principal:
            return who
        try:
            check_principal_id(principal, "principal")
            known = self.directory.standing(kind, principal) is not None
        except (InputError, StorageError):
            known = False
        return (kind, principal) if known else (kind, UNKNOWN_ACCOUNT)

    def _event(
        self,
        name: str,
        who: tuple[PrincipalKind, str],
        now: float,
        grant_type: str | None,
        **extra: Any,
    ) -> None:
        """Hand one ``auth.*`` event (ids and times only) to ``on_event``."""
        kind, principal = who
        event: dict[str, Any] = {
            "event": name,
            "principal_kind": kind.value,
            "principal": principal,
            "at": rfc3339(now),
        }
        if grant_type is not None:
            event["grant_type"] = grant_type[:40]
        self.on_event({**event, **extra})


def _scope(form: dict[str, str], permissions: Any, context: str) -> str:
    requested = form.get("scope")
    if requested is None:
        return default_scope(permissions, context)
    return check_scope(requested, permissions, context)


def _answer(issued: IssuedToken, family: RefreshGrant | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.claims.scope,
    }
    if family is not None:
        out["refresh_token"] = family.refresh_token
    return out


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise InputError(
            f"missing parameter {name}",
            field=name,
            expected="a value",
            oauth_error="invalid_request",
        )
    return value


def _invalid_grant(message: str, reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, oauth_error="invalid_grant", reason=reason)


def _bad_grant_type(grant_type: str) -> InputError:
    if not grant_type:
        return _missing_grant_type()
    return InputError(
        "unsupported grant_type",
        field="grant_type",
        value=grant_type,
        expected=", ".join(GRANT_TYPES),
        oauth_error="unsupported_grant_type",
    )


def _missing_grant_type() -> InputError:
    return InputError(
        "missing parameter grant_type",
        field="grant_type",
        expected=", ".join(GRANT_TYPES),
        oauth_error="invalid_request",
    )


def _why(exc: MedLedgerError) -> str:
    if isinstance(exc, AccountLocked):
        return "locked"
    reason = exc.details.get("reason") or exc.details.get("oauth_error") or exc.code
    return str(reason)[:40]
