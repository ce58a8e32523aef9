"""The record store: encrypted, append-only versions with their ledger anchoring.

A write stores the new version in state ``pending`` together with the ledger entry that will
certify it (an outbox row), in one transaction with the current pointer and the search rows.
The ledger's commit hook (``records.anchoring.anchor_hook``) marks it ``anchored`` inside the
block's own transaction, so a version is anchored exactly when its entry is durably in the
log (docs/decisions.md D15). ``pending()`` lists what recovery must still append.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.crypto.canonical import canonical_bytes, stable_canonical_bytes
from medledger.crypto.suite import Suite
from medledger.errors import (
    Gone,
    NotFound,
    PreconditionFailed,
    StateError,
    StorageError,
    WriteConflict,
)
from medledger.ledger.block import format_ts
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.schema_records import (
    record_conditional,
    record_current,
    record_search,
    record_versions,
)

SALT_BYTES = 16

# Hot-path statements, built once (building a select costs more than running it on SQLite).
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
_KEY = and_(record_current.c.rtype == bindparam("rtype"), record_current.c.rid == bindparam("rid"))
_CURRENT = select(record_current).where(_KEY)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()
_INSERT_CONDITIONAL = insert(record_conditional)
_INSERT_VERSION = insert(record_versions)
_INSERT_CURRENT = insert(record_current)
_INSERT_SEARCH = insert(record_search)
_UPDATE_CURRENT = update(record_current).where(
    and_(record_current.c.rtype == bindparam("w_rtype"), record_current.c.rid == bindparam("w_rid"))
)
_DELETE_SEARCH = delete(record_search).where(
    and_(record_search.c.rtype == bindparam("w_rtype"), record_search.c.rid == bindparam("w_rid"))
)
_LOAD_VERSION = select(record_versions).where(
    and_(
        record_versions.c.rtype == bindparam("rtype"),
        record_versions.c.rid == bindparam("rid"),
        record_versions.c.vid == bindparam("vid"),
    )
)


class Crypter(Protocol):
    """What the store needs from the key ring (records.keyring.KeyRing)."""

    def encrypt(self, subject: str, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, subject: str, blob: bytes, aad: bytes) -> bytes: ...

    def data_key(self, subject: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One search value of the current version (see records.search_params)."""

    param: str
    kind: str
    system: str | None
    value: str
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True, slots=True)
class Version:
    rtype: str
    rid: str
    vid: int
    ts: str
    deleted: bool
    inst: str
    subject: str
    payload_hash: str
    state: str
    ledger_index: int | None

    @property
    def ref(self) -> str:
        return f"{self.rtype}/{self.rid}/_history/{self.vid}"


@dataclass(frozen=True, slots=True)
class Written:
    """A write's outcome: the version and the ledger entry to append (None if nothing new)."""

    version: Version
    entry: bytes | None
    created: bool
    resource: dict[str, Any] | None = None  # the stored body (id and meta set), if written


@dataclass(frozen=True, slots=True)
class Loaded:
    version: Version
    resource: dict[str, Any]
    salt: bytes


