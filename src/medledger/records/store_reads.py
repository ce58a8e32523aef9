"""Reading the record store: decrypted versions, searches, history, anchoring state.

The read half of ``records.store.RecordStore`` (a mixin over its engine and key ring): one
query per read and per search page, on a read-only connection (SQLite: a WAL snapshot that
never blocks the writer; PostgreSQL: autocommit, one round trip).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from medledger.errors import Gone, NotFound, StorageError
from medledger.records.identifier_lookup import identifier_query
from medledger.records.parties import PARTY_PARAM
from medledger.records.versions import Crypter, Loaded, Version
from medledger.records.visibility import Facts
from medledger.store.engine import READ_ONLY
from medledger.store.schema_records import record_current, record_search, record_versions

_CURRENT_JOIN = and_(
    record_current.c.rtype == record_versions.c.rtype,
    record_current.c.rid == record_versions.c.rid,
    record_current.c.vid == record_versions.c.vid,
)
_LOAD_CURRENT = (
    select(record_versions)
    .join_from(record_current, record_versions, _CURRENT_JOIN)
    .where(
        and_(record_current.c.rtype == bindparam("rtype"), record_current.c.rid == bindparam("rid"))
    )
)
_LOAD_VERSION = select(record_versions).where(
    and_(
        record_versions.c.rtype == bindparam("rtype"),
        record_versions.c.rid == bindparam("rid"),
        record_versions.c.vid == bindparam("vid"),
    )
)

_FACTS_CURRENT = select(
    record_current.c.rid, record_current.c.inst, record_current.c.subject
).where(
    and_(
        record_current.c.rtype == bindparam("rtype"),
        record_current.c.rid.in_(bindparam("rids", expanding=True)),
    )
)
_FACTS_ROWS = select(
    record_search.c.rid, record_search.c.param, record_search.c.system, record_search.c.value
).where(
    and_(
        record_search.c.rtype == bindparam("rtype"),
        record_search.c.rid.in_(bindparam("rids", expanding=True)),
        record_search.c.param.in_((PARTY_PARAM, "category")),
    )
)


class StoreReads:
    """Reads over ``engine`` with ``keyring``; ``RecordStore`` adds the writes."""

    engine: Engine
    keyring: Crypter

    def pending(self) -> list[tuple[Version, bytes]]:
        """Return the versions whose ledger entries are not yet in the log, oldest first."""
        with self._reader() as conn:
            rows = conn.execute(
                select(record_versions)
                .where(record_versions.c.state == "pending")
                .order_by(
                    record_versions.c.ts,
                    record_versions.c.rtype,
                    record_versions.c.rid,
                    record_versions.c.vid,
                )
            ).all()
        return [(_version(r), bytes(r.entry)) for r in rows]

    def pending_entries(self, versions: Sequence[Version]) -> list[bytes]:
        """Return the ledger entries of those of ``versions`` that are still pending."""
        out = []
        with self._reader() as conn:
            for v in versions:
                row = _version_row(conn, v.rtype, v.rid, v.vid)
                if row is not None and row.state == "pending":
                    out.append(bytes(row.entry))
        return out

    # -- reading -----------------------------------------------------------------------------

    def search(
        self,
        rtype: str,
        conditions: Sequence[Any],
        *,
        newest_first: bool,
        limit: int,
        offset: int,
        with_total: bool,
        selective: bool = False,
        visible: Any = None,
    ) -> tuple[list[Loaded], int | None, bool]:
        """Return the decrypted current versions of ``rtype`` matching every condition.

        ``limit`` rows are read and all but the last decrypted; the third value says whether
        that last one exists (a next page).
        One query for the page (current pointers joined to their versions), one for the total.
        Deleted resources and resources of erased patients are never returned or counted.
        ``selective``: a condition matches few resources (a patient, an identifier), so the
        query should start from the search index, not walk every resource in time order.
        ``visible``: the caller's visibility condition (``records.visibility``), applied to the
        page and to the total alike.
        """
        from sqlalchemy import exists, func, literal_column

        from medledger.store.schema import record_keys

        c, k = record_current.c, record_keys.c
        erased = exists().where(and_(k.subject == c.subject, k.wrapped.is_(None)))
        where = and_(c.rtype == rtype, c.deleted.is_(False), ~erased, *conditions)
        if visible is not None:
            where = and_(where, visible)
        ts: Any = c.ts
        if selective and self.engine.dialect.name == "sqlite":
            # SQLite's planner prefers the (rtype, ts) index for ORDER BY ... LIMIT and then
            # tests every resource of the type; a unary + hides that index from it.
            ts = literal_column("+record_current.ts")
        order = [ts.desc(), c.rid.desc()] if newest_first else [ts, c.rid]
        page = (
            select(record_versions)
            .join_from(record_current, record_versions, _CURRENT_JOIN)
            .where(where)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        with self._reader() as conn:
            rows = conn.execute(page).all()
            total = (
                int(
                    conn.execute(
                        select(func.count()).select_from(record_current).where(where)
                    ).scalar()
                    or 0
                )
                if with_total
                else None
            )
        more = len(rows) > limit - 1
        loaded = []
        for row in rows[: limit - 1]:  # the extra row only tells whether there is a next page
            try:
                loaded.append(self._decrypt(row))
            except Gone:  # erased between the query and the decryption
                continue
        return loaded, total, more

    def by_identifier(
        self, rtype: str, tokens: Sequence[str], owner: str | None = None
    ) -> dict[str, list[Loaded]]:
        """The current ``rtype`` resources (of ``owner``, if given) carrying each blind
        identifier token, oldest first, in one prepared query (``records.identifier_lookup``);
        tokens no resource carries are absent from the answer."""
        wanted = sorted(set(tokens))
        if not wanted:
            return {}
        query, params = identifier_query(rtype, wanted, owner)
        with self._reader() as conn:
            rows = conn.execute(query, params).all()
        found: dict[str, list[Loaded]] = {}
        for row in rows:
            try:
                found.setdefault(row.token, []).append(self._decrypt(row))
            except Gone:  # erased between the query and the decryption
                continue
        return found

    def last_update(self, subject: str) -> str | None:
        """Return the newest lastUpdated of any resource of ``subject``, or None."""
        from sqlalchemy import func

        with self._reader() as conn:
            value = conn.execute(
                select(func.max(record_current.c.ts)).where(record_current.c.subject == subject)
            ).scalar()
        return None if value is None else str(value)

    def current(self, rtype: str, rid: str) -> Version:
        with self._reader() as conn:
            cur = conn.execute(
                select(record_current.c.vid).where(
                    and_(record_current.c.rtype == rtype, record_current.c.rid == rid)
                )
            ).first()
            if cur is None:
                raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
            return self._version(conn, rtype, rid, cur.vid)

    def facts(self, rtype: str, rid: str) -> Facts | None:
        """Return what visibility depends on for ``rtype/rid`` (None if it does not exist):
        its owner, subject, parties and categories, from the current version."""
        return self.facts_many(rtype, [rid]).get(rid)

    def facts_many(self, rtype: str, rids: Sequence[str]) -> dict[str, Facts]:
        """``facts`` of several ``rtype`` resources in two queries; absent ones are left out."""
        wanted = sorted(set(rids))
        if not wanted:
            return {}
        with self._reader() as conn:
            owners = conn.execute(_FACTS_CURRENT, {"rtype": rtype, "rids": wanted}).all()
            if not owners:
                return {}
            rows = conn.execute(
                _FACTS_ROWS, {"rtype": rtype, "rids": [r.rid for r in owners]}
            ).all()
        parties: dict[str, set[tuple[str, str]]] = {}
        categories: dict[str, set[str]] = {}
        for r in rows:
            if r.param == PARTY_PARAM:
                parties.setdefault(r.rid, set()).add((r.system, r.value))
            else:
                categories.setdefault(r.rid, set()).add(r.value)
        return {
            o.rid: Facts(
                o.inst,
                o.subject,
                frozenset(parties.get(o.rid, ())),
                frozenset(categories.get(o.rid, ())),
            )
            for o in owners
        }

    def newest(self, rtype: str) -> str:
        """The newest write time of any ``rtype`` resource ("" if none): a cache key."""
        from sqlalchemy import func

        c = record_current.c
        with self._reader() as conn:
            newest = conn.execute(select(func.max(c.ts)).where(c.rtype == rtype)).scalar()
        return str(newest or "")

    def naming(self, rtype: str, role: str, inst: str) -> list[tuple[str, str]]:
        """Return the current, undeleted ``rtype`` resources naming ``inst`` as party
        ``role``, as (id, owner) pairs."""
        c, s = record_current.c, record_search.c
        with self._reader() as conn:
            rows = conn.execute(
                select(c.rid, c.inst)
                .join_from(record_current, record_search, and_(s.rtype == c.rtype, s.rid == c.rid))
                .where(
                    and_(
                        c.rtype == rtype,
                        c.deleted.is_(False),
                        s.param == PARTY_PARAM,
                        s.system == role,
                        s.value == inst,
                    )
                )
            ).all()
        return [(r.rid, r.inst) for r in rows]

    def load(self, rtype: str, rid: str, vid: int | None = None) -> Loaded:
        """Decrypt a version (the current one by default); Gone for deletes and erasures."""
        with self._reader() as conn:
            if vid is None:
                row = conn.execute(_LOAD_CURRENT, {"rtype": rtype, "rid": rid}).first()
                if row is None:
                    raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
            else:
                row = conn.execute(_LOAD_VERSION, {"rtype": rtype, "rid": rid, "vid": vid}).first()
                if row is None:
                    raise NotFound(
                        f"{rtype}/{rid}/_history/{vid} does not exist", field="vid", value=vid
                    )
        return self._decrypt(row)

    def wait_anchored(self, version: Version, timeout: float = 30.0) -> Version:
        """Wait until ``version`` (written by another request) is anchored; return it then.

        Its writer appends the entry; recovery does after a crash. Waiting longer than
        ``timeout`` means the ledger is not committing: StorageError (503), try again.
        """
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            with self._reader() as conn:
                row = _version_row(conn, version.rtype, version.rid, version.vid)
            if row is None:
                raise StorageError(f"{version.ref} vanished while waiting for its anchoring")
            if row.ledger_index is not None:
                return _version(row)
            if time.monotonic() > deadline:
                raise StorageError(f"{version.ref} is not anchored yet; retry shortly")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _decrypt(self, row: Any) -> Loaded:
        version = _version(row)
        if version.deleted:
            raise Gone(f"{version.ref} is a deletion", ref=version.ref)
        plain = self.keyring.decrypt(version.subject, bytes(row.blob), version.ref.encode())
        body = orjson.loads(plain)  # our own canonical JSON: the fast parser is exact here
        return Loaded(version, body["resource"], bytes.fromhex(body["salt"]))

    def history(self, rtype: str, rid: str) -> list[Version]:
        """Return every version of ``rtype/rid``, newest first."""
        with self._reader() as conn:
            rows = conn.execute(
                select(record_versions)
                .where(and_(record_versions.c.rtype == rtype, record_versions.c.rid == rid))
                .order_by(record_versions.c.vid.desc())
            ).all()
        if not rows:
            raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
        return [_version(r) for r in rows]

    def type_history(
        self, rtype: str, *, since: str | None, limit: int, offset: int, visible: Any = None
    ) -> tuple[list[tuple[Version, dict[str, Any] | None]], bool]:
        """Return versions of every ``rtype`` resource, newest first, with their bodies.

        Deletions come with no body; versions of erased patients are left out (their data is
        gone). Reads ``limit`` rows and returns all but the last, plus whether it exists.
        ``visible`` limits it to resources whose current version the caller may see.
        """
        from sqlalchemy import exists

        from medledger.store.schema import record_keys

        v, k = record_versions.c, record_keys.c
        erased = exists().where(and_(k.subject == v.subject, k.wrapped.is_(None)))
        where = and_(v.rtype == rtype, ~erased)
        if since is not None:
            where = and_(where, v.ts >= since)
        if visible is not None:
            c = record_current.c
            where = and_(
                where,
                exists(select(c.rid).where(and_(c.rtype == v.rtype, c.rid == v.rid, visible))),
            )
        query = (
            select(record_versions)
            .where(where)
            .order_by(v.ts.desc(), v.rid.desc(), v.vid.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._reader() as conn:
            rows = conn.execute(query).all()
        out: list[tuple[Version, dict[str, Any] | None]] = []
        for row in rows[: limit - 1]:
            if row.deleted:
                out.append((_version(row), None))
                continue
            try:
                loaded = self._decrypt(row)
            except Gone:  # erased after the query
                continue
            out.append((loaded.version, loaded.resource))
        return out, len(rows) > limit - 1

    def _version(self, conn: Connection, rtype: str, rid: str, vid: int) -> Version:
        row = _version_row(conn, rtype, rid, vid)
        if row is None:
            raise StorageError(f"current pointer of {rtype}/{rid} names missing version {vid}")
        return _version(row)

    def _reader(self) -> Any:
        """A connection for reads. On PostgreSQL in autocommit: each read is one statement (or
        two, page and total, where a snapshot between them is not needed), so BEGIN and
        ROLLBACK would only add two network round trips."""
        try:
            conn = self.engine.connect()
            if self.engine.dialect.name == "postgresql":
                return conn.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})
            return conn.execution_options(**{READ_ONLY: True})
        except SQLAlchemyError as exc:
            raise StorageError(f"record store: {exc.__class__.__name__}") from exc


def _version_row(conn: Connection, rtype: str, rid: str, vid: int) -> Any:
    return conn.execute(_LOAD_VERSION, {"rtype": rtype, "rid": rid, "vid": vid}).first()


def _version(row: Any) -> Version:
    return Version(
        row.rtype,
        row.rid,
        int(row.vid),
        row.ts,
        bool(row.deleted),
        row.inst,
        row.subject,
        row.payload_hash,
        row.state,
        None if row.ledger_index is None else int(row.ledger_index),
    )
