"""Token state on SQL: revocations, refresh tokens and seen client assertions.

Implements the ``Revocations`` (``revocations``), ``RefreshStore`` (``refresh``) and
``SeenJtis`` (``assertions``) protocols on SQLite and PostgreSQL (tables in
``store.schema_tokens``, migration 0007). Every write is its own durable transaction
(``begin_write``), so a revocation is visible to the very next request, in this process or
any other on the same database; nothing is cached.

Concurrency: ``mark_used`` is one conditional ``UPDATE … WHERE used_at IS NULL``, so of two
concurrent uses of a refresh token exactly one sees a changed row. Inserts that may collide
(a second revocation, a replayed assertion id) use ``ON CONFLICT``, never a read-then-write.

Rows are kept only as long as they matter and ``prune`` (``TokenStores.prune``) deletes the
rest: a revoked access token until it would have expired; refresh tokens and revoked sign-ins
until no token of their family can be valid any more; assertion ids until the assertion
expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from medledger.access._sql import SqlTables
from medledger.access.model import PrincipalKind
from medledger.access.refresh import RefreshRecord
from medledger.access.tokens import MAX_LEEWAY, MAX_TTL
from medledger.store.schema_tokens import access_refresh_tokens as REFRESH
from medledger.store.schema_tokens import access_revoked_families as FAMILIES
from medledger.store.schema_tokens import access_revoked_tokens as REVOKED
from medledger.store.schema_tokens import access_seen_assertions as SEEN

__all__ = [
    "FAMILY_GRACE",
    "SqlRefreshStore",
    "SqlRevocations",
    "SqlSeenJtis",
    "TokenStores",
]

FAMILY_GRACE = MAX_TTL + MAX_LEEWAY
"""How long after its family's end an access token of that family can still be presented."""
_UNKNOWN_FAMILY_LIFE = 365 * 24 * 3600  # RefreshPolicy's longest family_ttl


class _Upserts(SqlTables):
    """The dialect's ``INSERT`` (for ``ON CONFLICT``) on this engine."""

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.postgres else sqlite.insert)(table)


# Built once: the hot path binds values into a cached statement instead of building one.
_REVOKED_JTI = select(literal(1)).select_from(REVOKED).where(REVOKED.c.jti == bindparam("jti"))
_REVOKED_ANY = union_all(
    _REVOKED_JTI,
    select(literal(1)).select_from(FAMILIES).where(FAMILIES.c.family_id == bindparam("fam")),
)


class SqlRevocations(_Upserts):
    """Revoked access tokens and sign-ins (``Revocations``)."""

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """Return True if ``jti`` is revoked or ``family`` is a revoked sign-in: one query."""
        with self.read() as c:
            return self.is_revoked_on(c, jti, family)

    @staticmethod
    def is_revoked_on(c: Connection, jti: str, family: str | None = None) -> bool:
        """``is_revoked`` on an open connection (to share it with the request's other read)."""
        if family is None:
            return c.execute(_REVOKED_JTI, {"jti": jti}).first() is not None
        return c.execute(_REVOKED_ANY, {"jti": jti, "fam": family}).first() is not None

    def revoke(self, jti: str, until: int) -> None:
        """Revoke ``jti`` until ``until``; revoking again only ever extends that."""
        stmt = self._insert(REVOKED).values(jti=jti, until=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[REVOKED.c.jti],
            set_={"until": stmt.excluded.until},
            where=REVOKED.c.until < stmt.excluded.until,
        )
        with self.write() as c:
            c.execute(stmt)

    def prune(self, now: float) -> int:
        """Forget revocations of tokens that have expired anyway; return how many."""
        with self.write() as c:
            return int(c.execute(delete(REVOKED).where(REVOKED.c.until < now)).rowcount)


