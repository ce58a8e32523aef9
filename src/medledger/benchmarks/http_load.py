"""An asyncio HTTP load generator: many persistent connections, open or closed loop.

Each connection is its own worker with its own keep-alive socket, so ``connections`` really are
that many concurrent TCP connections to the server. Work is handed out through one queue:

- **open loop** (``rate`` set): requests are scheduled at a fixed arrival rate, as wrk2 does, and
  latency is measured from the *scheduled* start, so a stalled server is charged for the queue
  it causes (no coordinated omission);
- **closed loop** (``rate`` None): every connection sends its next request as soon as the last
  one is answered; latency then follows Little's law (connections / throughput).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] | None = None
    kind: str = "other"  # reported per kind: read, search, write, ...


@dataclass(slots=True)
class Outcome:
    """What one request did; ``on_done`` callbacks see it (e.g. to learn new ids)."""

    request: Request
    status: int
    latency: float
    headers: Any = None
    body: bytes = b""


@dataclass(slots=True)
class LoadResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # transport errors and 5xx
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies)
        out: dict[str, Any] = {
            "requests": done,
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(done / self.seconds, 1) if self.seconds else 0.0,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            **percentiles(self.latencies),
            "by_kind": {k: {"requests": len(v), **percentiles(v)} for k, v in self.by_kind.items()},
        }
        if self.error_samples:
            out["error_samples"] = self.error_samples[:5]
        return out


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest-rank)."""
    if not values:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    s = sorted(values)

    def rank(p: float) -> float:  # nearest rank: the smallest value with >= p of the sample
        return round(s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))] * 1000, 2)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": rank(1.0)}


Next = Callable[[], Request]
Done = Callable[[Outcome], None]


async def run_load(
    base_url: str,
    next_request: Next,
    *,
    connections: int,
    seconds: float,
    rate: float | None,
    on_done: Done | None = None,
    warm: bool = True,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Drive ``base_url`` for ``seconds`` over ``connections`` connections; see module doc."""
    result = LoadResult()
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    timeout = aiohttp.ClientTimeout(total=60)
    sessions = [
        aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=1, force_close=False, keepalive_timeout=300),
            timeout=timeout,
            skip_auto_headers=("User-Agent",),
            headers=headers,
        )
        for _ in range(connections)
    ]
    try:
        if warm:  # open every connection before the clock starts
            await asyncio.gather(*(_warm(s) for s in sessions))
        start = time.perf_counter()
        stop_at = start + seconds
        workers = [
            asyncio.create_task(_worker(s, queue, next_request, result, on_done, rate, stop_at))
            for s in sessions
        ]
        if rate is None:
            for _ in workers:
                queue.put_nowait(0.0)  # a start token each; closed-loop workers then keep going
        else:
            await _schedule(queue, rate, start, stop_at)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        result.seconds = time.perf_counter() - start
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return result


async def _warm(session: aiohttp.ClientSession) -> None:
    async with session.get("/healthz") as resp:
        await resp.read()


async def _schedule(
    queue: asyncio.Queue[float | None], rate: float, start: float, end: float
) -> None:
    interval = 1.0 / rate
    n = 0
    while True:
        due = start + n * interval
        if due >= end:
            return
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        queue.put_nowait(due)
        n += 1


async def _worker(
    session: aiohttp.ClientSession,
    queue: asyncio.Queue[float | None],
    next_request: Next,
    result: LoadResult,
    on_done: Done | None,
    rate: float | None,
    stop_at: float,
) -> None:
    while True:
        due = await queue.get()
        if due is None:
            return
        while True:
            req = next_request()
            started = due if rate is not None else time.perf_counter()
            outcome = await _send(session, req, started, result)
            if outcome is not None and on_done is not None:
                on_done(outcome)
            if rate is not None or time.perf_counter() >= stop_at:
                break
        if rate is None:  # closed loop: one start token per worker, then run until stop_at
            return


async def _send(
    session: aiohttp.ClientSession, req: Request, started: float, result: LoadResult
) -> Outcome | None:
    try:
        async with session.request(req.method, req.path, data=req.body, headers=req.headers) as r:
            body = await r.read()
            status, headers = r.status, r.headers
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        result.errors += 1
        result.error_samples.append(f"{req.method} {req.kind}: {type(exc).__name__}: {exc}")
        return None
    latency = time.perf_counter() - started
    result.latencies.append(latency)
    result.by_kind.setdefault(req.kind, []).append(latency)
    result.statuses[status] += 1
    if status >= 500:
        result.errors += 1
        result.error_samples.append(f"{req.method} {req.kind} -> {status}: {body[:200]!r}")
    return Outcome(req, status, latency, headers, body)
