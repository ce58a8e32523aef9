"""The MLLP push channel against a real HIS receiver, a real ledger and the real worker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from medledger.errors import EnvironmentFailure, InputError, MessageRejected
from medledger.interop.delivery.backoff import next_delay
from medledger.interop.delivery.queue import Delivery, DeliveryQueue
from medledger.interop.delivery.worker import DeliveryWorker
from medledger.interop.hl7 import SenderMap, build_ack, decode, read_results
from medledger.interop.mllp import MllpServer, Peer
from medledger.interop.model import Result
from medledger.interop.push import MllpPush, Route, stable_control_id
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from medledger.store import migrate
from medledger.store.engine import make_engine
from tests.interop.hl7._util import CENTRAL, EAST, sample_results
from tests.interop.push.test_fhir_read import (
    fhir_view,
    numbers,
    store_order,
    store_result,
)

HUB = ("MEDLEDGER", "MEDLEDGER-HUB")
# The member HIS's facility table: results from the hub are the central hospital's, so an
# ``L`` (local) code in them is read as the central hospital's dictionary code, as written.
HIS_SENDERS = SenderMap({"MEDLEDGER-HUB": CENTRAL, "示例区中医院": EAST})
FAST = partial(next_delay, base=0.02, cap=0.2, jitter=lambda: 1.0)
_ids = count(1)


class Receiver:
    """The member hospital's HIS listener: records every message it gets; drops the
    connection without an answer for the first ``drop`` messages, answers ``refuse`` more
    with ``code`` (AE or AR, ERR naming PID-3), ``stale`` more with an ACK of another
    message, then AA; it files each MSH-10 once (dedupe)."""

    def __init__(self, *, drop: int = 0, refuse: int = 0, code: str = "AE", stale: int = 0):
        self.drop, self.refuse, self.code, self.stale = drop, refuse, code, stale
        self.messages: list[bytes] = []
        self.filed: dict[str, bytes] = {}

    async def handle(self, raw: bytes, peer: Peer) -> bytes:
        """Answer one message as configured."""
        decoded = decode(raw)
        self.messages.append(raw)
        n = len(self.messages)
        ack = partial(
            build_ack,
            sender_app="HIS",
            sender_facility="示例区中医院",
            control_id_factory=lambda: f"HISACK{next(_ids)}",
        )
        if n <= self.drop:
            peer.drop()
            return ack(decoded, "AA")  # never sent: the connection is gone
        if n <= self.drop + self.refuse:
            error = MessageRejected(
                "病人ID在本院未登记",
                ack_code="AR" if self.code == "AR" else "AE",
                segment="PID",
                position=3,
                hl7_error="204",
            )
            return ack(decoded, self.code, error=error)  # type: ignore[arg-type]
        if n <= self.drop + self.refuse + self.stale:
            other = raw.replace(decoded.control_id.encode(), b"OTHER-MESSAGE", 1)
            return ack(decode(other), "AA")
        self.filed.setdefault(decoded.control_id, raw)
        return ack(decoded, "AA")


@dataclass
class Env:
    """A central-hospital node with its records and its delivery queue."""

    service: RecordService
    queue: DeliveryQueue


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A real SQLite ledger with RecordService, and a migrated delivery queue database."""
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    migrate.upgrade(engine)
    try:
        yield Env(RecordService.open(node), DeliveryQueue(engine))
    finally:
        engine.dispose()
        node.close()


@asynccontextmanager
async def pushing(
    env: Env, receiver: Receiver, *, charset: str = "GB18030"
) -> AsyncIterator[tuple[MllpPush, MllpServer]]:
    """Run ``receiver`` on a free port and a push routing EAST to it; close both after."""
    server = MllpServer(receiver.handle)
    await server.start()
    route = Route(EAST, "127.0.0.1", server.port, charset=charset, facility="示例区中医院")
    push = MllpPush({EAST: route}, service=env.service, sending=HUB, timeout=2.0)
    try:
        yield push, server
    finally:
        await push.close()
        await server.close(grace=1.0)


def enqueue(env: Env, ref: str, *, deadline_s: float = 30.0) -> Delivery:
    """Queue the push of report ``ref`` to EAST; return the queued delivery."""
    key = f"push:{ref}:{EAST}"
    assert env.queue.enqueue(key, "mllp", EAST, "mllp://his.east", EAST, ref, deadline_s)
    found = env.queue.get(key)
    assert found is not None
    return found


