"""The gateway: every inbound message, whatever its interface, through one path.

For each message:

1. it is read (HL7 v2 bytes are decoded; a view row or FHIR body is already a model);
   a message that cannot be read is answered AR and journalled as ``rejected``;
2. it is journalled (``interop.journal``) under its identity (sending institution, source,
   control id) *before* anything else, durably: a redelivery of a finished message is
   answered as before and counted as a duplicate, never processed again;
3. it is stored through the records layer (``interop.ingest``): ``stored``, or ``held``
   (waiting for a code mapping or for its order; released automatically), or ``quarantined``
   (a mismatch or bad content; it never blocks the messages behind it);
4. an ``interop.message`` entry (the salted hash of the raw bytes, the resource versions it
   produced, the outcome) is appended to the ledger, and the outcome journalled;
5. results are queued for push to the institution that placed the order;
6. only then is the ACK returned: AA (stored or held), AE (quarantined), AR (rejected).

``handle_hl7`` is synchronous (it waits for durable commits) and runs on the MLLP listener's
worker threads; ``interop.gateway_batch`` runs the same steps for a group of messages.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from medledger.errors import MedLedgerError, MessageRejected, PreconditionFailed, WriteConflict
from medledger.interop._held import HeldRelease
from medledger.interop.admission import (
    UNKNOWN,
    Outcome,
    admit,
    again,
    refused,
    source,
    why,
)
from medledger.interop.config import GatewayConfig
from medledger.interop.dictionaries import DictionaryService
from medledger.interop.hl7.ack import build_ack
from medledger.interop.hl7.codec import Decoded, Header, decode, peek_header
from medledger.interop.hl7.inbound import to_model
from medledger.interop.ingest import Ingest, Plan, Stored, Unresolved
from medledger.interop.journal import Arrival, Begun, Finish, Journal, Message
from medledger.interop.model import Requisition, Result
from medledger.interop.model_json import model_from_json
from medledger.interop.terminology.translate import Translator
from medledger.ledger.block import format_ts
from medledger.records.service import RecordService
from medledger.records.store import Version

__all__ = ["Gateway", "Outcome"]  # Outcome: from interop.admission

log = logging.getLogger(__name__)
_ATTEMPTS = 3


class Gateway:
    """The integration gateway of one node."""

    def __init__(
        self,
        service: RecordService,
        config: GatewayConfig,
        *,
        translator: Callable[[], Translator] | None = None,
        on_result: Callable[[str, str], object] | None = None,
        audit: Callable[[Sequence[tuple[Outcome, str]]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.config = config
        self.clock = clock
        self.senders = config.senders
        self.journal = Journal(service.ledger.store.engine, service.keyring, service.suite)
        self._translator = translator or DictionaryService(service).translator
        self.ingest = Ingest(
            service, translator=self._translator, barcodes=config.barcodes, clock=clock
        )
        self.on_result = on_result  # (report version ref, placer institution): queue a push
        self.audit = audit  # [(outcome, peer address)]: the messages' AuditEvents
        self.on_stored: Callable[[object, Stored], None] | None = None  # bridge tables
        self._held = HeldRelease(
            lambda: self.journal.by_status("held"), lambda message: self.retry(message).status
        )
        service.listeners.append(self._on_written)

    def translator(self) -> Translator:
        """The current code translator (the stored ConceptMaps)."""
        return self._translator()

    def _on_written(self, versions: Sequence[Version]) -> None:
        """A new mapping may release held orders: retry them off the writing thread."""
        if any(v.rtype == "ConceptMap" for v in versions):
            threading.Thread(target=self._release_quietly, daemon=True).start()

    def _release_quietly(self) -> None:
        try:
            self.release_held()
        except MedLedgerError as exc:
            log.error("releasing held messages failed: %s", exc.code)

    # -- HL7 v2 --------------------------------------------------------------------------------

    def handle_hl7(
        self,
        raw: bytes,
        *,
        interface: str = "mllp",
        peer: str = "",
        decoded: Decoded | None = None,
    ) -> bytes:
        """Process one HL7 v2 message and return its ACK (after everything is durable);
        ``decoded``: ``raw`` already decoded by the caller."""
        outcome, header = self.receive_hl7(raw, interface=interface, peer=peer, decoded=decoded)
        self.audit_many([(outcome, peer)])  # durable before the ACK, like every API request
        return self.ack(header, outcome)

    def audit_many(self, outcomes: Sequence[tuple[Outcome, str]]) -> None:
        """Record the AuditEvents of ``outcomes`` (outcome, peer address), durably."""
        if self.audit is not None and outcomes:
            self.audit(outcomes)

    def receive_hl7(
        self,
        raw: bytes,
        *,
        interface: str = "mllp",
        peer: str = "",
        decoded: Decoded | None = None,
    ) -> tuple[Outcome, Header | None]:
        """Process one HL7 v2 message; return its outcome and header (for the ACK)."""
        if decoded is None:
            try:
                decoded = decode(raw, max_bytes=self.config.max_message_bytes)
            except MessageRejected as exc:
                header = peek_header(raw)
                return self.reject_unread(raw, header, exc, interface), header
        header = decoded.header
        inst, err = self.admit(header, peer)
        if err is not None:
            return self.reject_unread(raw, header, err, interface, inst), header
        assert inst is not None
        return self._hl7(raw, decoded, inst, interface), header

    def admit(self, header: Header, peer: str) -> tuple[str | None, MessageRejected | None]:
        """The sending institution of a decoded message, or why the message is refused
        unread (``interop.admission.admit``)."""
        return admit(self.config, self.senders, header, peer)

    def arrival(self, raw: bytes, header: Header, inst: str, interface: str) -> Arrival:
        """The journal row of an admitted HL7 v2 message, sealed (``Journal.begin_many``)."""
        return self.journal.arrival(
            interface=interface,
            institution=inst,
            source=source(header),
            control_id=str(header.control_id),
            message_type=header.message_type or UNKNOWN,
            raw=raw,
        )

    def _hl7(self, raw: bytes, decoded: Decoded, inst: str, interface: str) -> Outcome:
        begun = self.journal.begin_many([self.arrival(raw, decoded.header, inst, interface)])[0]
        done = self.after_begin(begun, decoded.header)
        if done is not None:
            return done
        model = self.model_of(begun.message, decoded)
        return model if isinstance(model, Outcome) else self.process(begun.message, model)

    def after_begin(self, begun: Begun, header: Header) -> Outcome | None:
        """The answer to a message already journalled (a reused control id, a redelivery of
        a finished message), or None: process it."""
        if begun.new:
            return None
        if not begun.same_bytes:
            return Outcome(
                "duplicate",
                "AR",
                begun.message,
                error=refused(
                    10,
                    "207",
                    "this control id was already used for a different message",
                    value=header.control_id,
                    expected="a new MSH-10 for every message",
                ),
            )
        return again(begun.message) if begun.finished else None

    def model_of(self, message: Message, decoded: Decoded) -> object:
        """The neutral model of a journalled message (a Requisition or a list of Results), or
        its ``Outcome`` if it has none."""
        try:
            return to_model(decoded, self.senders)
        except MessageRejected as exc:
            return self._finish_error(message, exc)

    def ack(self, header: Header | None, outcome: Outcome) -> bytes:
        """The ACK bytes for an outcome (ERR names the segment and field of an error)."""
        error = outcome.error
        if error is None and outcome.ack_code != "AA":
            error = MessageRejected(
                outcome.reason or "the message was not accepted", ack_code=outcome.ack_code
            )
        return build_ack(
            header,
            outcome.ack_code,  # type: ignore[arg-type]
            error=error,
            sender_app=self.config.application,
            sender_facility=self.config.facility,
            control_id_factory=lambda: uuid.uuid4().hex[:20],
        )

    # -- any interface -------------------------------------------------------------------------

    def process(self, message: Message, model: Requisition | list[Result] | object) -> Outcome:
        """Store the model of a journalled message and record the outcome."""
        for attempt in range(_ATTEMPTS):
            try:
                plan = self.plan(message, model)
                if isinstance(plan, Outcome):
                    return plan
                result = plan if isinstance(plan, Unresolved) else self.ingest.write(plan)
                break
            except (WriteConflict, PreconditionFailed):
                if attempt == _ATTEMPTS - 1:
                    raise
            except MedLedgerError as exc:
                return self._store_error(message, exc)
        if isinstance(result, Unresolved):
            return self.unresolved(message, result)
        return self.stored([(message, model, result)])[0]

    def plan(
        self, message: Message, model: Requisition | list[Result] | object
    ) -> Plan | Unresolved | Outcome:
        """How ``model`` will be stored, why not yet, or (not an order or result) its outcome."""
        if isinstance(model, Requisition):
            return self.ingest.plan_requisition(model)
        if isinstance(model, list):
            return self.ingest.plan_results(model)
        error = refused(9, "200", "the gateway takes orders and results only")
        return self._finish_error(message, error)

    def _store_error(self, message: Message, exc: MedLedgerError) -> Outcome:
        """The outcome of a message the records layer refused (bad content: AE); a failing
        store (5xx) is raised: no ACK, the sender retries."""
        if isinstance(exc, MessageRejected):
            return self._finish_error(message, exc)
        if exc.http_status >= 500:
            raise exc
        return self._finish_error(
            message, MessageRejected(exc.message, ack_code="AE", hl7_error="207")
        )

    def unresolved(self, message: Message, result: Unresolved) -> Outcome:
        """Record a held or quarantined message (nothing new if it was already so)."""
        code = "AA" if result.status == "held" else "AE"
        if message.status == result.status and message.reason == result.reason:
            return Outcome(result.status, code, message, result.reason)  # nothing new
        done = self._anchor_and_finish(
            message,
            result.status,
            code,
            refs=(),
            reason=result.reason,
            mismatch=result.mismatch,
            unmapped=result.unmapped,
        )
        return Outcome(result.status, code, done, result.reason)

    def stored(self, written: Sequence[tuple[Message, object, Stored]]) -> list[Outcome]:
        """Anchor and journal messages whose resources are written, in one ledger append and
        one journal transaction; then expose them and queue their pushes."""
        done = self._anchor_and_finish_many(
            [(m, Finish("stored", "AA", refs=s.refs)) for m, _, s in written]
        )
        placers = False
        for message, model, result in written:
            if self.on_stored is not None:
                try:
                    self.on_stored(model, result)
                except MedLedgerError as exc:
                    log.error("stored message %s not exposed: %s", message.id, exc.code)
            self._queue_pushes(result)
            placers = placers or bool(result.placers)
        if placers:
            self.release_held(waiting=True)
        return [Outcome("stored", "AA", m) for m in done]

    def _queue_pushes(self, stored: Stored) -> None:
        if self.on_result is not None:
            for report, placer_inst in stored.reports:
                try:
                    self.on_result(report, placer_inst)
                except MedLedgerError as exc:
                    log.error("result push not queued: %s", exc.code)

    def release_held(self, *, waiting: bool = False) -> int:
        """Process held messages again (a mapping or an order may have arrived); return how
        many were stored. ``waiting`` only retries results held for their order. While another
        thread releases, return 0 at once: that thread passes again (``interop._held``)."""
        return self._held(waiting=waiting)

    def retry(self, message: Message) -> Outcome:
        """Process a held or quarantined message again from its sealed bytes."""
        raw = self.journal.raw(message)
        if message.message_type.startswith("row:"):  # a view row or FHIR-born: model JSON
            row = model_from_json(raw)
            return self.process(message, row if isinstance(row, Requisition) else [row])
        try:
            decoded = decode(raw, max_bytes=self.config.max_message_bytes)
            model = to_model(decoded, self.senders)
        except MessageRejected as exc:
            return self._finish_error(message, exc)
        return self.process(message, model)

    # -- journal and ledger --------------------------------------------------------------------

    def reject_unread(
        self,
        raw: bytes,
        header: Header | None,
        exc: MessageRejected,
        interface: str,
        inst: str | None = None,
    ) -> Outcome:
        """Journal a message that cannot be read or is not ours, so reconciliation counts it."""
        control = header.control_id if header is not None and header.control_id else None
        control = control or "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
        kind = header.message_type if header is not None and header.message_type else UNKNOWN
        begun = self.journal.begin(
            interface=interface,
            institution=inst or UNKNOWN,
            source=source(header) if header is not None else UNKNOWN,
            control_id=control[:256],
            message_type=kind[:32],
            raw=raw[: self.config.max_message_bytes],
        )
        if not begun.new and begun.finished:
            return again(begun.message, exc)
        done = self._anchor_and_finish(begun.message, "rejected", "AR", reason=why(exc))
        return Outcome("rejected", "AR", done, why(exc), exc)

    def quarantine(self, message: Message, reason: str) -> Outcome:
        """Quarantine a journalled message that cannot be mapped (e.g. a bad view row)."""
        return self._finish_error(message, MessageRejected(reason, ack_code="AE"))

    def _finish_error(self, message: Message, exc: MessageRejected) -> Outcome:
        status = "quarantined" if exc.ack_code == "AE" else "rejected"
        done = self._anchor_and_finish(message, status, exc.ack_code, reason=why(exc))
        return Outcome(status, exc.ack_code, done, why(exc), exc)

    def _anchor_and_finish(
        self,
        message: Message,
        status: str,
        ack_code: str,
        *,
        refs: Sequence[str] = (),
        reason: str | None = None,
        mismatch: str | None = None,
        unmapped: Sequence[str] = (),
    ) -> Message:
        finish = Finish(status, ack_code, reason, mismatch, tuple(unmapped), tuple(refs))
        return self._anchor_and_finish_many([(message, finish)])[0]

    def _anchor_and_finish_many(self, items: Sequence[tuple[Message, Finish]]) -> list[Message]:
        """Append each message's ``interop.message`` entry (one ledger append), then record
        the outcomes with their ledger indexes (one journal transaction)."""
        entries = [
            {
                "v": 1,
                "type": "interop.message",
                "inst": message.institution,
                "ts": format_ts(self.clock()),
                "ref": f"interop/message/{message.id}",
                "payload_hash": message.raw_hash,
                "meta": {
                    "interface": message.interface,
                    "message_type": message.message_type,
                    "control_id": message.control_id,
                    "status": finish.status,
                    "ack": finish.ack_code,
                    "refs": list(finish.refs)[:200],
                },
            }
            for message, finish in items
        ]
        receipts = self.service.ledger.append(entries)
        return self.journal.finish_many(
            [
                (message.id, replace(finish, ledger_index=receipt.index))
                for (message, finish), receipt in zip(items, receipts, strict=True)
            ]
        )
