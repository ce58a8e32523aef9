"""The delivery queue on SQLite and PostgreSQL: idempotency, leases, retries, dead letters."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

from medledger.errors import InputError, StorageError
from medledger.interop.delivery.queue import DeliveryCounts, DeliveryQueue, day_of
from medledger.store.engine import make_engine
from tests.interop.delivery.conftest import T0, Clock

HOOK = "https://lis.member-east.example/fhir-hook"


def _enqueue(
    q: DeliveryQueue, key: str, *, channel: str = "rest-hook", deadline: float = 60.0
) -> bool:
    return q.enqueue(key, channel, "Subscription/lab-results", HOOK, "hosp-member-east",
                     f"DiagnosticReport/{key}/_history/1", deadline)  # fmt: skip


def test_enqueue_is_idempotent_on_key(engine: Engine, clock: Clock) -> None:
    """A second enqueue of the same key returns False and leaves the first row untouched."""
    q = DeliveryQueue(engine, clock)
    assert _enqueue(q, "k1") is True
    clock.advance(5)
    assert _enqueue(q, "k1", deadline=999) is False
    row = q.get("k1")
    assert row is not None
    assert (row.status, row.attempts, row.created_at, row.deadline_at) == (
        "pending", 0, T0, T0 + 60)  # fmt: skip
    assert row.day == "2026-11-23"
    assert row.endpoint == HOOK


def test_claim_leases_rows_until_the_lease_runs_out(engine: Engine, clock: Clock) -> None:
    """A claimed row is not handed out again within the lease, and is again once it expires."""
    q = DeliveryQueue(engine, clock, lease_s=30)
    for k in ("a", "b", "c"):
        _enqueue(q, k)
    first = q.claim(T0, 2)
    assert [d.key for d in first] == ["a", "b"]
    assert all(d.attempts == 1 for d in first)
    assert [d.key for d in q.claim(T0, 10)] == ["c"]
    assert q.claim(T0 + 29.9, 10) == []
    again = q.claim(T0 + 30, 10)
    assert sorted(d.key for d in again) == ["a", "b", "c"]
    assert all(d.attempts == 2 for d in again)


def test_delivered_is_recorded_once(engine: Engine, clock: Clock) -> None:
    """delivered() marks the row delivered with its time; a second call changes nothing."""
    q = DeliveryQueue(engine, clock)
    _enqueue(q, "k")
    (d,) = q.claim(T0, 1)
    assert q.delivered(d.id, T0 + 1) is True
    assert q.delivered(d.id, T0 + 2) is False
    row = q.get("k")
    assert row is not None
    assert (row.status, row.delivered_at) == ("delivered", T0 + 1)
    assert q.claim(T0 + 1000, 10) == []
    assert q.next_due() is None


def test_failed_reschedules_then_dead_at_deadline(engine: Engine, clock: Clock) -> None:
    """failed() schedules now+delay, never past the deadline; a failure at the deadline is dead."""
    q = DeliveryQueue(engine, clock, lease_s=5)
    _enqueue(q, "k", deadline=10)
    (d,) = q.claim(T0, 1)
    assert q.failed(d.id, T0 + 1, "EnvironmentFailure HTTP 503", 2.0) == "pending"
    row = q.get("k")
    assert row is not None
    assert row.next_attempt_at == T0 + 3
    assert row.last_error == "EnvironmentFailure HTTP 503"
    assert q.claim(T0 + 2.9, 1) == []
    (d,) = q.claim(T0 + 3, 1)
    assert q.failed(d.id, T0 + 4, "EnvironmentFailure HTTP 503", 100.0) == "pending"
    row = q.get("k")
    assert row is not None
    assert row.next_attempt_at == T0 + 10
    (d,) = q.claim(T0 + 10, 1)
    assert d.attempts == 3
    assert q.failed(d.id, T0 + 10.5, "EnvironmentFailure HTTP 503", 1.0) == "dead"
    dead = q.dead()
    assert [x.key for x in dead] == ["k"]
    assert q.claim(T0 + 1000, 10) == []


def test_failed_does_not_resurrect_a_delivered_row(engine: Engine, clock: Clock) -> None:
    """A late failure report from a worker whose lease ran out leaves a delivered row alone."""
    q = DeliveryQueue(engine, clock, lease_s=1)
    _enqueue(q, "k")
    (slow,) = q.claim(T0, 1)
    (fast,) = q.claim(T0 + 1, 1)
    q.delivered(fast.id, T0 + 1.5)
    assert q.failed(slow.id, T0 + 2, "EnvironmentFailure caused by ReadTimeout", 1.0) is None
    row = q.get("k")
    assert row is not None
    assert row.status == "delivered"


def test_abandon_and_redeliver(engine: Engine, clock: Clock) -> None:
    """abandon() dead-letters at once; redeliver() brings rows back with attempts reset."""
    q = DeliveryQueue(engine, clock)
    for k in ("a", "b", "c"):
        _enqueue(q, k, deadline=100)
    claimed = {d.key: d for d in q.claim(T0, 3)}
    assert q.abandon(claimed["a"].id, T0, "Gone HTTP 410") is True
    assert q.abandon(claimed["b"].id, T0, "Gone HTTP 410") is True
    q.delivered(claimed["c"].id, T0)
    assert [d.key for d in q.dead()] == ["a", "b"]
    clock.advance(500)
    assert q.redeliver([claimed["a"].id, claimed["c"].id, 99999]) == 1  # c is not dead
    row = q.get("a")
    assert row is not None
    assert (row.status, row.attempts, row.next_attempt_at, row.deadline_at) == (
        "pending", 0, T0 + 500, T0 + 600)  # fmt: skip  # same span as before
    assert q.redeliver(all_dead=True, deadline_s=5) == 1
    row = q.get("b")
    assert row is not None
    assert row.deadline_at == T0 + 505
    assert q.dead() == []
    assert sorted(d.key for d in q.claim(clock.now, 10)) == ["a", "b"]


def test_redeliver_needs_exactly_one_selector(sqlite_engine: Engine, clock: Clock) -> None:
    """redeliver() with neither or both of ids / all_dead raises InputError."""
    q = DeliveryQueue(sqlite_engine, clock)
    with pytest.raises(InputError):
        q.redeliver()
    with pytest.raises(InputError):
        q.redeliver([1], all_dead=True)


def test_counts_per_utc8_day_and_channel(engine: Engine, clock: Clock) -> None:
    """counts() groups by UTC+8 creation day and channel, with queued/delivered/pending/dead."""
    clock.now = 1_795_363_200.0 - 60  # 2026-11-22 23:59 UTC+8 (15:59 UTC)
    q = DeliveryQueue(engine, clock)
    _enqueue(q, "late-22nd")
    clock.advance(120)  # 2026-11-23 00:01 UTC+8, still 2026-11-22 in UTC
    for k in ("m1", "m2", "m3"):
        _enqueue(q, k, channel="mllp")
    _enqueue(q, "h1")
    by_key = {d.key: d for d in q.claim(clock.now, 10)}
    q.delivered(by_key["m1"].id, clock.now)
    q.abandon(by_key["m2"].id, clock.now, "Gone")
    assert day_of(clock.now) == "2026-11-23"
    counts = q.counts("2026-11-22", "2026-11-23")
    assert counts == {
        ("2026-11-22", "rest-hook"): DeliveryCounts(queued=1, pending=1),
        ("2026-11-23", "mllp"): DeliveryCounts(queued=3, delivered=1, pending=1, dead=1),
        ("2026-11-23", "rest-hook"): DeliveryCounts(queued=1, pending=1),
    }
    assert q.counts("2026-11-24", "2026-11-30") == {}
    with pytest.raises(InputError) as info:
        q.counts("2026-11-22", "23/11/2026")
    assert info.value.field == "day_to"


def test_two_claimers_never_share_a_row(engine: Engine, clock: Clock) -> None:
    """Two queues on one database claiming concurrently never both get the same row."""
    q = DeliveryQueue(engine, clock)
    keys = [f"k{i:03d}" for i in range(120)]
    for k in keys:
        _enqueue(q, k)
    got: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def work(out: list[str]) -> None:
        mine = DeliveryQueue(engine, clock)
        barrier.wait()
        while batch := mine.claim(T0, 7):
            out.extend(d.key for d in batch)

    threads = [threading.Thread(target=work, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got[0] + got[1]) == keys


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"key": ""}, "key"),
        ({"key": "k" * 129}, "key"),
        ({"channel": ""}, "channel"),
        ({"endpoint": ""}, "endpoint"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"deadline_s": float("inf")}, "deadline_s"),
    ],
)
def test_enqueue_rejects_bad_input(
    sqlite_engine: Engine, clock: Clock, args: dict[str, object], field: str
) -> None:
    """Empty or over-long texts and a non-positive or infinite deadline raise InputError."""
    values: dict[str, object] = {
        "key": "k", "channel": "mllp", "target": "member-east-lis", "endpoint": "10.1.2.3:2575",
        "institution": "hosp-member-east", "ref": "DiagnosticReport/1/_history/1",
        "deadline_s": 60.0, **args,
    }  # fmt: skip
    with pytest.raises(InputError) as info:
        DeliveryQueue(sqlite_engine, clock).enqueue(**values)  # type: ignore[arg-type]
    assert info.value.field == field


def test_storage_failure_is_a_storage_error(tmp_path: Path, clock: Clock) -> None:
    """On a database without the tables, queue calls raise StorageError, not driver errors."""
    bare = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    try:
        q = DeliveryQueue(bare, clock)
        with pytest.raises(StorageError):
            _enqueue(q, "k")
        with pytest.raises(StorageError):
            q.claim(T0, 1)
        with pytest.raises(StorageError):
            q.next_due()
    finally:
        bare.dispose()


def test_versions_of_one_resource_are_sent_in_order(engine: Engine, clock: Clock) -> None:
    """A report's later versions (a correction, a recall) wait while an older version to the
    same recipient is pending, in flight or between retries; other resources and other
    recipients do not wait; a dead older version lets the next one go."""
    q = DeliveryQueue(engine, clock, lease_s=5)

    def version(key: str, ref: str, target: str = "Subscription/lab-results") -> None:
        q.enqueue(key, "rest-hook", target, HOOK, "hosp-member-east", ref, 10)

    version("v1", "DiagnosticReport/r1/_history/1")
    version("v2", "DiagnosticReport/r1/_history/2")
    version("v3", "DiagnosticReport/r1/_history/3")
    version("other", "DiagnosticReport/r2/_history/1")
    version("elsewhere", "DiagnosticReport/r1/_history/2", target="Subscription/ward")
    first = q.claim(T0, 10)
    assert sorted(d.key for d in first) == ["elsewhere", "other", "v1"]
    v1 = next(d for d in first if d.key == "v1")
    for d in first:
        if d.key != "v1":
            q.delivered(d.id, T0 + 0.5)
    assert q.failed(v1.id, T0 + 1, "EnvironmentFailure HTTP 503", 2.0) == "pending"
    assert q.claim(T0 + 2, 10) == []  # v1 waits for its retry; v2 and v3 wait behind it
    assert q.next_due() == T0 + 3  # v1's retry, not the blocked v2 (no busy polling)
    (again,) = q.claim(T0 + 3, 10)
    assert again.key == "v1"
    q.delivered(again.id, T0 + 3.5)
    (v2,) = q.claim(T0 + 4, 10)
    assert v2.key == "v2"
    assert q.failed(v2.id, T0 + 11, "EnvironmentFailure HTTP 503", 1.0) == "dead"  # deadline
    (v3,) = q.claim(T0 + 12, 10)
    assert v3.key == "v3"
