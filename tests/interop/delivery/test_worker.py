"""The delivery worker against a real HTTP subscriber on 127.0.0.1 (aiohttp), both backends."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import Engine

from medledger.errors import EnvironmentFailure, Gone
from medledger.interop.delivery.backoff import next_delay
from medledger.interop.delivery.queue import Delivery, DeliveryQueue
from medledger.interop.delivery.signing import verify
from medledger.interop.delivery.worker import DeliveryWorker, RestHookSender, describe
from medledger.store.engine import make_engine
from tests.interop._receivers import serve_hook

SECRET = b"member-east-hook-secret"
FAST = partial(next_delay, base=0.05, cap=1.0, jitter=lambda: 1.0)  # 0.05, 0.1, 0.2, …
PAYLOAD_MARK = "张三-不应出现"  # a payload detail that must never reach last_error


class Subscriber:
    """A rest-hook receiver: verifies every signature, fails the first N tries of each key with
    ``fail_status``, dedupes on Idempotency-Key and records arrivals and overlap per key."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.tries: Counter[str] = Counter()
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)
        self.accepted: dict[str, bytes] = {}
        self.ok_responses: Counter[str] = Counter()
        self.bad_signatures = 0
        self.in_flight: Counter[str] = Counter()
        self.max_overlap = 0
        self.senders: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get("X-MedLedger-Signature", "")
        key = request.headers.get("Idempotency-Key", "")
        if not verify(SECRET, body, header, now=time.time()) or key != request.headers.get(
            "X-MedLedger-Delivery"
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.tries[key] += 1
        self.senders[request.headers.get("X-Worker", "")] += 1
        self.arrivals[key].append(time.monotonic())
        self.in_flight[key] += 1
        self.max_overlap = max(self.max_overlap, self.in_flight[key])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.tries[key] <= self.fail_first:
                return web.Response(status=self.fail_status, text=PAYLOAD_MARK)
            self.accepted.setdefault(key, body)  # a repeat of a key is not processed again
            self.ok_responses[key] += 1
            return web.Response(status=200)
        finally:
            self.in_flight[key] -= 1


async def render(d: Delivery) -> tuple[bytes, str]:
    """A FHIR notification body for the delivery's resource version."""
    body = {"resourceType": "Bundle", "type": "history", "entry": [{"fullUrl": d.ref}],
            "note": PAYLOAD_MARK}  # fmt: skip
    return json.dumps(body, ensure_ascii=False).encode(), "application/fhir+json"


def _queue(engine: Engine, url: str, n: int, deadline: float = 30.0) -> DeliveryQueue:
    q = DeliveryQueue(engine, lease_s=10)
    for i in range(n):
        q.enqueue(f"dlv-{i:03d}", "rest-hook", "Subscription/lab-results", url,
                  "hosp-member-east", f"DiagnosticReport/r{i}/_history/1", deadline)  # fmt: skip
    return q


async def _run(
    engine: Engine, sub: Subscriber, body: Callable[[str, httpx.AsyncClient], Awaitable[Any]]
) -> Any:
    async with serve_hook(sub.handle) as url, httpx.AsyncClient() as client:
        return await body(url, client)


def _worker(q: DeliveryQueue, client: httpx.AsyncClient, **kwargs: Any) -> DeliveryWorker:
    name = kwargs.pop("name", "w1")
    sender = RestHookSender(
        client,
        lambda _d: SECRET,
        timeout=kwargs.pop("timeout", 5.0),
        headers_for=lambda _d: {"X-Worker": name},
    )
    return DeliveryWorker(q, {"rest-hook": sender}, render, poll=0.05, backoff=FAST, **kwargs)


def test_retries_with_growing_delays_then_delivered_once(engine: Engine) -> None:
    """503 three times, then 200: each key processed once, retries spaced ≥ 50, 100, 200 ms."""
    sub = Subscriber(fail_first=3)

    async def body(url: str, client: httpx.AsyncClient) -> None:
        q = _queue(engine, url, 3)
        await _worker(q, client).run_until_idle(timeout=30)
        for i in range(3):
            row = q.get(f"dlv-{i:03d}")
            assert row is not None
            assert (row.status, row.attempts) == ("delivered", 4)

    asyncio.run(_run(engine, sub, body))
    assert sub.bad_signatures == 0
    assert set(sub.accepted) == {"dlv-000", "dlv-001", "dlv-002"}
    assert all(n == 1 for n in sub.ok_responses.values())
    for key, times in sub.arrivals.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) == 3, key
        for gap, floor in zip(gaps, (0.05, 0.1, 0.2), strict=True):
            assert gap >= floor - 0.002, (key, gaps)  # never earlier than the backoff said
        assert sum(gaps) < 5