async def deliver_all(env: Env, push: MllpPush) -> None:
    """Run the real worker with ``push`` as the mllp channel until nothing is pending."""
    worker = DeliveryWorker(env.queue, {"mllp": push.send}, push.render, poll=0.02, backoff=FAST)
    await worker.run_until_idle(timeout=20.0)


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body, failing instead of hanging."""

    async def bounded() -> None:
        async with asyncio.timeout(30.0):
            await body()

    asyncio.run(bounded())


def as_received(raw: bytes, stored: Result, delivery: Delivery) -> None:
    """Assert ``raw`` decodes to ``stored`` as the HIS reads it, with our MSH-10."""
    decoded = decode(raw)
    assert decoded.control_id == stable_control_id(delivery)
    assert decoded.header.sending_facility[0] == "MEDLEDGER-HUB"
    (got,) = read_results(decoded, HIS_SENDERS)
    assert numbers(got) == replace(fhir_view(stored), control_id=decoded.control_id)


def test_each_delivery_is_one_accepted_gb18030_oru_of_the_stored_result(env: Env) -> None:
    """Three stored results become three accepted GB18030 ORU^R01s that decode to them."""
    orders = store_order(env.service, "orm_ct_chest") | store_order(env.service, "oml_lab")
    stored = [*sample_results("oru_ct_report"), *sample_results("oru_lab")]
    deliveries = [
        enqueue(env, store_result(env.service, r, orders[r.placer or ""])) for r in stored
    ]
    receiver = Receiver()

    async def body() -> None:
        async with pushing(env, receiver) as (push, server):
            await deliver_all(env, push)
            assert server.counters.accepted == 1  # one connection, reused for every message

    run(body)
    assert len(receiver.messages) == len(receiver.filed) == 3
    for d, res in zip(deliveries, stored, strict=True):
        after = env.queue.get(d.key)
        assert after is not None
        assert (after.status, after.attempts) == ("delivered", 1)
        raw = receiver.filed[stable_control_id(d)]
        assert raw.split(b"\r", 1)[0].endswith(b"|GB18030")
        assert (res.patient.name or "-").encode("gb18030") in raw
        assert decode(raw).charset == "gb18030"
        as_received(raw, res, d)


def test_ae_answers_are_retried_with_the_same_message(env: Env) -> None:
    """Two AE answers: the worker sends again, the same bytes and MSH-10, until AA."""
    (res,) = sample_results("oru_ct_report")
    d = enqueue(
        env,
        store_result(env.service, res, store_order(env.service, "orm_ct_chest")[res.placer or ""]),
    )
    receiver = Receiver(refuse=2, code="AE")

    async def body() -> None:
        async with pushing(env, receiver, charset="UTF-8") as (push, _):
            await deliver_all(env, push)

    run(body)
    after = env.queue.get(d.key)
    assert after is not None
    assert (after.status, after.attempts) == ("delivered", 3)
    assert len(receiver.messages) == 3
    assert len(set(receiver.messages)) == 1
    assert list(receiver.filed) == [stable_control_id(d)]
    assert receiver.messages[0].split(b"\r", 1)[0].endswith(b"|UTF-8")
    as_received(receiver.messages[0], res, d)


def test_a_dropped_connection_is_resent_with_the_same_control_id(env: Env) -> None:
    """No ACK (connection dropped): the resend, on a new connection, carries the same MSH-10."""
    (res,) = sample_results("oru_ct_report")
    d = enqueue(env, store_result(env.service, res, None))
    receiver = Receiver(drop=1)

    async def body() -> None:
        async with pushing(env, receiver) as (push, server):
            await deliver_all(env, push)
            assert (server.counters.dropped, server.counters.accepted) == (1, 2)

    run(body)
    after = env.queue.get(d.key)
    assert after is not None
    assert (after.status, after.attempts) == ("delivered", 2)
    first, second = receiver.messages
    assert decode(first).control_id == decode(second).control_id == stable_control_id(d)
    assert first == second
    assert list(receiver.filed) == [stable_control_id(d)]


def test_ar_names_the_err_location_code_and_reason(env: Env) -> None:
    """An AR raises MessageRejected with ERR-2 as field, ERR-3 as code, ERR-8 as value."""
    (res,) = sample_results("oru_ct_report")
    d = enqueue(env, store_result(env.service, res, None))
    receiver = Receiver(refuse=1, code="AR")

    async def body() -> None:
        async with pushing(env, receiver) as (push, _):
            body_bytes, content_type = await push.render(d)
            assert content_type == "application/hl7-v2; charset=GB18030"
            with pytest.raises(MessageRejected) as info:
                await push.send(d, body_bytes, content_type)
            err = info.value
            assert (err.field, err.hl7_error, err.ack_code) == ("PID-3", "204", "AR")
            assert f"{EAST} receiver answered AR: 204 Unknown key identifier" in err.message
            assert err.value == "病人ID在本院未登记"
            await push.send(d, body_bytes, content_type)  # the next answer is AA

    run(body)
    assert list(receiver.filed) == [stable_control_id(d)]


def test_refusals_until_the_deadline_dead_letter_the_delivery(env: Env) -> None:
    """A receiver that always answers AR: retried until the deadline, then dead."""
    (res,) = sample_results("oru_ct_report")
    d = enqueue(env, store_result(env.service, res, None), deadline_s=1.0)
    receiver = Receiver(refuse=1000, code="AR")

    async def body() -> None:
        async with pushing(env, receiver) as (push, _):
            await deliver_all(env, push)

    run(body)
    after = env.queue.get(d.key)
    assert after is not None
    assert after.status == "dead"
    assert after.attempts >= 2
    assert after.last_error == "MessageRejected"
    assert not receiver.filed


def test_an_ack_of_another_message_is_a_transport_failure(env: Env) -> None:
    """An ACK whose MSA-2 is not our MSH-10 raises EnvironmentFailure and drops the connection."""
    (res,) = sample_results("oru_ct_report")
    d = enqueue(env, store_result(env.service, res, None))
    receiver = Receiver(stale=1)

    async def body() -> None:
        async with pushing(env, receiver) as (push, server):
            raw, content_type = await push.render(d)
            with pytest.raises(EnvironmentFailure) as info:
                await push.send(d, raw, content_type)
            assert info.value.details["reason"] == "ack-mismatch"
            await push.send(d, raw, content_type)
            assert server.counters.accepted == 2

    run(body)


def test_a_deleted_report_ends_the_delivery_at_once(env: Env) -> None:
    """Loading a deleted report raises Gone: the delivery is dead after one attempt, unsent."""
    (res,) = sample_results("oru_ct_report")
    ref = store_result(env.service, res, None).split("/_history/")[0]
    env.service.delete("DiagnosticReport", ref.split("/")[1])
    d = enqueue(env, ref)
    receiver = Receiver()

    async def body() -> None:
        async with pushing(env, receiver) as (push, _):
            await deliver_all(env, push)

    run(body)
    after = env.queue.get(d.key)
    assert after is not None
    assert (after.status, after.attempts) == ("dead", 1)
    assert after.last_error == "Gone"
    assert not receiver.messages


def test_unreachable_receiver_and_missing_route(env: Env) -> None:
    """A closed port raises EnvironmentFailure (connect); an unknown recipient InputError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nobody listens there
    route = Route(EAST, "127.0.0.1", port)
    push = MllpPush({EAST: route}, service=env.service, sending=HUB, timeout=1.0)
    d = enqueue(env, "DiagnosticReport/x")

    async def body() -> None:
        with pytest.raises(EnvironmentFailure) as info:
            await push.send(d, b"MSH|^~\\&|x\r", "application/hl7-v2")
        assert info.value.details["reason"] == "connect"
        with pytest.raises(InputError) as missing:
            await push.render(replace(d, target="hosp-north", institution="hosp-north"))
        assert (missing.value.field, missing.value.value) == ("target", "hosp-north")
        await push.close()

    run(body)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"port": 0}, "port"), ({"host": " "}, "host"), ({"charset": "latin-1"}, "charset")],
)
def test_route_checks_its_fields(kwargs: dict[str, object], field: str) -> None:
    """A route with a bad port, host or charset is an InputError naming that field."""
    args: dict[str, object] = {"institution": EAST, "host": "10.1.2.3", "port": 2575, **kwargs}
    with pytest.raises(InputError) as info:
        Route(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert Route(EAST, "10.1.2.3", 2575).facility == EAST


def _delivery(key: str) -> Delivery:
    return Delivery(
        1, key, "mllp", EAST, "", EAST, "DiagnosticReport/1", "2026-11-23",
        0.0, "pending", 0, 0.0, 1.0, None, None,
    )  # fmt: skip


@settings(max_examples=100)
@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_control_ids_are_stable_short_and_key_specific(a: str, b: str) -> None:
    """MSH-10 depends on the idempotency key only, fits MSH-10 (20), differs between keys."""
    first = stable_control_id(_delivery(a))
    assert first == stable_control_id(replace(_delivery(a), id=7, attempts=3))
    assert len(first) == 20
    assert first.isascii()
    assert first.isalnum()
    assert (first == stable_control_id(_delivery(b))) == (a == b)