class SqlRefreshStore(_Upserts):
    """Refresh tokens (``RefreshStore``), stored by hash only."""

    def add(self, record: RefreshRecord) -> None:
        """Store a new, unused record."""
        with self.write("refresh token hash collision") as c:
            c.execute(insert(REFRESH).values(**_columns(record)))

    def find(self, token_hash: str) -> RefreshRecord | None:
        """Return the record with this hash, or None."""
        with self.read() as c:
            row = c.execute(select(REFRESH).where(REFRESH.c.token_hash == token_hash)).first()
        if row is None:
            return None
        return RefreshRecord(**{k: getattr(row, k) for k in _FIELDS})

    def mark_used(self, token_hash: str, at: int) -> bool:
        """Set ``used_at`` if unset and return True; False if it was already set (atomic)."""
        stmt = (
            update(REFRESH)
            .where(REFRESH.c.token_hash == token_hash, REFRESH.c.used_at.is_(None))
            .values(used_at=at)
            .returning(REFRESH.c.token_hash)
        )
        with self.write() as c:
            return c.execute(stmt).first() is not None

    def revoke_family(self, family_id: str, at: int) -> None:
        """Revoke the sign-in: every refresh and access token of the family, now and later."""
        end = (
            select(func.max(REFRESH.c.family_expires_at))
            .where(REFRESH.c.family_id == family_id)
            .scalar_subquery()
        )
        until = func.coalesce(end, at + _UNKNOWN_FAMILY_LIFE) + FAMILY_GRACE
        stmt = self._insert(FAMILIES).from_select(
            ["family_id", "revoked_at", "until"],
            select(literal(family_id), literal(at), until),
        )
        with self.write() as c:
            c.execute(stmt.on_conflict_do_nothing(index_elements=[FAMILIES.c.family_id]))

    def revoke_subject(self, kind: PrincipalKind, subject: str, at: int) -> int:
        """Revoke every current sign-in of a user (``kind`` USER; clients sign in without
        refresh tokens, so they have none); return how many sign-ins were ended."""
        if kind is not PrincipalKind.USER:
            return 0
        families = (
            select(REFRESH.c.family_id)
            .where(REFRESH.c.subject == subject, REFRESH.c.family_expires_at >= at)
            .where(~REFRESH.c.family_id.in_(select(FAMILIES.c.family_id)))
            .distinct()
        )
        with self.read() as c:
            found = [row[0] for row in c.execute(families)]
        for family in found:
            self.revoke_family(family, at)
        return len(found)

    def family_revoked(self, family_id: str) -> bool:
        """Return True if the family was revoked."""
        with self.read() as c:
            row = c.execute(
                select(literal(1)).select_from(FAMILIES).where(FAMILIES.c.family_id == family_id)
            ).first()
        return row is not None

    def prune(self, now: float) -> int:
        """Delete refresh tokens of ended families and revocations past use; return how many."""
        with self.write() as c:
            tokens = c.execute(delete(REFRESH).where(REFRESH.c.family_expires_at < now))
            families = c.execute(delete(FAMILIES).where(FAMILIES.c.until < now))
        return int(tokens.rowcount) + int(families.rowcount)


class SqlSeenJtis(_Upserts):
    """Client assertion ids already accepted (``SeenJtis``)."""

    def remember(self, client_id: str, jti: str, until: int) -> bool:
        """Record ``jti`` for ``client_id``; return False if it was there already (atomic)."""
        stmt = self._insert(SEEN).values(client_id=client_id, jti=jti, until=until)
        stmt = stmt.on_conflict_do_nothing(index_elements=[SEEN.c.client_id, SEEN.c.jti])
        # RETURNING, not rowcount: psycopg reports no row count for INSERT … ON CONFLICT.
        with self.write() as c:
            return c.execute(stmt.returning(SEEN.c.jti)).first() is not None

    def prune(self, now: float) -> int:
        """Forget the ids of expired assertions; return how many."""
        with self.write() as c:
            return int(c.execute(delete(SEEN).where(SEEN.c.until < now)).rowcount)


@dataclass(frozen=True)
class TokenStores:
    """The three token stores on one engine."""

    revocations: SqlRevocations
    refresh: SqlRefreshStore
    seen_jtis: SqlSeenJtis

    @classmethod
    def open(cls, engine: Engine) -> TokenStores:
        """Return the stores on ``engine`` (migrated to revision 0007 or later)."""
        return cls(SqlRevocations(engine), SqlRefreshStore(engine), SqlSeenJtis(engine))

    def prune(self, now: float) -> int:
        """Delete every row that can no longer matter at ``now``; return how many."""
        return self.revocations.prune(now) + self.refresh.prune(now) + self.seen_jtis.prune(now)


_FIELDS = (
    "token_hash",
    "family_id",
    "subject",
    "institution",
    "client_id",
    "scope",
    "issued_at",
    "expires_at",
    "family_expires_at",
    "used_at",
)


def _columns(record: RefreshRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in _FIELDS}