def test_deadline_dead_letters_then_redeliver_delivers(engine: Engine) -> None:
    """Always 503 until the deadline → dead with a payload-free error; redeliver → delivered."""
    sub = Subscriber(fail_first=10**9)

    async def body(url: str, client: httpx.AsyncClient) -> None:
        q = _queue(engine, url, 2, deadline=0.4)
        worker = _worker(q, client)
        await worker.run_until_idle(timeout=30)
        dead = q.dead()
        assert [d.key for d in dead] == ["dlv-000", "dlv-001"]
        for d in dead:
            assert d.last_error == "EnvironmentFailure HTTP 503"
            assert PAYLOAD_MARK not in (d.last_error or "")
            # At least one attempt; how many fit before the 0.4 s deadline depends on the
            # machine's load (the retry spacing itself is checked by the test above).
            assert d.attempts >= 1
        sub.fail_first = 0
        tries_before = sum(sub.tries.values())
        assert q.redeliver(all_dead=True, deadline_s=30) == 2
        await worker.run_until_idle(timeout=30)
        assert q.dead() == []
        assert sum(sub.tries.values()) == tries_before + 2
        for key in ("dlv-000", "dlv-001"):
            row = q.get(key)
            assert row is not None
            assert (row.status, row.attempts) == ("delivered", 1)

    asyncio.run(_run(engine, sub, body))
    assert set(sub.accepted) == {"dlv-000", "dlv-001"}
    assert sub.bad_signatures == 0


def test_410_gone_dead_letters_at_once(engine: Engine) -> None:
    """A subscriber answering 410 Gone gets no retries: the delivery is dead after one try."""
    sub = Subscriber(fail_first=10**9, fail_status=410)

    async def body(url: str, client: httpx.AsyncClient) -> None:
        q = _queue(engine, url, 1, deadline=60)
        await _worker(q, client).run_until_idle(timeout=30)
        (dead,) = q.dead()
        assert (dead.attempts, dead.last_error) == (1, "Gone HTTP 410")

    asyncio.run(_run(engine, sub, body))
    assert sub.tries["dlv-000"] == 1


def test_timeout_is_retried(engine: Engine) -> None:
    """A subscriber slower than the sender's timeout is retried; the error names the cause."""
    sub = Subscriber(delay=0.5)

    async def body(url: str, client: httpx.AsyncClient) -> None:
        q = _queue(engine, url, 1, deadline=0.3)
        await _worker(q, client, timeout=0.1).run_until_idle(timeout=30)
        (dead,) = q.dead()
        assert dead.last_error == "EnvironmentFailure caused by ReadTimeout"

    asyncio.run(_run(engine, sub, body))


def test_two_workers_never_deliver_one_key_concurrently(engine: Engine) -> None:
    """Two workers on one queue: no key is in flight twice at once, each is processed once."""
    sub = Subscriber(fail_first=1, delay=0.02)

    async def body(url: str, client: httpx.AsyncClient) -> None:
        q = _queue(engine, url, 24)
        # The second worker has its own engine and connections, like a second process.
        second = make_engine(engine.url.render_as_string(hide_password=False))
        try:
            await asyncio.gather(
                _worker(q, client, concurrency=4, name="w1").run_until_idle(timeout=60),
                _worker(
                    DeliveryQueue(second, lease_s=10), client, concurrency=4, name="w2"
                ).run_until_idle(timeout=60),
            )
        finally:
            second.dispose()
        assert q.dead() == []

    asyncio.run(_run(engine, sub, body))
    assert sub.senders["w1"] > 0
    assert sub.senders["w2"] > 0
    assert sub.max_overlap == 1
    assert len(sub.accepted) == 24
    assert set(sub.ok_responses.values()) == {1}
    assert set(sub.tries.values()) == {2}  # one 503, one 200: no extra sends
    assert sub.bad_signatures == 0


def test_run_stops_on_event_and_unknown_channel_is_a_failure(engine: Engine) -> None:
    """run(stop) returns once stopped; a channel without a sender fails (retried, then dead)."""

    async def body() -> None:
        q = DeliveryQueue(engine, lease_s=10)
        q.enqueue("dlv-mllp", "mllp", "member-east-lis", "10.1.2.3:2575", "hosp-member-east",
                  "DiagnosticReport/r1/_history/1", 0.2)  # fmt: skip
        worker = DeliveryWorker(q, {}, render, poll=0.02, backoff=FAST)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        for _ in range(200):
            if q.dead():
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)
        (dead,) = q.dead()
        assert dead.last_error == "InputError"

    asyncio.run(body())


def test_describe_names_type_status_and_cause_only() -> None:
    """describe() keeps the type, HTTP status and cause type, and drops the message."""
    failure = EnvironmentFailure(PAYLOAD_MARK, status=502)
    failure.__cause__ = httpx.ConnectError(PAYLOAD_MARK)
    assert describe(failure) == "EnvironmentFailure HTTP 502 caused by ConnectError"
    assert describe(Gone("gone", status=410)) == "Gone HTTP 410"
    assert describe(ValueError(PAYLOAD_MARK)) == "ValueError"


def test_store_outage_does_not_stop_the_worker(tmp_path: Path) -> None:
    """With the store failing, run() keeps polling until stopped; run_until_idle times out."""
    bare = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")

    async def body() -> None:
        worker = DeliveryWorker(DeliveryQueue(bare), {}, render, poll=0.02)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.2)
        assert not task.done()  # still polling, not crashed
        stop.set()
        await asyncio.wait_for(task, 5)
        with pytest.raises(EnvironmentFailure):
            await worker.run_until_idle(timeout=0.2)

    try:
        asyncio.run(body())
    finally:
        bare.dispose()
