"""The subscription hub end to end: real records (SQLite and PostgreSQL), the real delivery
queue and worker, and a real rest-hook receiver on 127.0.0.1 that checks every signature."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from medledger.interop.subscription_match import notification_key
from medledger.interop.subscriptions import EMPTY_TYPE, SubscriptionHub
from medledger.records.guard import SystemGuard
from tests.interop.subscriptions.conftest import (
    FAST,
    MEMBER,
    WEST,
    Receiver,
    World,
    order,
    report,
    serving,
    subscribe,
    subscription,
)


def _run(
    w: World, receiver: Receiver, *phases: Callable[[str], Any], hub: SubscriptionHub | None = None
) -> None:
    """Serve ``receiver``; for each phase: run ``phase(url)`` (writes), match, deliver until
    idle. One server for all phases, so Subscriptions keep a live endpoint."""
    hub = hub or w.hub

    async def body() -> None:
        async with serving(receiver) as url, httpx.AsyncClient() as client:
            for phase in phases:
                result = phase(url)
                if isinstance(result, Awaitable):
                    await result
                hub.catch_up()
                await hub.worker(client, poll=0.05, backoff=FAST).run_until_idle(timeout=30)

    asyncio.run(body())


def _rid(ref: str) -> str:
    return ref.split("/")[1]


def test_member_receives_exactly_the_reports_it_may_see_once_each(world: World) -> None:
    """M's subscription gets the final reports on M's orders, signed, once each; not the
    report on another hospital's order, one on no order, nor a preliminary one."""
    receiver = Receiver()

    refs: dict[str, str] = {}

    def scenario(url: str) -> None:
        refs["sid"] = subscribe(world, url)
        world.hub.catch_up()
        mine, theirs = order(world, MEMBER), order(world, WEST)
        refs["visible"] = report(world, mine)
        refs["amended"] = report(world, mine, status="amended")
        refs["other-hospital"] = report(world, theirs)
        refs["no-order"] = report(world, None)
        refs["preliminary"] = report(world, mine, status="preliminary")
        assert world.hub.catch_up() == 2
        assert world.hub.catch_up() == 0  # a second scan queues nothing new

    _run(world, receiver, scenario)
    assert receiver.bad_signatures == 0
    assert receiver.refs() == {refs["visible"], refs["amended"]}
    assert set(receiver.accepted) == {
        notification_key(refs["sid"], refs["visible"]),
        notification_key(refs["sid"], refs["amended"]),
    }
    assert all(n == 1 for n in receiver.tries.values())
    for key, headers in receiver.headers.items():
        assert headers["Content-Type"] == "application/fhir+json"
        assert headers["X-Hospital"] == "hosp-member-east"
        assert headers["X-MedLedger-Delivery"] == key
    body = next(r for r in receiver.resources() if r["status"] == "final")
    assert body["resourceType"] == "DiagnosticReport"
    assert body["conclusion"] == "白细胞计数正常"
    for key in receiver.accepted:
        row = world.queue.get(key)
        assert row is not None
        assert (row.status, row.institution, row.target) == (
            "delivered", MEMBER, f"Subscription/{refs['sid']}"
        )  # fmt: skip


def test_a_recall_sends_a_second_notification_with_the_new_version(world: World) -> None:
    """PUT status entered-in-error on a delivered report → a second notification, version 2."""
    receiver = Receiver()
    state: dict[str, str] = {}

    def first(url: str) -> None:
        subscribe(world, url)
        world.hub.catch_up()
        state["order"] = order(world, MEMBER)
        state["v1"] = report(world, state["order"])

    def recall(url: str) -> None:
        assert receiver.refs() == {state["v1"]}
        state["v2"] = report(world, state["order"], "entered-in-error", rid=_rid(state["v1"]))

    _run(world, receiver, first, recall)
    assert state["v2"].endswith("/_history/2")
    assert receiver.refs() == {state["v1"], state["v2"]}
    recalled = next(r for r in receiver.resources() if r["meta"]["versionId"] == "2")
    assert recalled["status"] == "entered-in-error"
    assert recalled["conclusion"] == "报告召回：标本错误"


