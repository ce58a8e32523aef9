"""Row helpers of the access directory: grant queries and row → entity conversion."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select

from medledger.access._sql import utc_now
from medledger.access.model import (
    Client,
    Grant,
    Institution,
    InstitutionKind,
    PrincipalKind,
    Role,
    User,
)
from medledger.store.schema_access import access_credentials as CREDS
from medledger.store.schema_access import access_grants as GRANTS

NewGrant = tuple[Role, str]
"""(role, concrete scope) of a grant made together with a new principal."""


def active(kind: PrincipalKind, principal: str) -> Any:
    return and_(GRANTS.c.principal == principal, active_of_kind(kind))


def active_of_kind(kind: PrincipalKind) -> Any:
    return and_(GRANTS.c.kind == kind.value, GRANTS.c.revoked_at.is_(None))


def insert_grants(
    c: Connection, kind: PrincipalKind, principal: str, grants: Iterable[Grant]
) -> None:
    for g in grants:
        c.execute(
            insert(GRANTS).values(
                kind=kind.value,
                principal=principal,
                role=g.role.value,
                scope=g.scope,
                granted_by=g.granted_by,
                granted_at=g.granted_at,
            )
        )


def new_principal(
    c: Connection,
    kind: PrincipalKind,
    principal: str,
    secret_hash: str | None,
    grants: Sequence[NewGrant],
    granted_by: str,
) -> None:
    now = utc_now()
    c.execute(
        insert(CREDS).values(
            kind=kind.value,
            principal=principal,
            secret_hash=secret_hash,
            failures=0,
            lockouts=0,
            locked_until=None,
            changed=now,
        )
    )
    insert_grants(c, kind, principal, [Grant(r, s, granted_by, now) for r, s in grants])


def grants(c: Connection, kind: PrincipalKind, ids: Sequence[str]) -> dict[str, tuple[Grant, ...]]:
    out: dict[str, list[Grant]] = {}
    if not ids:
        return {}
    rows = c.execute(
        select(GRANTS)
        .where(
            GRANTS.c.kind == kind.value,
            GRANTS.c.principal.in_(list(ids)),
            GRANTS.c.revoked_at.is_(None),
        )
        .order_by(GRANTS.c.principal, GRANTS.c.role, GRANTS.c.scope)
    )
    for r in rows:
        out.setdefault(r.principal, []).append(
            Grant(Role(r.role), r.scope, r.granted_by, r.granted_at)
        )
    return {k: tuple(v) for k, v in out.items()}


def institution(r: Row[Any]) -> Institution:
    return Institution(
        r.id, r.name, InstitutionKind(r.kind), r.suite, r.key_id, r.public_key, r.created
    )


def user(r: Row[Any], grants: tuple[Grant, ...]) -> User:
    return User(r.id, r.institution, r.display_name, bool(r.disabled), grants)


def client(r: Row[Any], grants: tuple[Grant, ...], has_secret: bool) -> Client:
    jwk = None if r.jwk is None else json.loads(r.jwk)
    return Client(
        r.client_id,
        r.institution,
        r.display_name,
        bool(r.disabled),
        has_secret,
        jwk,
        r.jwk_thumbprint,
        grants,
    )
