"""Fixtures for the subscription tests: a real node with records, a delivery queue, a hub,
realistic orders and reports between 示例市第一人民医院 and 示例区中医院, and a real rest-hook
receiver (aiohttp on 127.0.0.1) that verifies every signature and dedupes on Idempotency-Key.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from medledger.interop.delivery.backoff import next_delay
from medledger.interop.delivery.queue import DeliveryQueue
from medledger.interop.delivery.signing import verify
from medledger.interop.subscription_match import SECRET_EXTENSION, check_subscription
from medledger.interop.subscriptions import SubscriptionHub
from medledger.ledger.node import LedgerNode
from medledger.records.guard import SystemGuard
from medledger.records.service import RecordService
from tests.interop._receivers import serve_hook

CENTRAL = "hosp-central"  # 示例市第一人民医院
MEMBER = "hosp-member-east"  # 示例区中医院
WEST = "hosp-member-west"  # a third member hospital
SECRET = "member-east-hook-secret-0123456789abcdef"  # ≥ 32 characters
CRITERIA = "DiagnosticReport?status=final,corrected,amended,entered-in-error"
FAST = partial(next_delay, base=0.05, cap=0.5, jitter=lambda: 1.0)
DICT = "urn:medledger:dict:hosp-central"


@dataclass
class World:
    """One node of the central hospital: records, the delivery queue and a subscription hub."""

    node: LedgerNode
    service: RecordService
    queue: DeliveryQueue
    hub: SubscriptionHub

    def hub_again(self, **options: Any) -> SubscriptionHub:
        """A second hub on the same node, as after a restart."""
        return SubscriptionHub(self.service, self.queue, **{"deadline_s": 30, **options})


@pytest.fixture
def world(tmp_path: Path, db_url: str | None) -> Iterator[World]:
    """A fresh node (SQLite or PostgreSQL) with a hub that retries deliveries for 30 s."""
    node = LedgerNode.init(tmp_path / "d", db=db_url, node="central", block_max_wait_ms=1)
    service = RecordService.open(node, institution=CENTRAL)
    queue = DeliveryQueue(node.store.engine, lease_s=10)
    hub = SubscriptionHub(service, queue, deadline_s=30, poll=0.05)
    try:
        yield World(node, service, queue, hub)
    finally:
        hub.close()
        node.close()


def subscription(
    endpoint: str,
    *,
    status: str = "active",
    criteria: str = CRITERIA,
    payload: bool = True,
    headers: tuple[str, ...] = ("X-Hospital: hosp-member-east",),
    secret: str = SECRET,
) -> dict[str, Any]:
    """A rest-hook Subscription as 示例区中医院's HIS registers it."""
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "extension": [{"url": SECRET_EXTENSION, "valueString": secret}],
    }
    if payload:
        channel["payload"] = "application/fhir+json"
    if headers:
        channel["header"] = list(headers)
    return {
        "resourceType": "Subscription",
        "status": status,
        "reason": "检验检查报告回传示例区中医院",
        "criteria": criteria,
        "channel": channel,
    }


def subscribe(w: World, endpoint: str, owner: str = MEMBER, **kwargs: Any) -> str:
    """Check and create a Subscription owned by ``owner`` (as the API does); return its id."""
    body = subscription(endpoint, **kwargs)
    check_subscription(body)
    return w.service.create("Subscription", body, guard=SystemGuard(owner)).version.rid


def order(w: World, requester: str) -> str:
    """A referral ServiceRequest placed by ``requester`` at the central hospital; its id."""
    body = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": DICT, "code": "CBC", "display": "血常规"}]},
        "subject": {"reference": "Patient/mzh-0001"},
        "requester": {"reference": f"Organization/{requester}"},
        "performer": [{"reference": f"Organization/{CENTRAL}"}],
    }
    return w.service.create("ServiceRequest", body, guard=SystemGuard(requester)).version.rid


def report(
    w: World,
    order_id: str | None,
    status: str = "final",
    performer: str | None = None,
    rid: str | None = None,
) -> str:
    """A DiagnosticReport of the central hospital (based on ``order_id``); its version ref.

    With ``rid`` it is an update (a correction or a recall) of that report.
    """
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "status": status,
        "code": {"coding": [{"system": DICT, "code": "CBC", "display": "血常规"}]},
        "subject": {"reference": "Patient/mzh-0001"},
        "conclusion": "白细胞计数正常" if status != "entered-in-error" else "报告召回：标本错误",
    }
    if order_id is not None:
        body["basedOn"] = [{"reference": f"ServiceRequest/{order_id}"}]
    if performer is not None:
        body["performer"] = [{"reference": f"Organization/{performer}"}]
    guard = SystemGuard(CENTRAL)
    if rid is None:
        return w.service.create("DiagnosticReport", body, guard=guard).version.ref
    return w.service.update("DiagnosticReport", rid, body, guard=guard).version.ref


class Receiver:
    """A rest-hook subscriber: verifies signatures, fails the first ``fail_first`` tries of
    each key with ``fail_status``, processes each Idempotency-Key once."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503) -> None:
        self.fail_first, self.fail_status = fail_first, fail_status
        self.tries: Counter[str] = Counter()
        self.accepted: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        signature = request.headers.get("X-MedLedger-Signature", "")
        if not verify(SECRET.encode(), body, signature, now=time.time()):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.tries[key] += 1
        if self.tries[key] <= self.fail_first:
            return web.Response(status=self.fail_status)
        if key not in self.accepted:  # a repeat of a key is not processed again
            self.accepted[key] = body
            self.headers[key] = dict(request.headers)
        return web.Response(status=200)

    def resources(self) -> list[dict[str, Any]]:
        """The accepted notification bodies, parsed."""
        return [json.loads(b) for b in self.accepted.values()]

    def refs(self) -> set[str]:
        """The version refs the accepted bodies carry."""
        return {
            f"{r['resourceType']}/{r['id']}/_history/{r['meta']['versionId']}"
            for r in self.resources()
        }


def serving(receiver: Receiver) -> AbstractAsyncContextManager[str]:
    """Run ``receiver`` on a free port of 127.0.0.1; yield its hook URL."""
    return serve_hook(receiver.handle, "/fhir-hook")