def test_503_then_200_is_delivered_after_retries(world: World) -> None:
    """A receiver answering 503 twice then 200 gets the notification once, on the 3rd try."""
    receiver = Receiver(fail_first=2)
    state: dict[str, str] = {}

    def scenario(url: str) -> None:
        state["sid"] = subscribe(world, url)
        world.hub.catch_up()
        state["ref"] = report(world, order(world, MEMBER))

    _run(world, receiver, scenario)
    key = notification_key(state["sid"], state["ref"])
    assert receiver.tries[key] == 3
    assert receiver.refs() == {state["ref"]}
    row = world.queue.get(key)
    assert row is not None
    assert (row.status, row.attempts) == ("delivered", 3)


def test_an_off_subscription_sends_nothing(world: World) -> None:
    """A Subscription with status off queues and sends nothing for a matching report."""
    receiver = Receiver()

    def scenario(url: str) -> None:
        subscribe(world, url, status="off")
        world.hub.catch_up()
        report(world, order(world, MEMBER))

    _run(world, receiver, scenario)
    assert receiver.tries == {}
    assert world.queue.counts("2000-01-01", "2100-01-01") == {}


def test_turning_a_subscription_off_stops_pending_deliveries(world: World) -> None:
    """A delivery queued while active is not sent after the Subscription is set off: dead."""
    receiver = Receiver()
    state: dict[str, str] = {}

    def scenario(url: str) -> None:
        sid = subscribe(world, url)
        world.hub.catch_up()
        state["ref"] = report(world, order(world, MEMBER))
        world.hub.catch_up()
        current = world.service.read("Subscription", sid).resource
        world.service.update("Subscription", sid, {**current, "status": "off"})
        state["sid"] = sid

    _run(world, receiver, scenario)
    assert receiver.tries == {}
    (dead,) = world.queue.dead()
    assert dead.key == notification_key(state["sid"], state["ref"])
    assert dead.attempts == 1


def test_a_requested_subscription_is_activated_by_the_hub(world: World) -> None:
    """status requested → the hub writes it active (a new version) and then notifies."""
    receiver = Receiver()
    state: dict[str, str] = {}

    def scenario(url: str) -> None:
        state["sid"] = subscribe(world, url, status="requested")
        world.hub.catch_up()
        state["ref"] = report(world, order(world, MEMBER))

    _run(world, receiver, scenario)
    current = world.service.read("Subscription", state["sid"])
    assert current.resource["status"] == "active"
    assert current.version.vid == 2
    assert current.version.inst == MEMBER  # the hub's write keeps the owner
    assert [r.id for r in world.hub.active()] == [state["sid"]]
    assert receiver.refs() == {state["ref"]}


def test_without_payload_the_notification_body_is_empty(world: World) -> None:
    """channel.payload absent → a signed POST with an empty body (R4: the subscriber queries)."""
    receiver = Receiver()

    def scenario(url: str) -> None:
        subscribe(world, url, payload=False, headers=())
        world.hub.catch_up()
        report(world, order(world, MEMBER))

    _run(world, receiver, scenario)
    assert list(receiver.accepted.values()) == [b""]
    (headers,) = receiver.headers.values()
    assert headers["Content-Type"] == EMPTY_TYPE


def test_a_dead_delivery_sets_the_subscription_to_error(world: World) -> None:
    """Always 503 until the deadline → dead → flag_dead sets status error with a note; no
    more deliveries are queued; set active again, the next report is delivered."""
    receiver = Receiver(fail_first=10**9)
    state: dict[str, Any] = {}
    hub = world.hub_again(deadline_s=0.3)

    def first(url: str) -> None:
        state["sid"] = subscribe(world, url)
        hub.catch_up()
        state["order"] = order(world, MEMBER)
        report(world, state["order"])

    def flagged(url: str) -> None:
        assert len(world.queue.dead()) == 1
        assert hub.flag_dead() == 1
        assert hub.flag_dead() == 0  # flagged once
        state["sub"] = world.service.read("Subscription", state["sid"]).resource
        report(world, state["order"])
        assert hub.catch_up() == 0  # an error Subscription is not notified
        assert hub.active() == []

    def resume(url: str) -> None:
        receiver.fail_first = 0
        world.service.update("Subscription", state["sid"], {**state["sub"], "status": "active"})
        state["ref"] = report(world, state["order"])

    _run(world, receiver, first, flagged, resume, hub=hub)
    assert state["sub"]["status"] == "error"
    assert "dead-letter" in state["sub"]["error"]
    assert hub.flag_dead() == 0  # the old dead delivery predates the reactivation
    assert receiver.refs() == {state["ref"]}
    hub.close()


