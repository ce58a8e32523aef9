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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.crypto.canonical import canonical_bytes, stable_canonical_bytes
from medledger.crypto.suite import Suite
from medledger.errors import (
    NotFound,
    PreconditionFailed,
    StateError,
    StorageError,
    WriteConflict,
)
from medledger.ledger.block import format_ts
from medledger.records.store_reads import StoreReads
from medledger.records.versions import Crypter, IndexRow, Loaded, Version, Written
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.schema_records import (
    record_conditional,
    record_current,
    record_search,
    record_versions,
)

SALT_BYTES = 16

# Hot-path statements, built once (building a select costs more than running it on SQLite).

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

_CURRENTS = select(record_current).where(
    tuple_(record_current.c.rtype, record_current.c.rid).in_(bindparam("keys", expanding=True))
)
_CURRENTS_FOR_UPDATE = _CURRENTS.with_for_update()


@dataclass
class _Rows:
    """The rows a group of writes adds, each table's inserted by one statement."""

    conditional: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    current: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, conn: Connection) -> None:
        if self.conditional:
            conn.execute(_INSERT_CONDITIONAL, self.conditional)
        if self.versions:
            conn.execute(_INSERT_VERSION, self.versions)
        if self.current:
            conn.execute(_INSERT_CURRENT, self.current)
        if self.updated:
            conn.execute(_UPDATE_CURRENT, self.updated)
            keys = [{"w_rtype": u["w_rtype"], "w_rid": u["w_rid"]} for u in self.updated]
            conn.execute(_DELETE_SEARCH, keys)
        if self.search:
            conn.execute(_INSERT_SEARCH, self.search)


class RecordStore(StoreReads):
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
        owner: str | None = None,
    ) -> Written:
        """Store a new version of ``rtype/rid`` (``resource`` None = delete) as pending.

        ``if_match`` requires the current version id; ``must_be_new`` refuses an existing id;
        ``conditional`` (a normalized If-None-Exist criteria hash) makes concurrent identical
        conditional creates converge on one resource: the losers get the winner back with
        ``created=False``. ``owner`` is the owning institution access control decided on
        (``""``: the resource did not exist); if that no longer holds, WriteConflict. Returns
        the version and the ledger entry the caller must append.
        """
        # Create the subject's data key first, in the key ring's own transaction: inside ours it
        # would wait for the write lock we hold (SQLite has one writer).
        self.keyring.data_key(subject)
        try:
            with begin_write(self.engine) as conn:
                item = {
                    "rtype": rtype,
                    "rid": rid,
                    "resource": resource,
                    "inst": inst,
                    "subject": subject,
                    "index": index,
                    "if_match": if_match,
                    "must_be_new": must_be_new,
                    "conditional": conditional,
                    "owner": owner,
                }
                return self._write(conn, item, self._now())
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
                return self._write_all(conn, items, self._now())
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

    def _write_all(
        self, conn: Connection, items: Sequence[dict[str, Any]], ts: str
    ) -> list[Written]:
        """Write ``items`` (``write_many``'s) in ``conn``: their current rows read in one
        query and each table's rows inserted in one statement."""
        keys = [(item["rtype"], item["rid"]) for item in items]
        if len(set(keys)) != len(keys):  # one resource twice: each sees the one before
            return [self._write(conn, item, ts) for item in items]
        query = _CURRENTS_FOR_UPDATE if conn.dialect.name == "postgresql" else _CURRENTS
        current = {(r.rtype, r.rid): r for r in conn.execute(query, {"keys": keys})}
        rows = _Rows()
        written = [
            self._prepare(conn, item, current.get(key), ts, rows)
            for item, key in zip(items, keys, strict=True)
        ]
        rows.apply(conn)
        return written

    def _write(self, conn: Connection, item: dict[str, Any], ts: str) -> Written:
        cur_q = _CURRENT_FOR_UPDATE if conn.dialect.name == "postgresql" else _CURRENT
        cur = conn.execute(cur_q, {"rtype": item["rtype"], "rid": item["rid"]}).first()
        rows = _Rows()
        written = self._prepare(conn, item, cur, ts, rows)
        rows.apply(conn)
        return written

    def _prepare(
        self, conn: Connection, item: dict[str, Any], cur: Any, ts: str, rows: _Rows
    ) -> Written:
        """Check one write item against its current row ``cur``, add its rows to ``rows``
        and return the version it becomes (``write``'s rules)."""
        rtype, rid, resource = item["rtype"], item["rid"], item["resource"]
        inst, subject, index = item["inst"], item["subject"], item.get("index", ())
        if_match, must_be_new = item.get("if_match"), item.get("must_be_new", False)
        conditional, owner = item.get("conditional"), item.get("owner")
        if owner is not None and (cur.inst if cur is not None else "") != owner:
            raise WriteConflict(
                f"{rtype}/{rid} changed hands while the request was decided; retry",
                ref=f"{rtype}/{rid}",
            )
        if cur is not None:
            inst = cur.inst  # a resource stays with the institution that created it
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
            rows.conditional.append({"rtype": rtype, "criteria": conditional, "rid": rid})
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
        rows.versions.append(
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
            }
        )
        values = {"vid": vid, "deleted": deleted, "ts": ts, "inst": inst, "subject": subject}
        if cur is None:
            rows.current.append({"rtype": rtype, "rid": rid, **values})
        else:
            rows.updated.append({"w_rtype": rtype, "w_rid": rid, **values})
        if not deleted and index:
            rows.search.extend(
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
                ]
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


__all__ = [
    "Crypter",
    "IndexRow",
    "Loaded",
    "RecordStore",
    "Version",
    "Written",
]
