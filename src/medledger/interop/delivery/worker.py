"""The delivery worker: claims due deliveries, renders and sends them, records the outcome.

Channels are pluggable: ``senders`` maps a channel name (``rest-hook``, ``mllp``) to an async
callable that sends one rendered body and raises on failure. The outcome of one attempt:

- the sender returns: delivered;
- it (or ``render``) raises :class:`medledger.errors.Gone`: dead at once, no retries (a
  rest-hook subscriber answered 410 Gone, or the resource was erased);
- anything else raised: failed, retried after :func:`.backoff.next_delay` of the attempt count,
  until the delivery's deadline, then dead (the dead-letter list that ``redeliver`` empties).

The error recorded is the exception's type, its HTTP status if it has one and its cause's type
(e.g. ``EnvironmentFailure HTTP 503``), never a message that might quote a payload. If the
outcome cannot be recorded (the store is down), the lease runs out and the delivery is sent
again later: deliveries are at least once, and receivers dedupe on the idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from medledger.errors import EnvironmentFailure, Gone, InputError, MedLedgerError
from medledger.interop.delivery.backoff import next_delay
from medledger.interop.delivery.queue import Clock, Delivery, DeliveryQueue
from medledger.interop.delivery.signing import delivery_headers

__all__ = ["Backoff", "DeliveryWorker", "Render", "RestHookSender", "Sender", "describe"]

Sender = Callable[[Delivery, bytes, str], Awaitable[None]]
Render = Callable[[Delivery], Awaitable[tuple[bytes, str]]]
Backoff = Callable[[int], float]

log = logging.getLogger("medledger.interop.delivery")
_MIN_WAIT = 0.005  # never spin: a due row another worker holds is re-polled after this


def describe(exc: BaseException) -> str:
    """Name a failure without quoting anything it carried: type, HTTP status, cause's type."""
    parts = [type(exc).__name__]
    if isinstance(exc, MedLedgerError):
        status = exc.details.get("status")
        if isinstance(status, int):
            parts.append(f"HTTP {status}")
    if exc.__cause__ is not None:
        parts.append(f"caused by {type(exc.__cause__).__name__}")
    return " ".join(parts)


class DeliveryWorker:
    """Send due deliveries of ``queue``, at most ``concurrency`` at a time."""

    def __init__(
        self,
        queue: DeliveryQueue,
        senders: Mapping[str, Sender],
        render: Render,
        *,
        concurrency: int = 8,
        poll: float = 0.5,
        backoff: Backoff = next_delay,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(
                "worker concurrency must be ≥ 1",
                field="concurrency",
                value=concurrency,
                expected="an integer ≥ 1",
            )
        if not (math.isfinite(poll) and poll > 0):
            raise InputError(
                "worker poll must be positive", field="poll", value=poll, expected="> 0"
            )
        self._queue = queue
        self._senders = dict(senders)
        self._render = render
        self._concurrency = concurrency
        self._poll = poll
        self._backoff = backoff
        self._clock: Clock = queue.clock

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then let the attempts under way finish."""
        await self._loop(stop, until_idle=False)

    async def run_until_idle(self, *, timeout: float = 60.0) -> None:
        """Deliver until no delivery is pending (all delivered or dead), waiting out retries.

        Raises :class:`EnvironmentFailure` if that takes longer than ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self._loop(None, until_idle=True), timeout)
        except TimeoutError as exc:
            raise EnvironmentFailure(
                f"deliveries still pending after {timeout} s", timeout=timeout
            ) from exc

    async def _loop(self, stop: asyncio.Event | None, *, until_idle: bool) -> None:
        tasks: set[asyncio.Task[None]] = set()
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while stop is None or not stop.is_set():
                free = self._concurrency - len(tasks)
                wait = self._poll
                try:
                    if free > 0:
                        claimed = await asyncio.to_thread(self._queue.claim, self._clock(), free)
                        tasks.update(asyncio.create_task(self._deliver(d)) for d in claimed)
                        if claimed and len(tasks) < self._concurrency:
                            continue  # there may be more due
                        if not claimed:
                            due = await asyncio.to_thread(self._queue.next_due)
                            if due is None and not tasks and until_idle:
                                return
                            if due is not None:
                                wait = min(wait, max(_MIN_WAIT, due - self._clock()))
                except MedLedgerError as exc:  # the store is down: keep polling, lose nothing
                    log.error("delivery queue unavailable (%s); polling again", describe(exc))
                waiters: set[asyncio.Future[Any]] = set(tasks)
                if stopper is not None:
                    waiters.add(stopper)
                if waiters:
                    await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(wait)
                tasks = {t for t in tasks if not t.done()}
        except asyncio.CancelledError:
            for task in tasks:  # their leases run out and another run retries them
                task.cancel()
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, d: Delivery) -> None:
        """Make one attempt at ``d`` and record its outcome."""
        try:
            sender = self._senders.get(d.channel)
            if sender is None:
                raise InputError(
                    "no sender for this delivery channel",
                    field="channel",
                    value=d.channel,
                    expected="one of " + ", ".join(sorted(self._senders)),
                )
            body, content_type = await self._render(d)
            await sender(d, body, content_type)
        except Gone as exc:
            await self._record(self._queue.abandon, d.id, self._clock(), describe(exc))
            log.warning("delivery %s to %s dead: %s", d.id, d.target, describe(exc))
        except Exception as exc:
            delay = self._backoff(d.attempts)
            status = await self._record(
                self._queue.failed, d.id, self._clock(), describe(exc), delay
            )
            log.info(
                "delivery %s attempt %s failed (%s): %s", d.id, d.attempts, status, describe(exc)
            )
        else:
            await self._record(self._queue.delivered, d.id, self._clock())

    async def _record(self, op: Callable[..., object], *args: object) -> object:
        """Run a queue update in a thread; if the store fails, the lease makes it retry later."""
        try:
            return await asyncio.to_thread(op, *args)
        except MedLedgerError as exc:
            log.error("delivery outcome not recorded (%s); it will be retried", describe(exc))
            return None