class RecordStore:
    """Versions, current pointers and search rows on the node's engine."""

    def __init__(self, engine: Engine, keyring: Crypter, suite: Suite) -> None:
        self.engine = engine
        self.keyring = keyring
        self.suite = suite
        self._clock_lock = threading.Lock()
        self._last_ts = ""

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any] | None,
        *,
        inst: str,
        subject: str,
        index: Sequence[IndexRow] = (),
        if_match: int | None = None,
        must_be_new: bool = False,
        conditional: str | None = None,
    ) -> Written:
        """Store a new version of ``rtype/rid`` (``resource`` None = delete) as pending.

        ``if_match`` requires the current version id; ``must_be_new`` refuses an existing id;
        ``conditional`` (a normalized If-None-Exist criteria hash) makes concurrent identical
        conditional creates converge on one resource: the losers get the winner back with
        ``created=False``. Returns the version and the ledger entry the caller must append.
        """
        # Create the subject's data key first, in the key ring's own transaction: inside ours it
        # would wait for the write lock we hold (SQLite has one writer).
        self.keyring.data_key(subject)
        try:
            with begin_write(self.engine) as conn:
                return self._write(
                    conn,
                    rtype,
                    rid,
                    resource,
                    self._now(),
                    inst,
                    subject,
                    index,
                    if_match,
                    must_be_new,
                    conditional,
                )
        except IntegrityError as exc:
            if conditional is not None:
                winner = self.conditional_winner(rtype, conditional)
                if winner is not None:
                    return Written(self.current(rtype, winner), None, False)
            raise StateError(
                f"{rtype}/{rid} was written concurrently; retry with If-Match",
                ref=f"{rtype}/{rid}",
            ) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"record store: {exc.__class__.__name__}") from exc

    def write_many(self, items: Sequence[dict[str, Any]]) -> list[Written]:
        """Store several versions in ONE transaction: all of them, or none (a FHIR transaction).

        Each item holds ``write``'s arguments as keywords (rtype, rid, resource, inst, subject,
        index, if_match, must_be_new, conditional). Raise the first item's error and write
        nothing; a concurrent conflict is a WriteConflict.
        """
        for item in items:
            self.keyring.data_key(item["subject"])  # outside our write lock (see write)
        try:
            with begin_write(self.engine) as conn:
                ts = self._now()
                return [
                    self._write(
                        conn,
                        item["rtype"],
                        item["rid"],
                        item["resource"],
                        ts,
                        item["inst"],
                        item["subject"],
                        item.get("index", ()),
                        item.get("if_match"),
                        item.get("must_be_new", False),
                        item.get("conditional"),
                    )
                    for item in items
                ]
        except IntegrityError as exc:
            raise WriteConflict(
                "a resource in the transaction was written concurrently; retry"
            ) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"record store: {exc.__class__.__name__}") from exc

    def _now(self) -> str:
        """The time of a write, taken inside its transaction and never earlier than the last.

        On SQLite writers are serialised, so versions become visible in ``ts`` order and a
        client polling ``_history?_since=`` misses none. On PostgreSQL concurrent transactions
        may commit out of ``ts`` order: poll with an overlap of a few seconds (docs).
        """
        with self._clock_lock:
            now = max(format_ts(time.time()), self._last_ts)
            self._last_ts = now
        return now

    def _write(
        self,
        conn: Connection,
        rtype: str,
        rid: str,
        resource: dict[str, Any] | None,
        ts: str,
        inst: str,
        subject: str,
        index: Sequence[IndexRow],
        if_match: int | None,
        must_be_new: bool,
        conditional: str | None,
    ) -> Written:
        cur_q = _CURRENT_FOR_UPDATE if conn.dialect.name == "postgresql" else _CURRENT
        cur = conn.execute(cur_q, {"rtype": rtype, "rid": rid}).first()
        if cur is not None and must_be_new:
            raise StateError(f"{rtype}/{rid} already exists", ref=f"{rtype}/{rid}")
        if if_match is not None and (cur is None or cur.vid != if_match):
            have = "none" if cur is None else f'W/"{cur.vid}"'
            raise PreconditionFailed(
                f"If-Match wants version {if_match} of {rtype}/{rid}, the current one is {have}",
                ref=f"{rtype}/{rid}",
            )
        if resource is None:
            if cur is None:
                raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
            if cur.deleted:  # deleting a deleted resource changes nothing (FHIR: idempotent)
                return Written(self._version(conn, rtype, rid, cur.vid), None, False)
        if conditional is not None:
            conn.execute(_INSERT_CONDITIONAL, {"rtype": rtype, "criteria": conditional, "rid": rid})
        vid = 1 if cur is None else cur.vid + 1
        ref = f"{rtype}/{rid}/_history/{vid}"
        salt = os.urandom(SALT_BYTES)
        if resource is None:
            body: dict[str, Any] = {"resourceType": rtype, "id": rid, "deleted": True}
            kind = "record.delete"
        else:
            meta = dict(resource.get("meta") or {})
            meta.update(versionId=str(vid), lastUpdated=ts)
            body = {**resource, "id": rid, "meta": meta}
            kind = "record.put"
        canonical = stable_canonical_bytes(body)
        payload_hash = self.suite.hash(salt + canonical).hex()
        blob = self.keyring.encrypt(
            subject, canonical_bytes({"resource": body, "salt": salt.hex()}), ref.encode()
        )
        entry = canonical_bytes(
            {
                "v": 1,
                "type": kind,
                "inst": inst,
                "ts": ts,
                "ref": ref,
                "subject": subject,
                "payload_hash": payload_hash,
            }
        )
        deleted = resource is None
        conn.execute(
            _INSERT_VERSION,
            {
                "rtype": rtype,
                "rid": rid,
                "vid": vid,
                "ts": ts,
                "deleted": deleted,
                "inst": inst,
                "subject": subject,
                "blob": blob,
                "payload_hash": payload_hash,
                "entry": entry,
                "state": "pending",
                "ledger_index": None,
            },
        )
        values = {"vid": vid, "deleted": deleted, "ts": ts, "inst": inst, "subject": subject}
        if cur is None:
            conn.execute(_INSERT_CURRENT, {"rtype": rtype, "rid": rid, **values})
        else:
            conn.execute(_UPDATE_CURRENT, {"w_rtype": rtype, "w_rid": rid, **values})
            conn.execute(_DELETE_SEARCH, {"w_rtype": rtype, "w_rid": rid})
        if not deleted and index:
            conn.execute(
                _INSERT_SEARCH,
                [
                    {
                        "rtype": rtype,
                        "rid": rid,
                        "param": r.param,
                        "kind": r.kind,
                        "system": r.system,
                        "value": r.value,
                        "low": r.low,
                        "high": r.high,
                    }
                    for r in index
                ],
            )
        version = Version(
            rtype, rid, vid, ts, deleted, inst, subject, payload_hash, "pending", None
        )
        return Written(version, entry, True, None if deleted else body)

    def forget_conditional(self, rtype: str, criteria: str, rid: str) -> None:
        """Remove a conditional-create row that still names ``rid`` (it no longer matches)."""
        t = record_conditional.c
        with begin_write(self.engine) as conn:
            conn.execute(
                delete(record_conditional).where(
                    and_(t.rtype == rtype, t.criteria == criteria, t.rid == rid)
                )
            )

    def conditional_winner(self, rtype: str, criteria: str) -> str | None:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = conn.execute(
                select(record_conditional.c.rid).where(
                    and_(
                        record_conditional.c.rtype == rtype,
                        record_conditional.c.criteria == criteria,
                    )
                )
            ).first()
        return None if row is None else str(row.rid)

    # -- anchoring ---------------------------------------------------------------------------

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

    def drop_search_rows(self, subject: str) -> int:
        """Delete the search rows of every resource of ``subject`` (after an erasure)."""
        c, r = record_current.c, record_search.c
        owned = (
            select(c.rid)
            .where(and_(c.subject == subject, c.rtype == r.rtype, c.rid == r.rid))
            .exists()
        )
        with begin_write(self.engine) as conn:
            result = conn.execute(delete(record_search).where(owned))
        return int(result.rowcount or 0)

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
    ) -> tuple[list[Loaded], int | None, bool]:
        """Return the decrypted current versions of ``rtype`` matching every condition.

        ``limit`` rows are read and all but the last decrypted; the third value says whether
        that last one exists (a next page).
        One query for the page (current pointers joined to their versions), one for the total.
        Deleted resources and resources of erased patients are never returned or counted.
        ``selective``: a condition matches few resources (a patient, an identifier), so the
        query should start from the search index, not walk every resource in time order.
        """
        from sqlalchemy import exists, func, literal_column

        from medledger.store.schema import record_keys

        c, k = record_current.c, record_keys.c
        erased = exists().where(and_(k.subject == c.subject, k.wrapped.is_(None)))
        where = and_(c.rtype == rtype, c.deleted.is_(False), ~erased, *conditions)
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
        self, rtype: str, *, since: str | None, limit: int, offset: int
    ) -> tuple[list[tuple[Version, dict[str, Any] | None]], bool]:
        """Return versions of every ``rtype`` resource, newest first, with their bodies.

        Deletions come with no body; versions of erased patients are left out (their data is
        gone). Reads ``limit`` rows and returns all but the last, plus whether it exists.
        """
        from sqlalchemy import exists

        from medledger.store.schema import record_keys

        v, k = record_versions.c, record_keys.c
        erased = exists().where(and_(k.subject == v.subject, k.wrapped.is_(None)))
        where = and_(v.rtype == rtype, ~erased)
        if since is not None:
            where = and_(where, v.ts >= since)
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


__all__ = [
    "Crypter",
    "IndexRow",
    "Loaded",
    "RecordStore",
    "Version",
    "Written",
]
