"""Read the audit trail: one event, searches (newest first), certificates, break-glass lists.

Search parameters (FHIR AuditEvent search, the subset an auditor needs; repeated parameters
are ANDed, comma-separated values ORed):

- ``date``: ``recorded`` against a FHIR date with ``eq`` (default), ``ge``, ``gt``, ``le``,
  ``lt``; a value without an offset is China Standard Time;
- ``agent``: the principal id (``dr.li`` or ``urn:medledger:user|dr.li``);
- ``entity``: a reference; ``Observation/1`` also matches ``Observation/1/_history/n``;
- ``patient``: a pseudonym; ``outcome``: 0, 4 or 8; ``action``: C, R, U, D or E;
- ``break_glass``: true or false;
- ``_count`` (default 50, at most 1000), ``_page_token``, ``_total`` (accurate, none, estimate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, exists, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from medledger.access.audit_event import OWNER_PREFIX
from medledger.access.audit_guard import check_ref
from medledger.access.audit_merkle import inclusion_path, leaf_hashes, merkle_root
from medledger.errors import InputError, NotFound, StateError, StorageError
from medledger.ledger.node import LedgerNode
from medledger.records.paging import decode_page, encode_page, page_count
from medledger.records.search_dates import date_range
from medledger.store.engine import READ_ONLY
from medledger.store.migrate import first_line
from medledger.store.schema_audit import audit_batches, audit_entities, audit_events
from medledger.verify.audit import AUDIT_CERT_FORMAT

__all__ = ["PARAMS", "AuditReads", "instant"]

DEFAULT_COUNT = 50
PARAMS = (
    "date",
    "agent",
    "entity",
    "patient",
    "outcome",
    "action",
    "break_glass",
    "_count",
    "_page_token",
    "_total",
)
_E = audit_events.c
_R = audit_entities.c
_B = audit_batches.c
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_VERSIONED = re.compile(r"[A-Z][A-Za-z]*/[^/]+/_history/[0-9]+")


def instant(value: str, field: str = "since") -> str:
    """Return the earliest stored ``recorded`` time at or after the FHIR date ``value``."""
    found = date_range(value, search=True)
    if found is None or found[0] is None:
        raise InputError(
            f"{field} {value!r} is not a date or instant",
            field=field,
            value=value,
            expected="e.g. 2026-11-22 or 2026-11-22T08:00:00+08:00",
        )
    return found[0]


class AuditReads:
    """Reads of the audit tables on ``engine``; certificates also read ``ledger``."""

    def __init__(self, engine: Engine, ledger: LedgerNode, *, batch_interval: float) -> None:
        self.engine = engine
        self.ledger = ledger
        self.batch_interval = batch_interval

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"audit: database error: {first_line(exc)}") from exc

    def read(self, event_id: str) -> dict[str, Any]:
        """Return the AuditEvent ``event_id`` with ``meta.lastUpdated``; NotFound if absent."""
        with self._read() as conn:
            row = conn.execute(
                select(_E.event, _E.recorded).where(_E.id == _event_id(event_id))
            ).first()
        if row is None:
            raise _not_found(event_id)
        return _resource(row.event, row.recorded)

    def search(
        self,
        params: Sequence[tuple[str, str]],
        *,
        institutions: Collection[str] | None = None,
    ) -> tuple[list[dict[str, Any]], int | None, str | None]:
        """Return (events newest first, total if ``_total=accurate``, next page token).

        ``institutions``, if given, keeps only events of requests made on behalf of one of
        them, or that touched records one of them owns (an institution's auditor sees who
        else read its records); None keeps all.
        """
        where: list[ColumnElement[bool]] = []
        if institutions is not None:
            owned = select(audit_entities.c.seq).where(
                audit_entities.c.ref.in_([f"{OWNER_PREFIX}{i}" for i in sorted(institutions)])
            )
            where.append(or_(_E.institution.in_(sorted(institutions)), _E.seq.in_(owned)))
        count, offset, total = DEFAULT_COUNT, 0, False
        for name, value in params:
            if name == "_count":
                count = page_count(value)
            elif name == "_page_token":
                offset = decode_page(value)
            elif name == "_total":
                total = _total(value)
            elif name in PARAMS:
                where.append(or_(*[_condition(name, v) for v in value.split(",")]))
            else:
                raise InputError(
                    f"AuditEvent has no search parameter {name!r}",
                    field=name,
                    value=value[:80],
                    expected=", ".join(PARAMS),
                )
        query = select(_E.event, _E.recorded).where(*where).order_by(_E.seq.desc())
        with self._read() as conn:
            rows = conn.execute(query.offset(offset).limit(count + 1)).all()
            found = None
            if total:
                counted = select(func.count()).select_from(audit_events).where(*where)
                found = int(conn.execute(counted).scalar() or 0)
        more = len(rows) > count
        events = [_resource(r.event, r.recorded) for r in rows[:count]]
        return events, found, encode_page(offset + count) if more else None

    def break_glass_events(
        self, since: str | None = None, *, principal: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Return the break-glass events (newest first), from ``since`` on if given."""
        return self.list_events(since=since, principal=principal, break_glass=True, limit=limit)

    def list_events(
        self,
        *,
        since: str | None = None,
        principal: str | None = None,
        break_glass: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return events newest first, narrowed by time, principal and break-glass."""
        where: list[ColumnElement[bool]] = []
        if since is not None:
            where.append(_E.recorded >= instant(since))
        if principal is not None:
            where.append(_condition("agent", principal))
        if break_glass:
            where.append(_E.break_glass.is_(True))
        query = select(_E.event, _E.recorded).where(*where).order_by(_E.seq.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_resource(r.event, r.recorded) for r in conn.execute(query)]

    def certificate(self, event_id: str) -> dict[str, Any]:
        """Return the ``medledger-audit-cert/1`` of event ``event_id``.

        StateError while its batch is not anchored yet; NotFound if there is no such event.
        """
        with self._read() as conn:
            row = conn.execute(
                select(_E.seq, _E.event, _E.batch_id).where(_E.id == _event_id(event_id))
            ).first()
            if row is None:
                raise _not_found(event_id)
            batch = None
            if row.batch_id is not None:
                batch = conn.execute(
                    select(_B.state, _B.ledger_index).where(_B.batch_id == row.batch_id)
                ).first()
            if batch is None or batch.state != "anchored" or batch.ledger_index is None:
                raise StateError(
                    f"audit event {event_id} is not anchored yet; retry after the next batch "
                    f"(≤ {self.batch_interval:g} s)",
                    event=event_id,
                    retry_after=self.batch_interval,
                )
            members = conn.execute(
                select(_E.seq, _E.event).where(_E.batch_id == row.batch_id).order_by(_E.seq)
            ).all()
        hasher = self.ledger.hasher
        leaves = leaf_hashes(hasher, [bytes(m.event) for m in members])
        index = [int(m.seq) for m in members].index(int(row.seq))
        return {
            "format": AUDIT_CERT_FORMAT,
            "event": json.loads(row.event),
            "batch": {
                "id": row.batch_id,
                "seq": int(row.seq),
                "leaf_index": index,
                "size": len(leaves),
                "root": merkle_root(hasher, leaves).hex(),
                "path": [h.hex() for h in inclusion_path(hasher, leaves, index)],
            },
            "ledger": self.ledger.certificate(int(batch.ledger_index)),
        }


def _condition(name: str, value: str) -> ColumnElement[bool]:
    if name == "date":
        return _date(value)
    if name == "agent":
        principal = value.rsplit("|", 1)[-1]
        if not _PRINCIPAL.fullmatch(principal):
            raise _bad(name, value, "a user or client id, e.g. dr.li")
        return _E.principal == principal
    if name == "entity":
        return exists().where(and_(_R.seq == _E.seq, _entity(value)))
    if name == "patient":
        pseudonym = value.rsplit("|", 1)[-1]
        if not _PSEUDONYM.fullmatch(pseudonym):
            raise _bad(name, value, "a patient pseudonym: 64 lowercase hex")
        return exists().where(and_(_R.seq == _E.seq, _R.ref == f"pseudonym:{pseudonym}"))
    if name == "outcome":
        if value not in ("0", "4", "8"):
            raise _bad(name, value, "0, 4 or 8")
        return _E.outcome == int(value)
    if name == "action":
        if value not in ("C", "R", "U", "D", "E"):
            raise _bad(name, value, "C, R, U, D or E")
        return _E.action == value
    if value not in ("true", "false"):  # break_glass
        raise _bad(name, value, "true or false")
    return _E.break_glass.is_(value == "true")


def _entity(value: str) -> ColumnElement[bool]:
    ref = check_ref(value, "entity")
    if _VERSIONED.fullmatch(ref) or not ref[:1].isupper():
        return _R.ref == ref
    # Every version of the resource: refs between ".../_history/" and ".../_history0".
    low, high = f"{ref}/_history/", f"{ref}/_history0"
    return or_(_R.ref == ref, and_(_R.ref >= low, _R.ref < high))


def _date(value: str) -> ColumnElement[bool]:
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    found = date_range(text, search=True)
    if prefix not in ("eq", "ge", "gt", "le", "lt") or found is None:
        raise _bad("date", value, "a FHIR date with an optional eq, ge, gt, le or lt prefix")
    low, high = found
    at = _E.recorded
    # A bound of None lies outside years 1-9999: the comparison with it is always true.
    if prefix == "ge":
        return at >= low if low else at.is_not(None)
    if prefix == "gt":
        return at >= high if high else at.is_(None)
    if prefix == "lt":
        return at < low if low else at.is_(None)
    if prefix == "le":
        return at < high if high else at.is_not(None)
    return and_(at >= low if low else at.is_not(None), at < high if high else at.is_not(None))


def _total(value: str) -> bool:
    if value not in ("accurate", "none", "estimate"):
        raise _bad("_total", value, "accurate, none or estimate")
    return value == "accurate"


def _event_id(value: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise NotFound(
            f"no audit event {str(value)[:80]!r}",
            field="id",
            value=str(value)[:80],
            expected="an audit event id (a lowercase UUID)",
        )
    return value


def _not_found(event_id: str) -> NotFound:
    return NotFound(
        f"no audit event {event_id}", field="id", value=event_id, expected="an audit event id"
    )


def _bad(name: str, value: str, expected: str) -> InputError:
    return InputError(
        f"bad value for search parameter {name}", field=name, value=value[:80], expected=expected
    )


def _resource(data: bytes, recorded: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(data)
    event["meta"] = {"lastUpdated": recorded}
    return event