def test_catch_up_after_a_restart_queues_what_was_missed(world: World) -> None:
    """Writes while no hub listened (a crash between write and enqueue) are queued by the
    next hub's catch-up from the stored watermark; nothing is queued twice."""
    receiver = Receiver()
    state: dict[str, Any] = {}

    def scenario(url: str) -> None:
        state["sid"] = subscribe(world, url)
        world.hub.catch_up()
        mine = order(world, MEMBER)
        state["queued"] = report(world, mine)
        world.hub.catch_up()
        world.hub.close()  # "the process dies": these two are written with no hub
        state["missed"] = [report(world, mine), report(world, mine, status="corrected")]
        restarted = world.hub_again()
        state["caught"] = restarted.catch_up()
        world.hub = restarted

    _run(world, receiver, scenario)
    assert state["caught"] == 2
    assert receiver.refs() == {state["queued"], *state["missed"]}
    assert all(n == 1 for n in receiver.tries.values())


def test_the_listener_wakes_the_thread_on_a_write(world: World) -> None:
    """Started, the hub listens: a write is matched and queued within seconds although the
    thread's own poll is an hour."""
    hub = world.hub_again(poll=3600.0)
    hub.start()
    try:
        url = "https://his.member-east.example/fhir-hook"
        sid = subscribe(world, url)
        ref = report(world, order(world, MEMBER))
        key = notification_key(sid, ref)
        deadline = time.monotonic() + 10
        while world.queue.get(key) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        row = world.queue.get(key)
        assert row is not None
        assert (row.endpoint, row.channel, row.ref) == (url, "rest-hook", ref)
    finally:
        hub.close()
    assert hub.on_written not in world.service.listeners


def test_a_deleted_report_is_not_notified(world: World) -> None:
    """R4: no notification for a delete (the criteria apply to the new value, and it has none)."""
    receiver = Receiver()
    state: dict[str, str] = {}

    def scenario(url: str) -> None:
        subscribe(world, url)
        world.hub.catch_up()
        state["ref"] = report(world, order(world, MEMBER))
        world.hub.catch_up()
        world.service.delete("DiagnosticReport", _rid(state["ref"]))

    _run(world, receiver, scenario)
    assert receiver.refs() == {state["ref"]}
    assert len(receiver.tries) == 1


def test_render_is_the_stored_version(world: World) -> None:
    """The body is the stored version byte-for-byte as JSON: id, meta.versionId, content."""
    receiver = Receiver()
    state: dict[str, str] = {}

    def scenario(url: str) -> None:
        subscribe(world, url)
        world.hub.catch_up()
        state["ref"] = report(world, order(world, MEMBER))

    _run(world, receiver, scenario)
    (body,) = receiver.accepted.values()
    stored = world.service.read("DiagnosticReport", _rid(state["ref"]), 1).resource
    assert json.loads(body) == stored


def test_a_stored_subscription_that_fails_the_check_is_set_to_error(world: World) -> None:
    """A websocket Subscription stored without the API's check (say by a transaction Bundle)
    is not served: the hub sets it to error, naming the element, and queues nothing."""
    body = subscription("https://his.member-east.example/hook")
    body["channel"]["type"] = "websocket"
    sid = world.service.create("Subscription", body, guard=SystemGuard(MEMBER)).version.rid
    world.hub.catch_up()
    report(world, order(world, MEMBER))
    assert world.hub.catch_up() == 0
    stored = world.service.read("Subscription", sid)
    assert stored.resource["status"] == "error"
    assert "Subscription.channel.type" in stored.resource["error"]
    assert stored.version.inst == MEMBER
    assert world.hub.active() == []


def test_a_subscription_past_its_end_sends_nothing(world: World) -> None:
    """R4 end: once passed, the Subscription is off although its status still says active."""
    body = subscription("https://his.member-east.example/hook")
    body["end"] = "2020-01-01T00:00:00+08:00"
    world.service.create("Subscription", body, guard=SystemGuard(MEMBER))
    world.hub.catch_up()
    report(world, order(world, MEMBER))
    assert world.hub.catch_up() == 0


def test_on_written_only_wakes_and_never_raises(world: World) -> None:
    """The write-path listener returns at once whatever it is given, and does no matching."""
    started = time.perf_counter()
    for junk in ([], [None], "not versions"):
        assert world.hub.on_written(junk) is None  # type: ignore[arg-type]
    assert time.perf_counter() - started < 0.05
    assert world.queue.next_due() is None
