"""The message journal's rows: what one message's row holds, and its statements.

``interop.journal.Journal`` reads and writes them; the gateway passes ``Arrival`` (a message
checked and sealed before the write lock) and ``Finish`` (an outcome) in bulk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, func, update

from medledger.store.schema_interop import interop_messages as M

__all__ = [
    "COLUMNS",
    "CST",
    "FINAL",
    "FINISH_DROP",
    "FINISH_KEEP",
    "JOURNAL_SUBJECT",
    "KEEP_RAW",
    "STATUSES",
    "Arrival",
    "Begun",
    "Finish",
    "Message",
    "day_of",
    "message_of",
]

CST = timezone(timedelta(hours=8))
JOURNAL_SUBJECT = hashlib.sha256(b"urn:medledger:interop-journal").hexdigest()
"""The key-ring subject whose data key seals raw messages: shaped like a pseudonym, as the key
ring requires, but no patient's (pseudonyms are keyed HMACs), so no erasure ever shreds it."""
STATUSES = ("received", "stored", "held", "quarantined", "rejected")
FINAL = frozenset({"stored", "rejected"})
"""Statuses after which the raw bytes are dropped: nothing will process the message again."""
KEEP_RAW = frozenset({"received", "held", "quarantined"})


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
        """The parameters of ``FINISH_KEEP``/``FINISH_DROP`` for this outcome."""
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
FINISH_KEEP = (
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
FINISH_DROP = FINISH_KEEP.values(raw_sealed=None)


COLUMNS = (
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


def message_of(row: Any) -> Message:
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
