"""Group processing: the messages waiting on many connections, through the gateway at once.

Under load most of a message's cost is fixed per write, not per byte: a journal transaction,
a records transaction, a ledger block to wait for, a journal update, an audit commit. When
several messages are waiting (one per connection: a sender sends its next message only after
the ACK of the last), ``handle_many`` takes them through the same steps as ``handle_hl7``,
sharing each write:

1. each is decoded and admitted (a message refused unread is answered on its own, after);
2. all are journalled in ONE transaction (``Journal.begin_many``): redeliveries are found
   and answered as before;
3. each is planned (its order looked up, its codes translated); held and quarantined ones
   are recorded on their own, as before;
4. the plans of one sender whose business keys do not overlap are written as ONE records
   transaction (``Ingest.write_many``); if that transaction is refused (one message's
   content, a conflict), each of its messages is processed on its own instead, so one bad
   message never costs the others theirs;
5. all are anchored in ONE ledger append and journalled as finished in ONE transaction;
6. their AuditEvents are committed together; only then are the ACKs returned.

The per-message guarantees stay: each ACK is sent only after that message and everything
derived from it are durable, and each message's outcome is the one it would have alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from medledger.errors import MedLedgerError, MessageRejected, PreconditionFailed, WriteConflict
from medledger.interop.gateway import Gateway, Outcome
from medledger.interop.hl7.codec import Decoded, decode
from medledger.interop.ingest import Plan, Stored, Unresolved
from medledger.interop.journal import Arrival, Message

__all__ = ["MAX_ENTRIES", "handle_many"]

log = logging.getLogger(__name__)
MAX_ENTRIES = 800  # resources in one shared records transaction (a Bundle holds 1,000)


@dataclass
class _Item:
    index: int
    raw: bytes
    peer: str
    decoded: Decoded
    arrival: Arrival
    message: Message | None = None
    model: object = None
    plan: Plan | None = None


def handle_many(
    gateway: Gateway, items: Sequence[tuple[bytes, str]], *, interface: str = "mllp"
) -> list[bytes | BaseException]:
    """Process ``items`` (raw message, peer address) together; return each one's ACK, or the
    exception that means it is not stored (the connection is dropped without an ACK)."""
    out: list[bytes | BaseException | None] = [None] * len(items)
    outcomes: dict[int, Outcome] = {}
    alone: list[tuple[int, Decoded | None]] = []  # answered one by one, after the group
    group = _admitted(gateway, items, interface, alone)
    try:
        begun = gateway.journal.begin_many([it.arrival for it in group]) if group else []
    except MedLedgerError as exc:  # the journal is down: nobody's message is kept
        for it in group:
            out[it.index] = exc
        group, begun = [], []
    planned: list[_Item] = []
    fresh: list[_Item] = []
    for it, b in zip(group, begun, strict=True):
        try:
            answer: object = gateway.after_begin(b, it.decoded.header)
            if answer is None:
                it.message = b.message
                answer = gateway.model_of(b.message, it.decoded)
            if isinstance(answer, Outcome):
                outcomes[it.index] = answer
            else:
                it.model = answer
                fresh.append(it)
        except Exception as exc:  # (each message fails alone)
            out[it.index] = exc
    with gateway.ingest.prefetched([it.model for it in fresh]):
        for it in fresh:
            try:
                done = _plan(gateway, it)
                if done is not None:
                    outcomes[it.index] = done
                else:
                    planned.append(it)
            except Exception as exc:  # (each message fails alone)
                out[it.index] = exc
    parts, later = _disjoint(planned)
    for part in parts:
        _write(gateway, part, outcomes, out)
    _each_alone(gateway, later, outcomes, out)  # planned again after the plans before them
    _answer(gateway, group, outcomes, out)
    for i, decoded in alone:
        raw, peer = items[i]
        try:
            out[i] = gateway.handle_hl7(raw, interface=interface, peer=peer, decoded=decoded)
        except Exception as exc:
            out[i] = exc
    return [x if x is not None else RuntimeError("not processed") for x in out]


def _admitted(
    gateway: Gateway,
    items: Sequence[tuple[bytes, str]],
    interface: str,
    alone: list[tuple[int, Decoded | None]],
) -> list[_Item]:
    """The items that can go through the group: decoded, admitted, identities distinct."""
    group: list[_Item] = []
    keys: set[tuple[str, str, str]] = set()
    for i, (raw, peer) in enumerate(items):
        try:
            decoded = decode(raw, max_bytes=gateway.config.max_message_bytes)
        except MessageRejected:
            alone.append((i, None))
            continue
        inst, err = gateway.admit(decoded.header, peer)
        if err is not None or inst is None:
            alone.append((i, decoded))
            continue
        try:
            arrival = gateway.arrival(raw, decoded.header, inst, interface)
        except MedLedgerError:
            alone.append((i, decoded))
            continue
        if arrival.key in keys:  # the same message twice at once: the second waits
            alone.append((i, decoded))
            continue
        keys.add(arrival.key)
        group.append(_Item(i, raw, peer, decoded, arrival))
    return group


def _plan(gateway: Gateway, it: _Item) -> Outcome | None:
    """Plan one journalled message; its outcome if it is answered without a write."""
    assert it.message is not None
    model = it.model
    try:
        plan = gateway.plan(it.message, model)
    except MedLedgerError:  # answered exactly as it would be alone (or raised: no ACK)
        return gateway.process(it.message, model)
    if isinstance(plan, Outcome):
        return plan
    if isinstance(plan, Unresolved):
        return gateway.unresolved(it.message, plan)
    it.plan = plan
    return None


@dataclass
class _Part:
    sender: str
    size: int
    members: list[_Item]


def _disjoint(planned: list[_Item]) -> tuple[list[list[_Item]], list[_Item]]:
    """Split the plans into groups of one sender whose resources fit one transaction; a plan
    writing a business key that an earlier plan of the call writes too (a correction behind
    its report, two orders of one new patient) is left out, to be planned again after them."""
    parts: list[_Part] = []
    taken: set[str] = set()
    later: list[_Item] = []
    for it in planned:
        assert it.plan is not None
        keys = it.plan.keys()
        if keys & taken:
            later.append(it)
            continue
        taken |= keys
        size = sum(len(b["entry"]) for b, _ in it.plan.parts)
        for part in parts:
            if part.sender == it.plan.sender and part.size + size <= MAX_ENTRIES:
                part.size += size
                part.members.append(it)
                break
        else:
            parts.append(_Part(it.plan.sender, size, [it]))
    return [part.members for part in parts], later


def _write(
    gateway: Gateway,
    part: list[_Item],
    outcomes: dict[int, Outcome],
    out: list[bytes | BaseException | None],
) -> None:
    """Write one group's plans in one transaction and finish them; on refusal, each alone."""
    try:
        stored: list[Stored] = gateway.ingest.write_many([_plan_of(it) for it in part])
    except MedLedgerError as exc:
        if exc.http_status >= 500 and not _retryable(exc):
            for it in part:
                out[it.index] = exc
            return
        log.info("group of %d refused (%s): processing each alone", len(part), exc.code)
        _each_alone(gateway, part, outcomes, out)
        return
    written = []
    for it, result in zip(part, stored, strict=True):
        assert it.message is not None
        written.append((it.message, it.model, result))
    try:
        done = gateway.stored(written)
    except MedLedgerError as exc:  # stored but not anchored: no ACK; a resend finishes it
        for it in part:
            out[it.index] = exc
        return
    for it, outcome in zip(part, done, strict=True):
        outcomes[it.index] = outcome


