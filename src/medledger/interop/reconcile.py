"""Reconciliation: per interface and per day, what came in, what was stored and answered,
what went out, and every gap item by item.

Counts per (day, interface), the day being the hospital's (UTC+8) day of first arrival:

- ``received``: arrivals, redeliveries included; ``distinct``: messages (identities);
- ``duplicates``: redeliveries suppressed (answered again, not processed again);
- ``stored``, ``held`` (waiting for a mapping or for their order), ``quarantined`` (AE: bad
  content or a mismatch), ``rejected`` (AR: unreadable or not ours);
- ``acknowledged``: messages whose ACK outcome is recorded;
- ``unfinished``: journalled but cut off before an outcome (the node stopped before its
  ACK: the sender resends, and the redelivery completes it);
- ``lost``: answered AA but nothing kept (neither stored, held nor quarantined): must be 0;
  a message answered AA while held and quarantined later is a gap, listed below;
- ``mismatches``: results not linkable (no placer number, another patient) or still waiting
  for their order;
- per push channel: ``forwarded`` (queued), ``delivered``, ``pending``, ``dead``.

``gaps`` lists every message that is not stored and every dead-lettered push (pending pushes
are counted, not listed: they are still being retried).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from medledger.errors import InputError
from medledger.interop.delivery.queue import DeliveryQueue
from medledger.interop.journal import CST, Journal

__all__ = ["reconcile", "resolve_days"]

_MESSAGE_COUNTS = (
    "received",
    "distinct",
    "duplicates",
    "stored",
    "held",
    "quarantined",
    "rejected",
    "acknowledged",
    "unfinished",
    "lost",
    "mismatches",
)
_MAX_GAPS = 1000


@dataclass(frozen=True)
class _Days:
    since: str
    until: str


def resolve_days(since: str | None, until: str | None, *, today: date | None = None) -> _Days:
    """Check ``since``/``until`` (YYYY-MM-DD, or ``7d`` for the last seven days); defaults:
    today only."""
    now = today or datetime.now(CST).date()

    def one(value: str | None, name: str, default: date) -> date:
        if value is None or value == "":
            return default
        text = value.strip()
        try:
            if text.endswith("d") and text[:-1].isdigit():
                return now - timedelta(days=int(text[:-1]) - 1)
            return date.fromisoformat(text[:10])
        except (ValueError, OverflowError):  # "²d" is digits to isdigit, not to int
            raise InputError(
                f"{name} is not a day",
                field=name,
                value=value,
                expected="YYYY-MM-DD or Nd (the last N days)",
            ) from None

    start, end = one(since, "since", now), one(until, "until", now)
    if start > end:
        raise InputError(
            "since is after until", field="since", value=since, expected=f"a day up to {end}"
        )
    return _Days(start.isoformat(), end.isoformat())


def reconcile(
    journal: Journal,
    deliveries: DeliveryQueue | None,
    *,
    since: str | None = None,
    until: str | None = None,
    interface: str | None = None,
    institutions: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The reconciliation report of days ``since``..``until`` as JSON-ready data;
    ``institutions`` keeps only their messages and pushes (None: all)."""
    days = resolve_days(since, until)
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(_MESSAGE_COUNTS, 0)
    )
    gaps: list[dict[str, Any]] = []
    for m in journal.between(days.since, days.until, interface):
        if institutions is not None and m.institution not in institutions:
            continue
        row = rows[(m.day, m.interface)]
        row["distinct"] += 1
        row["received"] += 1 + m.duplicates
        row["duplicates"] += m.duplicates
        if m.status in ("stored", "held", "quarantined", "rejected"):
            row[m.status] += 1
        if m.ack_code:
            row["acknowledged"] += 1
        if m.status == "received":
            row["unfinished"] += 1
        if m.ack_code == "AA" and m.status in ("received", "rejected"):
            row["lost"] += 1  # told AA, yet nothing kept: must never happen
        if m.mismatch and m.status != "stored":
            row["mismatches"] += 1
        if m.status != "stored" and len(gaps) < _MAX_GAPS:
            gaps.append(
                {
                    "kind": "message",
                    "id": m.id,
                    "day": m.day,
                    "interface": m.interface,
                    "institution": m.institution,
                    "control_id": m.control_id,
                    "message_type": m.message_type,
                    "status": m.status,
                    "ack": m.ack_code,
                    "mismatch": m.mismatch,
                    "unmapped": list(m.unmapped),
                    "reason": m.reason,
                }
            )
    pushes: list[dict[str, Any]] = []
    if deliveries is not None:
        by_day = deliveries.counts(days.since, days.until) if institutions is None else {}
        for (day, channel), c in sorted(by_day.items()):
            pushes.append(
                {
                    "day": day,
                    "channel": channel,
                    "forwarded": c.queued,
                    "delivered": c.delivered,
                    "pending": c.pending,
                    "dead": c.dead,
                }
            )
        for d in deliveries.dead(_MAX_GAPS):
            mine = institutions is None or d.institution in institutions
            if mine and days.since <= d.day <= days.until and len(gaps) < _MAX_GAPS:
                gaps.append(
                    {
                        "kind": "delivery",
                        "id": d.id,
                        "day": d.day,
                        "channel": d.channel,
                        "institution": d.institution,
                        "ref": d.ref,
                        "status": d.status,
                        "attempts": d.attempts,
                        "reason": d.last_error,
                    }
                )
    messages: list[dict[str, Any]] = [
        {"day": day, "interface": iface, **counts} for (day, iface), counts in sorted(rows.items())
    ]
    totals = dict.fromkeys(_MESSAGE_COUNTS, 0)
    for counts in rows.values():
        for k in _MESSAGE_COUNTS:
            totals[k] += counts[k]
    for k in ("forwarded", "delivered", "pending", "dead"):
        totals[k] = sum(int(p[k]) for p in pushes)
    return {
        "since": days.since,
        "until": days.until,
        "interface": interface,
        "messages": messages,
        "deliveries": pushes,
        "totals": totals,
        "gaps": gaps,
        "gaps_truncated": len(gaps) >= _MAX_GAPS,
    }
