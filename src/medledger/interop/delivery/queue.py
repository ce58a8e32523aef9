"""The outbound delivery queue in ``interop_deliveries``: durable, idempotent, leased.

A delivery is one resource version (``ref``) going to one recipient endpoint over one channel
(``rest-hook`` or ``mllp``). Its life::

    enqueue ──► pending ──claim──► (leased: still pending, next_attempt_at = now + lease)
                   ▲                    │ delivered() ──► delivered
                   │   failed(), before │ failed() at/after deadline_at, or abandon() ──► dead
                   └────── deadline ────┘                 redeliver() ──► pending

- ``enqueue`` is idempotent on the idempotency key: the same key twice queues once.
- ``claim`` hands out due pending rows and *leases* them by moving ``next_attempt_at`` to
  ``now + lease`` in the same statement, so a second worker does not get them while the first
  is sending. If a worker dies mid-send the lease runs out and another worker retries: nothing
  is lost, and the receiver dedupes on the idempotency key. The lease must exceed the longest
  send (the sender's timeout). PostgreSQL picks the rows with ``FOR UPDATE SKIP LOCKED``, so
  concurrent claimers skip each other's rows instead of queueing, then a guarded
  ``UPDATE … RETURNING`` leases them; SQLite runs the same two statements as its single writer
  (``BEGIN IMMEDIATE``), so nobody else can claim in between.
- ``attempts`` counts the attempts started (claims) since the last enqueue or redelivery.
- ``failed`` schedules the next attempt, never later than ``deadline_at``; a failure at or after
  the deadline makes the row dead (the dead-letter list). A row claimed after its deadline
  (say after downtime) still gets one attempt.
- ``last_error`` holds only an exception type and status code, never a payload.

Times in the API are Unix seconds (floats); the table stores epoch milliseconds. ``day`` is the
creation date in UTC+8 (China Standard Time), the day reports count by.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, Row, case, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from medledger.errors import InputError, StorageError
from medledger.store.engine import begin_write
from medledger.store.schema_interop import interop_deliveries as _t

__all__ = ["CHINA_TZ", "Clock", "Delivery", "DeliveryCounts", "DeliveryQueue", "day_of"]

Clock = Callable[[], float]
CHINA_TZ = timezone(timedelta(hours=8))
MAX_ERROR = 300
_WIDTHS = {"key": 128, "channel": 32, "target": 256, "institution": 256, "ref": 512}
_CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class Delivery:
    """One row of the queue; times are Unix seconds."""

    id: int
    key: str  # idempotency key: the same on every attempt
    channel: str
    target: str
    endpoint: str
    institution: str
    ref: str
    day: str
    created_at: float
    status: str  # pending, delivered, dead
    attempts: int
    next_attempt_at: float
    deadline_at: float
    delivered_at: float | None
    last_error: str | None


@dataclass(frozen=True)
class DeliveryCounts:
    """Deliveries created on one day over one channel, by their status now."""

    queued: int = 0  # all of them
    delivered: int = 0
    pending: int = 0
    dead: int = 0


def day_of(t: float) -> str:
    """Return the UTC+8 date (YYYY-MM-DD) of Unix time ``t``."""
    return datetime.fromtimestamp(t, tz=CHINA_TZ).date().isoformat()


class DeliveryQueue:
    """Outbound deliveries with retries, leases and a dead-letter list (see module docstring)."""

    def __init__(self, engine: Engine, clock: Clock = time.time, *, lease_s: float = 120.0):
        if not (math.isfinite(lease_s) and lease_s > 0):
            raise InputError(
                "delivery lease must be positive", field="lease_s", value=lease_s, expected="> 0"
            )
        self._engine = engine
        self._clock = clock
        self._lease_ms = math.ceil(lease_s * 1000)
        self._pg = engine.dialect.name == "postgresql"
        self._dialect = postgresql if self._pg else sqlite

    @property
    def clock(self) -> Clock:
        """The clock this queue stamps creations and redeliveries with."""
        return self._clock

    def enqueue(
        self,
        key: str,
        channel: str,
        target: str,
        endpoint: str,
        institution: str,
        ref: str,
        deadline_s: float,
    ) -> bool:
        """Queue a delivery due now; False (and nothing changes) if ``key`` is already queued.

        ``deadline_s`` is how long, from now, failed attempts are retried before the delivery
        goes to the dead-letter list.
        """
        values = {"key": key, "channel": channel, "target": target, "institution": institution}
        for name, value in {**values, "ref": ref}.items():
            _check_text(name, value, _WIDTHS[name])
        _check_text("endpoint", endpoint, None)
        _check_span("deadline_s", deadline_s)
        now = self._clock()
        now_ms = _ms(now)
        stmt = (
            self._dialect.insert(_t)
            .values(
                idempotency_key=key, channel=channel, target=target, endpoint=endpoint,
                institution=institution, ref=ref, resource=ref.split("/_history/")[0],
                day=day_of(now), created_at=now_ms,
                status="pending", attempts=0, next_attempt_at=now_ms,
                deadline_at=now_ms + math.ceil(deadline_s * 1000),
            )
            .on_conflict_do_nothing(index_elements=[_t.c.idempotency_key])
            .returning(_t.c.id)
        )  # fmt: skip
        with self._write("enqueue") as conn:
            return conn.execute(stmt).first() is not None

    def claim(self, now: float, limit: int) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries, oldest due first, and return them."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError("claim limit must be ≥ 1", field="limit", value=limit, expected="≥ 1")
        now_ms = _ms(now)
        due = (
            select(_t.c.id)
            .where(_t.c.status == "pending", _t.c.next_attempt_at <= now_ms, ~_waiting())
            .order_by(_t.c.next_attempt_at, _t.c.id)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(skip_locked=True)
        with self._write("claim") as conn:
            # Two statements, not UPDATE … WHERE id IN (SELECT … LIMIT): PostgreSQL may rerun
            # such a subquery per row, and its lock step then skips rows this very statement
            # already updated, so it would claim more than ``limit`` rows.
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            stmt = (
                update(_t)
                .where(_t.c.id.in_(ids), _t.c.status == "pending", _t.c.next_attempt_at <= now_ms)
                .values(next_attempt_at=now_ms + self._lease_ms, attempts=_t.c.attempts + 1)
                .returning(*_t.c)
            )
            rows = conn.execute(stmt).all()
        return sorted((_delivery(r) for r in rows), key=lambda d: d.id)

    def delivered(self, id: int, now: float) -> bool:
        """Record that delivery ``id`` succeeded; False if it was already recorded (or unknown)."""
        stmt = (
            update(_t)
            .where(_t.c.id == id, _t.c.status != "delivered")
            .values(status="delivered", delivered_at=_ms(now))
        )
        with self._write("delivered") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def failed(self, id: int, now: float, error: str, next_delay: float) -> str | None:
        """Record a failed attempt; return the new status (``pending`` or ``dead``).

        The next attempt is due ``next_delay`` seconds from ``now`` but never after the
        deadline; at or past the deadline the delivery is dead. ``error`` must name the
        exception type and status code only. None if the row is not pending (e.g. another
        worker delivered it meanwhile).
        """
        _check_span("next_delay", next_delay, zero=True)
        now_ms = _ms(now)
        next_ms = now_ms + math.ceil(next_delay * 1000)
        past = _t.c.deadline_at <= now_ms
        stmt = (
            update(_t)
            .where(_t.c.id == id, _t.c.status == "pending")
            .values(
                status=case((past, "dead"), else_="pending"),
                next_attempt_at=case(
                    (past, now_ms), (_t.c.deadline_at < next_ms, _t.c.deadline_at), else_=next_ms
                ),
                last_error=_error(error),
            )
            .returning(_t.c.status)
        )
        with self._write("failed") as conn:
            status = conn.execute(stmt).scalar_one_or_none()
        return None if status is None else str(status)

    def abandon(self, id: int, now: float, error: str) -> bool:
        """Move pending delivery ``id`` to the dead-letter list at once (the receiver said stop)."""
        stmt = (
            update(_t)
            .where(_t.c.id == id, _t.c.status == "pending")
            .values(status="dead", next_attempt_at=_ms(now), last_error=_error(error))
        )
        with self._write("abandon") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def dead(self, limit: int = 100) -> list[Delivery]:
        """Return up to ``limit`` dead deliveries, oldest first."""
        stmt = select(_t).where(_t.c.status == "dead").order_by(_t.c.id).limit(max(1, limit))
        with self._read("dead") as conn:
            return [_delivery(r) for r in conn.execute(stmt).all()]

    def redeliver(
        self,
        ids: Iterable[int] | None = None,
        *,
        all_dead: bool = False,
        deadline_s: float | None = None,
    ) -> int:
        """Put dead deliveries back to pending, due now with attempts reset; return how many.

        Give either ``ids`` or ``all_dead=True``. Ids that are not dead are left alone (and not
        counted). The new deadline is ``deadline_s`` from now, or as long as the original one.
        """
        if (ids is None) == (not all_dead):
            raise InputError(
                "redeliver needs either ids or all_dead",
                field="ids",
                value=None if ids is None else "given",
                expected="ids, or all_dead=True, not both",
            )
        if deadline_s is not None:
            _check_span("deadline_s", deadline_s)
        now_ms = _ms(self._clock())
        span = (
            _t.c.deadline_at - _t.c.created_at
            if deadline_s is None
            else math.ceil(deadline_s * 1000)
        )
        values: dict[str, Any] = {
            "status": "pending", "attempts": 0, "next_attempt_at": now_ms,
            "deadline_at": now_ms + span,
        }  # fmt: skip
        base = update(_t).where(_t.c.status == "dead").values(**values)
        wanted = None if ids is None else sorted({_check_id(i) for i in ids})
        total = 0
        with self._write("redeliver") as conn:
            if wanted is None:
                return int(conn.execute(base).rowcount)
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                total += int(conn.execute(base.where(_t.c.id.in_(chunk))).rowcount)
        return total

    def counts(
        self, day_from: str | date, day_to: str | date
    ) -> dict[tuple[str, str], DeliveryCounts]:
        """Count deliveries created from ``day_from`` to ``day_to`` (inclusive, UTC+8 dates).

        Keyed by ``(day, channel)``; only pairs with at least one delivery appear.
        """
        lo, hi = _day("day_from", day_from), _day("day_to", day_to)
        stmt = (
            select(_t.c.day, _t.c.channel, _t.c.status, func.count())
            .where(_t.c.day >= lo, _t.c.day <= hi)
            .group_by(_t.c.day, _t.c.channel, _t.c.status)
        )
        tally: dict[tuple[str, str], dict[str, int]] = {}
        with self._read("counts") as conn:
            for day, channel, status, n in conn.execute(stmt).all():
                per = tally.setdefault((day, channel), {"queued": 0})
                per["queued"] += int(n)
                if status in ("delivered", "pending", "dead"):
                    per[status] = per.get(status, 0) + int(n)
        return {k: DeliveryCounts(**v) for k, v in sorted(tally.items())}

    def next_due(self) -> float | None:
        """Return when the earliest pending delivery that may be sent (not waiting behind an
        older version of its resource) is due (leased ones included), or None."""
        stmt = select(func.min(_t.c.next_attempt_at)).where(_t.c.status == "pending", ~_waiting())
        with self._read("next_due") as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else int(value) / 1000

    def get(self, key: str) -> Delivery | None:
        """Return the delivery with idempotency key ``key``, or None."""
        with self._read("get") as conn:
            row = conn.execute(select(_t).where(_t.c.idempotency_key == key)).one_or_none()
        return None if row is None else _delivery(row)

    @contextmanager
    def _write(self, op: str) -> Iterator[Any]:
        try:
            with begin_write(self._engine) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"delivery queue {op} failed: {type(exc).__name__}") from exc

    @contextmanager
    def _read(self, op: str) -> Iterator[Any]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"delivery queue {op} failed: {type(exc).__name__}") from exc


def _waiting() -> Any:
    """A delivery waits while an older one of the same resource, channel and target is pending
    (in flight or waiting for a retry): the versions of one resource reach one recipient in
    the order they were queued, so a recall never overtakes the report it recalls."""
    older = aliased(_t)
    return exists().where(
        older.c.resource == _t.c.resource,
        older.c.channel == _t.c.channel,
        older.c.target == _t.c.target,
        older.c.status == "pending",
        older.c.id < _t.c.id,
    )


def _delivery(row: Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=int(m["id"]),
        key=m["idempotency_key"],
        channel=m["channel"],
        target=m["target"],
        endpoint=m["endpoint"],
        institution=m["institution"],
        ref=m["ref"],
        day=m["day"],
        created_at=m["created_at"] / 1000,
        status=m["status"],
        attempts=int(m["attempts"]),
        next_attempt_at=m["next_attempt_at"] / 1000,
        deadline_at=m["deadline_at"] / 1000,
        delivered_at=None if m["delivered_at"] is None else m["delivered_at"] / 1000,
        last_error=m["last_error"],
    )


def _ms(t: float) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise InputError("a time must be Unix seconds", field="now", value=t, expected="≥ 0")
    return math.floor(t * 1000)


def _error(error: str) -> str:
    text = str(error)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _check_text(name: str, value: Any, width: int | None) -> None:
    if not isinstance(value, str) or not value or (width is not None and len(value) > width):
        raise InputError(
            f"delivery {name} must be non-empty text",
            field=name,
            value=value,
            expected="non-empty text" + (f" of at most {width} characters" if width else ""),
        )


def _check_span(name: str, value: Any, *, zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise InputError(
            f"delivery {name} must be a number of seconds",
            field=name,
            value=value,
            expected="≥ 0 seconds" if zero else "> 0 seconds",
        )


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("delivery ids are integers", field="ids", value=value, expected="an int")
    return value


def _day(name: str, value: str | date) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise InputError("not a date", field=name, value=value, expected="YYYY-MM-DD")
