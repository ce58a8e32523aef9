"""The message journal: one row per distinct inbound message, the gateway's memory.

A message is identified by (sending institution, source, control id): MSH-10 with the sending
application and facility for HL7 v2, the row key for a SQL view, the business key for FHIR.
``begin`` records it *before* any processing, durably, with its raw bytes sealed (AEAD under a
data key of the node's key ring, so a master-key rotation re-wraps it and nothing is readable
from the database alone). ``finish`` records the outcome. A redelivery of a finished message
is counted (``duplicates``) and answered with the same outcome, never processed again; a
redelivery of a message whose processing was cut off (status ``received``: the node crashed
before its ACK) is processed again, which is safe because every write is conditional on a
business key.

The raw bytes are kept only while the message may be processed again (received, held,
quarantined) and dropped once it is stored. ``raw_hash`` is ``H(salt ‖ raw)``: it goes on the
ledger without letting anyone confirm a guessed message.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.crypto.suite import Suite
from medledger.errors import InputError, NotFound, StateError, StorageError
from medledger.records.keyring import KeyRing
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.migrate import first_line
from medledger.store.schema_interop import interop_messages as M

__all__ = [
    "CST",
    "FINAL",
    "JOURNAL_SUBJECT",
    "STATUSES",
    "Arrival",
    "Begun",
    "Finish",
    "Journal",
    "Message",
    "day_of",
]

CST = timezone(timedelta(hours=8))
JOURNAL_SUBJECT = hashlib.sha256(b"urn:medledger:interop-journal").hexdigest()
"""The key-ring subject whose data key seals raw messages: shaped like a pseudonym, as the key
ring requires, but no patient's (pseudonyms are keyed HMACs), so no erasure ever shreds it."""
STATUSES = ("received", "stored", "held", "quarantined", "rejected")
FINAL = frozenset({"stored", "rejected"})
"""Statuses after which the raw bytes are dropped: nothing will process the message again."""
_KEEP_RAW = frozenset({"received", "held", "quarantined"})


def day_of(epoch_ms: int) -> str:
    """The hospital's calendar day (UTC+8) of an instant, as reconciliation groups them."""
    return datetime.fromtimestamp(epoch_ms / 1000, CST).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Message:
    """One journal row (without the sealed bytes)."""

    id: int
    interface: str
    institution: str
    source: str
    control_id: str
    message_type: str
    day: str
    received_at: int
    status: str
    ack_code: str | None
    duplicates: int
    raw_hash: str
    reason: str | None
    mismatch: str | None
    unmapped: tuple[str, ...]
    refs: tuple[str, ...]
    ledger_index: int | None

    def to_json(self) -> dict[str, Any]:
        """The row as the API and CLI show it (no payload, no patient data)."""
        return {
            "id": self.id,
            "interface": self.interface,
            "institution": self.institution,
            "source": self.source,
            "control_id": self.control_id,
            "message_type": self.message_type,
            "day": self.day,
            "received_at": datetime.fromtimestamp(self.received_at / 1000, UTC).isoformat(),
            "status": self.status,
            "ack_code": self.ack_code,
            "duplicates": self.duplicates,
            "raw_hash": self.raw_hash,
            "reason": self.reason,
            "mismatch": self.mismatch,
            "unmapped": list(self.unmapped),
            "refs": list(self.refs),
            "ledger_index": self.ledger_index,
        }


@dataclass(frozen=True)
class Begun:
    """What ``begin`` found: the row, and whether it is new, a duplicate of a finished
    message (answer as before), or a restart of one cut off before its outcome."""

    message: Message
    new: bool
    same_bytes: bool = True  # False: the control id was reused for different content

    @property
    def finished(self) -> bool:
        return self.message.status != "received"


