"""Push stored results to member hospitals as HL7 ORU^R01 over MLLP: the ``mllp`` channel.

:class:`MllpPush` gives the delivery worker (:mod:`medledger.interop.delivery.worker`) both
halves of an MLLP delivery: ``render`` loads the result the delivery names (its ``ref`` is a
DiagnosticReport, usually a version) and writes the ORU^R01 in the recipient's character set;
``send`` sends it and reads the ACK. Wire it as
``DeliveryWorker(queue, {"mllp": push.send}, push.render)`` (a worker serving other channels
too dispatches ``render`` on ``delivery.channel``).

- **Route**: the recipient is ``routes[delivery.target]``, else ``routes[delivery.institution]``
  (both are institution ids); its host and port are used, not ``delivery.endpoint``.
- **Idempotent resends**: MSH-10 is derived from the delivery's idempotency key
  (:func:`stable_control_id`) and MSH-7 from the delivery's creation time, so every attempt
  of one delivery sends the same bytes and the receiver can drop a resend whose first ACK was
  lost.
- **Outcomes**: ``AA`` (or ``CA``) returns. ``AE``/``AR`` (or ``CE``/``CR``) raise
  :class:`~medledger.errors.MessageRejected` whose ``field`` is the ERR-2 location, ``hl7_error``
  ERR-3 and message the table 0357 text; the receiver's own words (ERR-8) stay in ``value``.
  No ACK, an unreadable one, or one for another MSH-10 raise
  :class:`~medledger.errors.EnvironmentFailure`. The worker retries all of these until the
  delivery's deadline; a ``Gone`` from loading (report deleted, patient erased) ends it at once.
- **Connections**: one :class:`~medledger.interop.mllp.client.MllpClient` per route, kept open
  and reused; a lock per route holds it for one message and its ACK at a time (MLLP carries
  one message at a time per connection).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from medledger.errors import EnvironmentFailure, InputError, MessageRejected
from medledger.interop.config import MllpRoute
from medledger.interop.delivery.queue import Delivery
from medledger.interop.fhir_read import load_result
from medledger.interop.hl7.ack import ERROR_TEXT, Ack, parse_ack
from medledger.interop.hl7.datatypes import CST
from medledger.interop.hl7.outbound import result_message
from medledger.interop.mllp.client import MllpClient
from medledger.records.service import RecordService

__all__ = ["MllpPush", "Route", "stable_control_id"]

_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")
_OK = frozenset({"AA", "CA"})
_REFUSED = {"AE": "AE", "CE": "AE", "AR": "AR", "CR": "AR"}


Route = MllpRoute
"""Where ``institution`` receives results (the gateway config's :class:`MllpRoute`)."""


def stable_control_id(delivery: Delivery) -> str:
    """Return the MSH-10 of every attempt of ``delivery``: ``ML`` + 18 hex digits of the
    SHA-256 of its idempotency key (20 characters, the v2.5 length of MSH-10)."""
    return (
        "ML"
        + hashlib.sha256(delivery.key.encode("utf-8", "surrogatepass")).hexdigest()[:18].upper()
    )


class MllpPush:
    """The ``mllp`` delivery channel (module doc): render and send ORU^R01 per delivery.

    ``sending`` is our (application, facility), MSH-3/MSH-4; ``control_ids`` derives a
    delivery's MSH-10 and must give the same value on every attempt; ``timeout`` bounds
    connecting and waiting for each ACK, in seconds.
    """

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        service: RecordService,
        sending: tuple[str, str],
        control_ids: Callable[[Delivery], str] = stable_control_id,
        timeout: float = 10.0,
    ) -> None:
        self._routes: dict[str, Route] = dict(routes)
        self._service = service
        self._sending = sending
        self._control_ids = control_ids
        self._timeout = timeout
        self._clients: dict[str, MllpClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def route_for(self, delivery: Delivery) -> Route:
        """Return the route of ``delivery``'s recipient; InputError when none is configured."""
        route = self._routes.get(delivery.target) or self._routes.get(delivery.institution)
        if route is None:
            raise InputError(
                "no MLLP route for the delivery's recipient",
                field="target",
                value=delivery.target,
                expected="an institution listed in routes: " + ", ".join(sorted(self._routes)),
            )
        return route

    async def render(self, delivery: Delivery) -> tuple[bytes, str]:
        """Return the ORU^R01 of the result ``delivery.ref`` names, and its content type."""
        route = self.route_for(delivery)
        result = await asyncio.to_thread(load_result, self._service, delivery.ref)
        body = result_message(
            result,
            control_id=self._control_ids(delivery),
            sending=self._sending,
            receiving=(route.application, route.facility),
            charset=route.charset,
            now=datetime.fromtimestamp(delivery.created_at, CST),
        )
        return body, f"application/hl7-v2; charset={route.charset}"

    async def send(self, delivery: Delivery, body: bytes, content_type: str) -> None:
        """Send ``body`` to the delivery's route; return on AA, raise otherwise (module doc)."""
        route = self.route_for(delivery)
        key = f"{route.host}:{route.port}"
        if key not in self._clients:
            self._clients[key] = MllpClient(route.host, route.port, timeout=self._timeout)
            self._locks[key] = asyncio.Lock()
        client, control_id = self._clients[key], self._control_ids(delivery)
        async with self._locks[key]:
            raw = await client.send(body)  # raises EnvironmentFailure: connect, timeout, closed
            try:
                ack = parse_ack(raw)
            except InputError as exc:
                await client.close()
                raise _failure(route, "bad-ack", "answered with no readable ACK") from exc
            if ack.control_id != control_id:
                await client.close()  # a stale ACK: the stream is out of step
                raise _failure(route, "ack-mismatch", "acknowledged another message")
        if ack.code in _OK:
            return
        if ack.code in _REFUSED:
            raise _refusal(route, ack)
        raise _failure(route, "bad-ack", f"answered with an unknown ACK code {ack.code!r}")

    async def close(self) -> None:
        """Close every connection (a later send opens a new one)."""
        clients, self._clients = list(self._clients.values()), {}
        self._locks = {}
        for client in clients:
            await client.close()


def _failure(route: Route, reason: str, what: str) -> EnvironmentFailure:
    """Return the transport-level failure of a push to ``route``."""
    return EnvironmentFailure(
        f"MLLP receiver of {route.institution} at {route.host}:{route.port} {what}",
        host=route.host,
        port=route.port,
        reason=reason,
    )


def _refusal(route: Route, ack: Ack) -> MessageRejected:
    """Return the error of an AE/AR answer, naming the ERR location, code and reason."""
    code = ack.hl7_error or "207"
    text = ERROR_TEXT.get(code, "Application error")
    m = _LOCATION.fullmatch(ack.error_location or "")
    where = f" at {ack.error_location}" if ack.error_location else ""
    return MessageRejected(
        f"the {route.institution} receiver answered {ack.code}: {code} {text}{where}",
        ack_code=_REFUSED[ack.code],
        segment=m[1] if m else None,
        sequence=int(m[2]) if m and m[2] else 1,
        position=int(m[3]) if m and m[3] else None,
        hl7_error=code,
        value=ack.error_text,
        expected="AA",
        institution=route.institution,
    )