class RestHookSender:
    """Send a delivery as a signed FHIR rest-hook POST (see :mod:`.signing` for the headers).

    2xx: delivered. 410 Gone raises :class:`Gone` (the subscriber asks to stop: dead at once).
    Any other status, a timeout or a connection error raises :class:`EnvironmentFailure`, which
    the worker retries. Redirects are not followed (a 3xx is retried like any other failure).
    ``secret_for`` returns the subscription's secret, or several while it is being rotated;
    ``headers_for`` adds the subscription's own headers (FHIR ``Subscription.channel.header``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        secret_for: Callable[[Delivery], bytes | Sequence[bytes]],
        timeout: float = 10.0,
        *,
        clock: Clock = time.time,
        headers_for: Callable[[Delivery], Mapping[str, str]] | None = None,
    ) -> None:
        self._client = client
        self._secret_for = secret_for
        self._timeout = httpx.Timeout(timeout)
        self._clock = clock
        self._headers_for = headers_for

    async def __call__(self, delivery: Delivery, body: bytes, content_type: str) -> None:
        """POST ``body`` to the delivery's endpoint; return on 2xx, raise otherwise."""
        secret = self._secret_for(delivery)
        secrets = [secret] if isinstance(secret, (bytes, bytearray)) else list(secret)
        headers = dict(self._headers_for(delivery)) if self._headers_for else {}
        headers.update(
            delivery_headers(delivery.key, secrets, body, int(self._clock()), content_type)
        )
        try:
            async with self._client.stream(
                "POST", delivery.endpoint, content=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status_code  # the body is never read: we only need this
        except httpx.HTTPError as exc:
            raise EnvironmentFailure(
                f"rest-hook POST failed: {type(exc).__name__}", error=type(exc).__name__
            ) from exc
        except httpx.InvalidURL as exc:
            raise InputError(
                "rest-hook endpoint is not a usable URL",
                field="endpoint",
                value=delivery.endpoint,
                expected="an http(s) URL",
            ) from exc
        if 200 <= status < 300:
            return
        if status == 410:
            raise Gone(
                "rest-hook subscriber answered 410 Gone: it asks not to be sent more", status=410
            )
        raise EnvironmentFailure(f"rest-hook endpoint answered HTTP {status}", status=status)
