"""The shared part of ``AccessAdmin``: who is acting, lookups, events, small checks."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine

from medledger.access._sql import utc_now
from medledger.access.credentials import Credentials, EventSink, log_event
from medledger.access.directory import Directory
from medledger.access.lockout import Event
from medledger.access.model import ANY, Client, Permission, PrincipalKind, Role, User
from medledger.access.passwords import PasswordHasher
from medledger.access.permissions import check_grant, effective_permissions, resolve
from medledger.crypto.suite import Suite
from medledger.errors import InputError, NotFound, PermissionDenied, StateError

__all__ = ["BOOTSTRAP", "AdminBase", "RoleRequest", "ledger_entry"]

BOOTSTRAP = "bootstrap"
RoleRequest = tuple[Role, str]
"""(role, scope as given: ``own``, an institution id or ``*``)."""

CLIENT_ROLES = frozenset({Role.INTEGRATION, Role.TECHNICIAN, Role.AUDITOR})
"""Roles a service account may hold: never an admin role."""


def ledger_entry(event: Event) -> dict[str, Any]:
    """Return the ledger entry (type ``access.grant``) that anchors an admin event."""
    meta = {k: v for k, v in event.items() if k not in ("at", "institution", "ref")}
    return {
        "v": 1,
        "type": "access.grant",
        "inst": event["institution"],
        "ts": event["at"],
        "ref": event["ref"],
        "meta": meta,
    }


class AdminBase:
    """Directory, credential store, data directory and suite; the actor check."""

    """Change institutions, users, clients and grants on behalf of a checked actor."""

    def __init__(
        self, directory: Directory, credentials: Credentials, data_dir: Path, suite: Suite
    ) -> None:
        self.directory = directory
        self.credentials = credentials
        self.data_dir = Path(data_dir)
        self.suite = suite

    @classmethod
    def open(
        cls,
        engine: Engine,
        data_dir: Path,
        suite: Suite,
        *,
        hasher: PasswordHasher | None = None,
        on_event: EventSink = log_event,
    ) -> Self:
        """Build the directory and credential store on ``engine`` (already migrated)."""
        creds = Credentials(engine, hasher=hasher, on_event=on_event)
        return cls(Directory(engine), creds, data_dir, suite)

    @property
    def hasher(self) -> PasswordHasher:
        return self.credentials.hasher

    def bootstrapping(self) -> bool:
        """Return True while no enabled user holds group_admin."""
        return self.directory.count_active_group_admins() == 0

    # -- helpers ----------------------------------------------------------------------------

    def _actor(self, actor: str | None, *, bootstrap_ok: bool) -> tuple[str, frozenset[Permission]]:
        if actor is None:
            if bootstrap_ok and self.bootstrapping():
                return BOOTSTRAP, resolve(Role.GROUP_ADMIN, ANY)
            raise PermissionDenied(
                "name the acting admin with --as ADMIN (a user holding an admin role)",
                field="as",
                value=None,
                expected="the user id of an enabled admin",
            )
        user = self.directory.get_user(actor)
        if user is None or user.disabled:
            raise PermissionDenied(
                f"acting admin {actor!r} is not an enabled user",
                field="as",
                value=actor,
                expected="the user id of an enabled admin",
            )
        return actor, effective_permissions(user.grants)

    def _user(self, user_id: str) -> User:
        user = self.directory.get_user(user_id)
        if user is None:
            raise NotFound(
                f"no user {user_id!r}",
                field="user",
                value=user_id,
                expected="a user id from `medledger admin user list`",
            )
        return user

    def _client(self, client_id: str) -> Client:
        client = self.directory.get_client(client_id)
        if client is None:
            raise NotFound(
                f"no client {client_id!r}",
                field="client",
                value=client_id,
                expected="a client id from `medledger admin client list`",
            )
        return client

    def _manage(
        self, kind: PrincipalKind, principal: str, actor: str | None
    ) -> tuple[str, User | Client]:
        """Return (actor, principal) if the actor may manage the principal's account.

        Managing (disable, unlock, new secret) needs admin over the principal's institution and
        coverage of everything the principal holds: nobody can lock out a stronger account.
        """
        found = self._user(principal) if kind is PrincipalKind.USER else self._client(principal)
        by, held = self._actor(actor, bootstrap_ok=False)
        check_grant(
            held, effective_permissions(found.grants), institution=found.institution, who=by
        )
        return by, found

    def _home(self, kind: PrincipalKind, principal: str) -> str:
        found = self._user(principal) if kind is PrincipalKind.USER else self._client(principal)
        return str(found.institution)

    def _roles(self, kind: PrincipalKind, principal: str) -> set[Role]:
        found = self._user(principal) if kind is PrincipalKind.USER else self._client(principal)
        return set(found.roles)

    def _keep_a_group_admin(self, user_id: str) -> None:
        if self.directory.count_active_group_admins(excluding=user_id) == 0:
            raise StateError(
                f"{user_id} is the last enabled group admin; grant group_admin to another "
                "user first",
                user=user_id,
            )

    @staticmethod
    def _event(op: str, by: str, institution: str, ref: str, **extra: Any) -> Event:
        return {
            "event": f"access.{op}",
            "by": by,
            "at": utc_now(),
            "institution": institution,
            "ref": ref,
            **{k: v for k, v in extra.items() if v is not None},
        }


def client_role(role: Role) -> None:
    if role not in CLIENT_ROLES:
        raise InputError(
            f"a service account may not hold {role.value}",
            field="role",
            value=role.value,
            expected=", ".join(sorted(r.value for r in CLIENT_ROLES)),
        )


def check_text(value: str, field: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InputError(f"bad {field}", field=field, value=value, expected=f"1-{limit} characters")
    return value


def new_secret() -> str:
    """Return a new client secret: 32 random bytes, base64url (43 characters)."""
    return secrets.token_urlsafe(32)