@dataclass(frozen=True)
class Arrival:
    """A message checked and sealed for ``Journal.begin_many``."""

    key: tuple[str, str, str]  # (institution, source, control id)
    raw: bytes
    values: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    """What processing made of a message, for ``Journal.finish_many``."""

    status: str
    ack_code: str | None
    reason: str | None = None
    mismatch: str | None = None
    unmapped: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    ledger_index: int | None = None

    def params(self, message_id: int, now_ms: int) -> dict[str, Any]:
        """The parameters of ``_FINISH_KEEP``/``_FINISH_DROP`` for this outcome."""
        return {
            "m_id": message_id,
            "m_status": self.status,
            "m_ack": self.ack_code,
            "m_acked": now_ms if self.ack_code else None,
            "m_reason": self.reason[:1000] if self.reason else None,
            "m_mismatch": self.mismatch,
            "m_unmapped": json.dumps(list(self.unmapped)) if self.unmapped else None,
            "m_refs": json.dumps(list(self.refs)) if self.refs else None,
            "m_index": self.ledger_index,
        }


# What the sender was told first stays: a later outcome (a held message quarantined on
# retry) changes the status, not the answer already given. Final outcomes drop the raw bytes.
_FINISH_KEEP = (
    update(M)
    .where(M.c.id == bindparam("m_id"))
    .values(
        status=bindparam("m_status"),
        ack_code=func.coalesce(M.c.ack_code, bindparam("m_ack")),
        acked_at=func.coalesce(M.c.acked_at, bindparam("m_acked")),
        reason=bindparam("m_reason"),
        mismatch=bindparam("m_mismatch"),
        unmapped=bindparam("m_unmapped"),
        refs=bindparam("m_refs"),
        ledger_index=bindparam("m_index"),
    )
)
_FINISH_DROP = _FINISH_KEEP.values(raw_sealed=None)


