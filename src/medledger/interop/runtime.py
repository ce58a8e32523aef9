"""The gateway at run time: listener, gateway, push queue and worker, audit, together.

``Interop.open(service, config, trail=...)`` builds them over an open node;
``await start()`` starts the MLLP listener (if ``mllp.listen`` is configured) and the
delivery worker, inside the server's event loop; ``await stop()`` stops both, letting
messages in flight finish. Every message's AuditEvent is durable before its ACK.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from medledger.access.audit_event import AuditRecord
from medledger.access.audit_trail import AuditTrail
from medledger.access.caller import Caller
from medledger.access.consent import ConsentIndex
from medledger.access.model import PrincipalKind
from medledger.access.sharing import SharingPolicy
from medledger.errors import InputError
from medledger.interop.config import GatewayConfig
from medledger.interop.delivery.queue import Delivery, DeliveryQueue
from medledger.interop.delivery.worker import DeliveryWorker
from medledger.interop.gateway import Gateway, Outcome
from medledger.interop.listener import GatewayListener
from medledger.interop.push import MllpPush
from medledger.interop.reconcile import reconcile
from medledger.interop.subscriptions import CHANNEL, SubscriptionHub
from medledger.interop.view_intake import Exposer, run_pollers
from medledger.interop.views.exposed import ExposedTables
from medledger.records.service import RecordService

__all__ = ["Interop"]

log = logging.getLogger(__name__)
Sender = Callable[[Delivery, bytes, str], Awaitable[None]]
Render = Callable[[Delivery], Awaitable[tuple[bytes, str]]]
_STATUS = {"AA": 200, "AE": 422, "AR": 400}


@dataclass
class Interop:
    """The gateway of one node and what runs beside it."""

    service: RecordService
    config: GatewayConfig
    gateway: Gateway
    queue: DeliveryQueue
    listener: GatewayListener | None = None
    senders: dict[str, Sender] = field(default_factory=dict)
    renderers: dict[str, Render] = field(default_factory=dict)
    _worker: DeliveryWorker | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    subscriptions: SubscriptionHub | None = None
    _views_stop: threading.Event | None = None
    _view_threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        service: RecordService,
        config: GatewayConfig,
        *,
        trail: AuditTrail | None = None,
        listen: tuple[str, int] | None = None,
        policy: SharingPolicy | None = None,
        consents: ConsentIndex | None = None,
    ) -> Interop:
        """Build the gateway over ``service``; ``listen`` overrides ``mllp.listen``;
        ``policy``/``consents`` decide what FHIR Subscriptions may be notified about."""
        queue = DeliveryQueue(service.ledger.store.engine)
        gateway = Gateway(
            service,
            config,
            audit=_auditor(trail) if trail is not None else None,
        )
        where = listen or config.listen
        listener = None
        if where is not None:
            listener = GatewayListener(gateway, host=where[0], port=where[1])
        self = cls(service, config, gateway, queue, listener)
        gateway.on_result = self.queue_push
        self.subscriptions = SubscriptionHub(
            service,
            queue,
            deadline_s=config.delivery_deadline_s,
            policy=policy,
            consents=consents,
        )
        if config.routes:
            push = MllpPush(
                config.routes, service=service, sending=(config.application, config.facility)
            )
            self.add_channel("mllp", push.render, push.send)
            self.closers.append(push.close)
        return self

    # -- pushes --------------------------------------------------------------------------------

    def queue_push(self, report_ref: str, institution: str) -> bool:
        """Queue the push of a stored report to ``institution``'s MLLP route, if it has one."""
        route = self.config.routes.get(institution)
        if route is None:
            return False
        key = hashlib.sha256(f"mllp|{institution}|{report_ref}".encode()).hexdigest()
        return self.queue.enqueue(
            key,
            "mllp",
            f"route:{institution}",
            f"{route.host}:{route.port}",
            institution,
            report_ref,
            self.config.delivery_deadline_s,
        )

    def add_channel(self, channel: str, render: Render, send: Sender) -> None:
        """Deliver ``channel`` (mllp, rest-hook) with these functions."""
        self.renderers[channel] = render
        self.senders[channel] = send

    async def _render(self, delivery: Delivery) -> tuple[bytes, str]:
        render = self.renderers.get(delivery.channel)
        if render is None:
            raise InputError(
                f"no renderer for channel {delivery.channel}",
                field="channel",
                value=delivery.channel,
                expected=", ".join(sorted(self.renderers)) or "a configured channel",
            )
        return await render(delivery)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the listener, the subscription hub and the delivery worker."""
        if self.subscriptions is not None:
            client = httpx.AsyncClient(timeout=10.0)
            hub = self.subscriptions
            self.add_channel(CHANNEL, hub.render, hub.sender(client))
            self.closers.append(client.aclose)
            await asyncio.to_thread(hub.start)
        views = self.config.views
        if views is not None and views.exposed is not None:
            tables = await asyncio.to_thread(ExposedTables.from_config, views.exposed)
            self.gateway.on_stored = Exposer(self.gateway, tables)
        if views is not None and views.connectors:
            self._views_stop = threading.Event()
            self._view_threads = run_pollers(self.gateway, views.connectors, self._views_stop)
        if self.listener is not None:
            await self.listener.start()
        self._worker = DeliveryWorker(self.queue, self.senders, self._render)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._worker.run(self._stop))
        await asyncio.to_thread(self.gateway.release_held)

    async def stop(self) -> None:
        """Stop accepting messages, finish the ones in flight, stop the worker."""
        if self.listener is not None:
            await self.listener.close()
        if self._views_stop is not None:
            self._views_stop.set()
            for thread in self._view_threads:
                await asyncio.to_thread(thread.join, 30)
        if self._stop is not None and self._task is not None:
            self._stop.set()
            try:
                await asyncio.wait_for(self._task, 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self.subscriptions is not None:
            await asyncio.to_thread(self.subscriptions.close)
        for close in self.closers:
            await close()

    def report(self, **kwargs: Any) -> dict[str, Any]:
        """The reconciliation report (``interop.reconcile``)."""
        return reconcile(self.gateway.journal, self.queue, **kwargs)


def _auditor(trail: AuditTrail) -> Callable[[Sequence[tuple[Outcome, str]]], None]:
    """Record each message's AuditEvent: who sent it (the sending institution's interface),
    what it produced (resource versions), the outcome as an HTTP-like status; the events of
    messages processed together are committed together."""

    def audit(outcomes: Sequence[tuple[Outcome, str]]) -> None:
        trail.record_many([_audit_record(outcome, peer) for outcome, peer in outcomes])

    return audit


def _audit_record(outcome: Outcome, peer: str) -> AuditRecord:
    message = outcome.message
    inst = message.institution if message is not None else ""
    inst = "" if inst == "unknown" else inst
    address = peer.rsplit(":", 1)[0].strip("[]") if peer else None
    caller = Caller(
        kind=PrincipalKind.CLIENT,
        principal=f"mllp.{inst or 'unknown'}",
        institution=inst,
        address=address or None,
    )
    kind = message.message_type if message is not None else "unreadable"
    refs = message.refs if message is not None else ()
    return AuditRecord(
        caller,
        "transaction",
        "C",
        _STATUS.get(outcome.ack_code, 400),
        description=f"hl7 {_safe(kind)} {outcome.status} ack {outcome.ack_code}",
        entities=tuple(refs)[:200],
        path="/mllp",
    )


def _safe(text: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in text)[:32]