def _each_alone(
    gateway: Gateway,
    items: list[_Item],
    outcomes: dict[int, Outcome],
    out: list[bytes | BaseException | None],
) -> None:
    """Process each of ``items`` on its own, as ``handle_hl7`` would after journalling it."""
    for it in items:
        assert it.message is not None
        try:
            outcomes[it.index] = gateway.process(it.message, it.model)
        except Exception as exc:  # (each message fails alone)
            out[it.index] = exc


def _plan_of(it: _Item) -> Plan:
    assert it.plan is not None
    return it.plan


def _answer(
    gateway: Gateway,
    group: list[_Item],
    outcomes: dict[int, Outcome],
    out: list[bytes | BaseException | None],
) -> None:
    """Audit the group's outcomes together (durable before any ACK), then build the ACKs."""
    answered = [it for it in group if it.index in outcomes and out[it.index] is None]
    try:
        gateway.audit_many([(outcomes[it.index], it.peer) for it in answered])
    except MedLedgerError as exc:
        for it in answered:
            out[it.index] = exc
        return
    for it in answered:
        out[it.index] = gateway.ack(it.decoded.header, outcomes[it.index])


def _retryable(exc: MedLedgerError) -> bool:
    return isinstance(exc, WriteConflict | PreconditionFailed)
