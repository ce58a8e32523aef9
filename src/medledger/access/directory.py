"""The access directory on SQL: institutions, users, clients and their role grants.

Every write is one durable transaction (``begin_write``). A duplicate id or a missing
institution raises StateError or NotFound naming it; any other driver failure raises
StorageError. Credentials (secret hashes and lockout state) are in ``credentials.py``.
SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from medledger.access import _rows
from medledger.access._rows import NewGrant
from medledger.access._sql import SqlTables, utc_now
from medledger.access.model import (
    Client,
    Grant,
    Institution,
    PrincipalKind,
    Role,
    User,
)
from medledger.errors import NotFound
from medledger.store.schema_access import access_clients as CLIENTS
from medledger.store.schema_access import access_credentials as CREDS
from medledger.store.schema_access import access_grants as GRANTS
from medledger.store.schema_access import access_institutions as INST
from medledger.store.schema_access import access_users as USERS

__all__ = ["Directory", "NewGrant", "Standing"]


def _standing_query(kind: PrincipalKind) -> Any:
    table, key = (
        (USERS, USERS.c.id) if kind is PrincipalKind.USER else (CLIENTS, CLIENTS.c.client_id)
    )
    joined = table.outerjoin(GRANTS, and_(GRANTS.c.principal == key, _rows.active_of_kind(kind)))
    columns = (GRANTS.c.role, GRANTS.c.scope, GRANTS.c.granted_by, GRANTS.c.granted_at)
    return (
        select(table.c.institution, table.c.disabled, *columns)
        .select_from(joined)
        .where(key == bindparam("principal"))
    )


# Built once: every authenticated request runs one of these.
_STANDING = {kind: _standing_query(kind) for kind in PrincipalKind}


@dataclass(frozen=True, slots=True)
class Standing:
    """What a request needs to know about its principal, read afresh each time."""

    institution: str
    disabled: bool
    grants: tuple[Grant, ...]


class Directory(SqlTables):
    """Read and write the access directory on one engine (schema at revision 0005 or later)."""

    # -- institutions -----------------------------------------------------------------------

    def add_institution(self, inst: Institution) -> None:
        """Insert ``inst``; StateError if its id (or key id) is taken."""
        with self.write(f"institution {inst.id} already exists (or its key id is in use)") as c:
            c.execute(
                insert(INST).values(
                    id=inst.id,
                    name=inst.name,
                    kind=inst.kind.value,
                    suite=inst.suite,
                    key_id=inst.key_id,
                    public_key=inst.public_key,
                    created=inst.created,
                )
            )

    def get_institution(self, inst_id: str) -> Institution | None:
        """Return the institution, or None."""
        with self.read() as c:
            row = c.execute(select(INST).where(INST.c.id == inst_id)).first()
        return None if row is None else _rows.institution(row)

    def institution(self, inst_id: str) -> Institution:
        """Return the institution; raise NotFound naming it."""
        found = self.get_institution(inst_id)
        if found is None:
            raise NotFound(
                f"no institution {inst_id!r}",
                field="institution",
                value=inst_id,
                expected="an institution id from `medledger admin institution list`",
            )
        return found

    def list_institutions(self) -> list[Institution]:
        """Return every institution, by id."""
        with self.read() as c:
            return [_rows.institution(r) for r in c.execute(select(INST).order_by(INST.c.id))]

    # -- users and clients ------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        institution: str,
        display_name: str,
        secret_hash: str,
        grants: Sequence[NewGrant],
        granted_by: str,
    ) -> None:
        """Insert a user with a password hash and its first grants, all in one transaction."""
        self.institution(institution)
        with self.write(f"user {user_id} already exists") as c:
            c.execute(
                insert(USERS).values(
                    id=user_id,
                    institution=institution,
                    display_name=display_name,
                    disabled=False,
                    created=utc_now(),
                )
            )
            _rows.new_principal(c, PrincipalKind.USER, user_id, secret_hash, grants, granted_by)

    def add_client(
        self,
        client_id: str,
        institution: str,
        display_name: str,
        secret_hash: str | None,
        jwk: tuple[dict[str, str], str] | None,
        grants: Sequence[NewGrant],
        granted_by: str,
    ) -> None:
        """Insert a client with its secret hash and/or (public JWK, thumbprint) and grants."""
        self.institution(institution)
        with self.write(f"client {client_id} already exists") as c:
            c.execute(
                insert(CLIENTS).values(
                    client_id=client_id,
                    institution=institution,
                    display_name=display_name,
                    disabled=False,
                    jwk=None if jwk is None else json.dumps(jwk[0], sort_keys=True),
                    jwk_thumbprint=None if jwk is None else jwk[1],
                    created=utc_now(),
                )
            )
            _rows.new_principal(c, PrincipalKind.CLIENT, client_id, secret_hash, grants, granted_by)

    def get_user(self, user_id: str) -> User | None:
        """Return the user with their active grants, or None."""
        with self.read() as c:
            row = c.execute(select(USERS).where(USERS.c.id == user_id)).first()
            if row is None:
                return None
            grants = _rows.grants(c, PrincipalKind.USER, [user_id])
        return _rows.user(row, grants.get(user_id, ()))

    def get_client(self, client_id: str) -> Client | None:
        """Return the client with its active grants, or None."""
        with self.read() as c:
            row = c.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id)).first()
            if row is None:
                return None
            grants = _rows.grants(c, PrincipalKind.CLIENT, [client_id])
        return _rows.client(row, grants.get(client_id, ()), self._has_secret(client_id))

    def standing(
        self, kind: PrincipalKind, principal: str, conn: Connection | None = None
    ) -> Standing | None:
        """Return a principal's institution, disabled flag and active grants in one query.

        The check every authenticated request makes (so a disabled account or a revoked grant
        takes effect at once): one indexed join, the principal's primary key and the active
        grants' partial unique index. None if the principal does not exist. ``conn`` reuses
        an open read connection.
        """
        if conn is None:
            with self.read() as c:
                return self.standing(kind, principal, c)
        rows = conn.execute(_STANDING[kind], {"principal": principal}).all()
        if not rows:
            return None
        grants = tuple(
            Grant(Role(r.role), r.scope, r.granted_by, r.granted_at)
            for r in rows
            if r.role is not None
        )
        return Standing(rows[0].institution, bool(rows[0].disabled), grants)

    def list_users(self, institution: str | None = None) -> list[User]:
        """Return users (of one institution, or all), by id, with their active grants."""
        query = select(USERS).order_by(USERS.c.id)
        if institution is not None:
            query = query.where(USERS.c.institution == institution)
        with self.read() as c:
            rows = c.execute(query).all()
            grants = _rows.grants(c, PrincipalKind.USER, [r.id for r in rows])
        return [_rows.user(r, grants.get(r.id, ())) for r in rows]

    def list_clients(self, institution: str | None = None) -> list[Client]:
        """Return clients (of one institution, or all), by id, with their active grants."""
        query = select(CLIENTS).order_by(CLIENTS.c.client_id)
        if institution is not None:
            query = query.where(CLIENTS.c.institution == institution)
        with self.read() as c:
            rows = c.execute(query).all()
            ids = [r.client_id for r in rows]
            grants = _rows.grants(c, PrincipalKind.CLIENT, ids)
            secrets = {
                r.principal
                for r in c.execute(
                    select(CREDS.c.principal).where(
                        CREDS.c.kind == PrincipalKind.CLIENT.value,
                        CREDS.c.principal.in_(ids),
                        CREDS.c.secret_hash.is_not(None),
                    )
                )
            }
        return [_rows.client(r, grants.get(r.client_id, ()), r.client_id in secrets) for r in rows]

    def set_disabled(self, kind: PrincipalKind, principal: str, disabled: bool) -> bool:
        """Disable or re-enable a principal; return False if it does not exist."""
        table, key = (
            (USERS, USERS.c.id) if kind is PrincipalKind.USER else (CLIENTS, CLIENTS.c.client_id)
        )
        with self.write() as c:
            result = c.execute(update(table).where(key == principal).values(disabled=disabled))
        return bool(result.rowcount)

    # -- grants -----------------------------------------------------------------------------

    def add_grant(
        self, kind: PrincipalKind, principal: str, role: Role, scope: str, granted_by: str
    ) -> Grant:
        """Record an active grant; StateError if the principal holds it already."""
        grant = Grant(role, scope, granted_by, utc_now())
        with self.write(f"{principal} already holds {role.value} with scope {scope}") as c:
            _rows.insert_grants(c, kind, principal, [grant])
        return grant

    def revoke_grant(
        self, kind: PrincipalKind, principal: str, role: Role, scope: str, revoked_by: str
    ) -> bool:
        """Mark the active grant revoked; return False if there was none."""
        with self.write() as c:
            result = c.execute(
                update(GRANTS)
                .where(
                    _rows.active(kind, principal),
                    GRANTS.c.role == role.value,
                    GRANTS.c.scope == scope,
                )
                .values(revoked_by=revoked_by, revoked_at=utc_now())
            )
        return bool(result.rowcount)

    def count_active_group_admins(self, excluding: str | None = None) -> int:
        """Return how many enabled users hold group_admin (optionally not counting one)."""
        query = (
            select(USERS.c.id)
            .join(
                GRANTS,
                and_(GRANTS.c.kind == PrincipalKind.USER.value, GRANTS.c.principal == USERS.c.id),
            )
            .where(
                GRANTS.c.role == Role.GROUP_ADMIN.value,
                GRANTS.c.revoked_at.is_(None),
                USERS.c.disabled.is_(False),
            )
            .distinct()
        )
        with self.read() as c:
            ids = {r.id for r in c.execute(query)}
        ids.discard(excluding)
        return len(ids)

    def _has_secret(self, client_id: str) -> bool:
        with self.read() as c:
            row = c.execute(
                select(CREDS.c.secret_hash).where(
                    CREDS.c.kind == PrincipalKind.CLIENT.value, CREDS.c.principal == client_id
                )
            ).first()
        return row is not None and row.secret_hash is not None
