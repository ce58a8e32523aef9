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

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.crypto.suite import Suite
from medledger.errors import InputError, NotFound, StateError, StorageError
from medledger.interop.journal_rows import (
    COLUMNS,
    CST,
    FINAL,
    FINISH_DROP,
    FINISH_KEEP,
    JOURNAL_SUBJECT,
    KEEP_RAW,
    STATUSES,
    Arrival,
    Begun,
    Finish,
    Message,
    day_of,
    message_of,
)
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

    def begin(self, **fields: Any) -> Begun:
        """Record a message before processing it (durable on return), or find its row;
        ``fields`` are ``arrival``'s (interface, institution, source, control_id,
        message_type, raw).

        A second arrival of the same identity increments ``duplicates`` and returns the
        existing row; ``same_bytes`` tells whether it carried the same content.
        """
        return self.begin_many([self.arrival(**fields)])[0]

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
                            insert(M).returning(*COLUMNS, sort_by_parameter_order=True),
                            [a.values for a in new],
                        ).all()
                    inserted = {
                        a.key: Begun(message_of(row), new=True)
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
                row = c.execute(insert(M).values(**arrival.values).returning(*COLUMNS)).one()
        except IntegrityError:  # a concurrent twin inserted it first
            twin = self._find(c, arrival.key)
            if twin is None:
                raise StateError("message journal conflict; retry", field="control_id") from None
            return self._again(c, twin, arrival.raw)
        return Begun(message_of(row), new=True)

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
                rows = [o.params(i, now) for i, o in outcomes if (o.status not in KEEP_RAW) == drop]
                if rows:
                    c.execute(FINISH_DROP if drop else FINISH_KEEP, rows)
            found = {
                r.id: message_of(r) for r in c.execute(select(*COLUMNS).where(M.c.id.in_(ids)))
            }
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
                select(*COLUMNS).where(M.c.status.in_(statuses)).order_by(M.c.id).limit(limit)
            ).all()
        return [message_of(r) for r in rows]

    def between(self, since: str, until: str, interface: str | None = None) -> list[Message]:
        """Messages first received on days ``since``..``until`` (YYYY-MM-DD, inclusive)."""
        query = select(*COLUMNS).where(M.c.day >= since, M.c.day <= until)
        if interface is not None:
            query = query.where(M.c.interface == interface)
        with self._read() as c:
            return [message_of(r) for r in c.execute(query.order_by(M.c.id)).all()]

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
            .returning(*COLUMNS)
        ).one()
        return Begun(message_of(fresh), new=False, same_bytes=same)

    @staticmethod
    def _row(c: Connection, message_id: int) -> Message | None:
        """The message with id ``message_id``, None if there is none."""
        row = c.execute(select(*COLUMNS).where(M.c.id == message_id)).first()
        return None if row is None else message_of(row)

    @staticmethod
    def _find(c: Connection, key: tuple[str, str, str]) -> Any:
        institution, source, control_id = key
        return c.execute(
            select(*COLUMNS, M.c.salt).where(
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


def _aad(key: tuple[str, str, str]) -> bytes:
    """Binds a sealed message to its identity: a blob moved to another row does not open."""
    return ("interop-journal\x00" + "\x00".join(key)).encode()