class Journal:
    """Read and write the journal on one engine; raw bytes sealed with ``keyring``."""

    def __init__(
        self,
        engine: Engine,
        keyring: KeyRing,
        suite: Suite,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.suite = suite
        self.clock = clock

    # -- writing -----------------------------------------------------------------------------

    def begin(
        self,
        *,
        interface: str,
        institution: str,
        source: str,
        control_id: str,
        message_type: str,
        raw: bytes,
    ) -> Begun:
        """Record a message before processing it (durable on return), or find its row.

        A second arrival of the same identity increments ``duplicates`` and returns the
        existing row; ``same_bytes`` tells whether it carried the same content.
        """
        arrival = self.arrival(
            interface=interface,
            institution=institution,
            source=source,
            control_id=control_id,
            message_type=message_type,
            raw=raw,
        )
        return self.begin_many([arrival])[0]

    def arrival(
        self,
        *,
        interface: str,
        institution: str,
        source: str,
        control_id: str,
        message_type: str,
        raw: bytes,
    ) -> Arrival:
        """Check and seal one message for ``begin_many`` (outside any write lock)."""
        for name, value, limit in (
            ("interface", interface, 128),
            ("institution", institution, 256),
            ("source", source, 256),
            ("control_id", control_id, 256),
            ("message_type", message_type, 32),
        ):
            if not value or len(value) > limit:
                raise InputError(
                    f"{name} must be 1-{limit} characters",
                    field=name,
                    value=value[:80] if value else value,
                    expected=f"1-{limit} characters",
                )
        now = int(self.clock() * 1000)
        salt = os.urandom(16)
        key = (institution, source, control_id)
        return Arrival(
            key,
            raw,
            {
                "interface": interface,
                "institution": institution,
                "source": source,
                "control_id": control_id,
                "message_type": message_type,
                "day": day_of(now),
                "received_at": now,
                "status": "received",
                "duplicates": 0,
                "salt": salt,
                "raw_hash": self._hash(salt, raw),
                "raw_sealed": self.keyring.encrypt(JOURNAL_SUBJECT, raw, _aad(key)),
            },
        )

    def begin_many(self, arrivals: Sequence[Arrival]) -> list[Begun]:
        """``begin`` for several messages in one durable transaction (their identities must
        differ); each is recorded, or found as a duplicate, as ``begin`` would."""
        if len({a.key for a in arrivals}) != len(arrivals):
            raise InputError("two arrivals share an identity", field="control_id")
        if not arrivals:
            return []
        with self._write() as c:
            known = {
                (r.institution, r.source, r.control_id)
                for r in c.execute(
                    select(M.c.institution, M.c.source, M.c.control_id).where(
                        tuple_(M.c.institution, M.c.source, M.c.control_id).in_(
                            [a.key for a in arrivals]
                        )
                    )
                )
            }
            new = [a for a in arrivals if a.key not in known]
            inserted: dict[tuple[str, str, str], Begun] = {}
            if new:
                try:
                    with c.begin_nested():
                        rows = c.execute(
                            insert(M).returning(*_COLUMNS, sort_by_parameter_order=True),
                            [a.values for a in new],
                        ).all()
                    inserted = {
                        a.key: Begun(_message(row), new=True)
                        for a, row in zip(new, rows, strict=True)
                    }
                except IntegrityError:  # a concurrent twin of one: each on its own below
                    inserted = {}
            return [inserted.get(a.key) or self._begin_in(c, a) for a in arrivals]

    def _begin_in(self, c: Connection, arrival: Arrival) -> Begun:
        found = self._find(c, arrival.key)
        if found is not None:
            return self._again(c, found, arrival.raw)
        try:
            with c.begin_nested():
                row = c.execute(insert(M).values(**arrival.values).returning(*_COLUMNS)).one()
        except IntegrityError:  # a concurrent twin inserted it first
            twin = self._find(c, arrival.key)
            if twin is None:
                raise StateError("message journal conflict; retry", field="control_id") from None
            return self._again(c, twin, arrival.raw)
        return Begun(_message(row), new=True)

    def finish(self, message_id: int, **outcome: Any) -> Message:
        """Record the outcome of processing (durable on return); raw bytes dropped if final.
        ``outcome``: ``status``, ``ack_code`` and optionally ``reason``, ``mismatch``,
        ``unmapped``, ``refs``, ``ledger_index`` (see ``Finish``)."""
        return self.finish_many([(message_id, Finish(**outcome))])[0]

    def finish_many(self, outcomes: Sequence[tuple[int, Finish]]) -> list[Message]:
        """``finish`` for several messages in one durable transaction."""
        for _, o in outcomes:
            if o.status not in STATUSES or o.status == "received":
                raise InputError(
                    "unknown outcome status", field="status", value=o.status, expected=str(STATUSES)
                )
        now = int(self.clock() * 1000)
        ids = [message_id for message_id, _ in outcomes]
        with self._write() as c:
            for drop in (True, False):
                rows = [
                    o.params(i, now) for i, o in outcomes if (o.status not in _KEEP_RAW) == drop
                ]
                if rows:
                    c.execute(_FINISH_DROP if drop else _FINISH_KEEP, rows)
            found = {r.id: _message(r) for r in c.execute(select(*_COLUMNS).where(M.c.id.in_(ids)))}
        missing = [i for i in ids if i not in found]
        if missing:  # the transaction is committed: the others' outcomes stand
            raise StateError(f"no journal message {missing[0]}", field="id", value=missing[0])
        return [found[i] for i in ids]

    # -- reading -----------------------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """One message by id; ``NotFound`` if the journal has no such message."""
        with self._read() as c:
            found = self._row(c, message_id)
        if found is None:
            raise NotFound(
                f"no journal message {message_id}",
                field="id",
                value=message_id,
                expected="the id of a journalled message",
            )
        return found

    def raw(self, message: Message) -> bytes:
        """The message's original bytes, while they are kept (received, held, quarantined)."""
        with self._read() as c:
            blob = c.execute(select(M.c.raw_sealed).where(M.c.id == message.id)).scalar()
        if blob is None:
            raise StateError(
                f"message {message.id} is {message.status}: its bytes are no longer kept",
                field="id",
                value=message.id,
                expected="a received, held or quarantined message",
            )
        key = (message.institution, message.source, message.control_id)
        return self.keyring.decrypt(JOURNAL_SUBJECT, blob, _aad(key))

    def by_status(self, *statuses: str, limit: int = 1000) -> list[Message]:
        """Messages in the given statuses, oldest first (the worklist: held, quarantined)."""
        with self._read() as c:
            rows = c.execute(
                select(*_COLUMNS).where(M.c.status.in_(statuses)).order_by(M.c.id).limit(limit)
            ).all()
        return [_message(r) for r in rows]

    def between(self, since: str, until: str, interface: str | None = None) -> list[Message]:
        """Messages first received on days ``since``..``until`` (YYYY-MM-DD, inclusive)."""
        query = select(*_COLUMNS).where(M.c.day >= since, M.c.day <= until)
        if interface is not None:
            query = query.where(M.c.interface == interface)
        with self._read() as c:
            return [_message(r) for r in c.execute(query.order_by(M.c.id)).all()]

    def count(self) -> int:
        """How many messages the journal holds."""
        with self._read() as c:
            return int(c.execute(select(func.count()).select_from(M)).scalar() or 0)

    # -- helpers -----------------------------------------------------------------------------

    def _hash(self, salt: bytes, raw: bytes) -> str:
        return self.suite.hash(salt + raw).hex()

    def _again(self, c: Connection, row: Any, raw: bytes) -> Begun:
        same = self._hash(bytes(row.salt), raw) == row.raw_hash
        fresh = c.execute(
            update(M)
            .where(M.c.id == row.id)
            .values(duplicates=M.c.duplicates + 1)
            .returning(*_COLUMNS)
        ).one()
        return Begun(_message(fresh), new=False, same_bytes=same)

    @staticmethod
    def _row(c: Connection, message_id: int) -> Message | None:
        """The message with id ``message_id``, None if there is none."""
        row = c.execute(select(*_COLUMNS).where(M.c.id == message_id)).first()
        return None if row is None else _message(row)

    @staticmethod
    def _find(c: Connection, key: tuple[str, str, str]) -> Any:
        institution, source, control_id = key
        return c.execute(
            select(*_COLUMNS, M.c.salt).where(
                M.c.institution == institution,
                M.c.source == source,
                M.c.control_id == control_id,
            )
        ).first()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with begin_write(self.engine) as c:
                yield c
        except SQLAlchemyError as exc:
            raise StorageError(f"message journal: {first_line(exc)}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as c:
                yield c
        except SQLAlchemyError as exc:
            raise StorageError(f"message journal: {first_line(exc)}") from exc


_COLUMNS = (
    M.c.id,
    M.c.interface,
    M.c.institution,
    M.c.source,
    M.c.control_id,
    M.c.message_type,
    M.c.day,
    M.c.received_at,
    M.c.status,
    M.c.ack_code,
    M.c.duplicates,
    M.c.raw_hash,
    M.c.reason,
    M.c.mismatch,
    M.c.unmapped,
    M.c.refs,
    M.c.ledger_index,
)


def _aad(key: tuple[str, str, str]) -> bytes:
    """Binds a sealed message to its identity: a blob moved to another row does not open."""
    return ("interop-journal\x00" + "\x00".join(key)).encode()


def _message(row: Any) -> Message:
    return Message(
        id=int(row.id),
        interface=row.interface,
        institution=row.institution,
        source=row.source,
        control_id=row.control_id,
        message_type=row.message_type,
        day=row.day,
        received_at=int(row.received_at),
        status=row.status,
        ack_code=row.ack_code,
        duplicates=int(row.duplicates or 0),
        raw_hash=row.raw_hash,
        reason=row.reason,
        mismatch=row.mismatch,
        unmapped=tuple(json.loads(row.unmapped)) if row.unmapped else (),
        refs=tuple(json.loads(row.refs)) if row.refs else (),
        ledger_index=row.ledger_index,
    )
