"""AuditTrail on SQLite and PostgreSQL: group commit, durability, batches, certificates."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, event, func, select

from medledger.access.audit_trail import AuditTrail
from medledger.errors import InputError, NotFound, StateError, StorageError, VerificationFailed
from medledger.ledger.node import LedgerNode
from medledger.store import schema_audit
from medledger.store.schema_audit import audit_batches, audit_events
from medledger.verify.audit import verify_audit_certificate
from tests.access._audit_fixtures import DR_LI, LIS, PSEUDONYM, read_record, trail_on


@pytest.fixture
def env(tmp_path: Path, db_url: str | None) -> Iterator[tuple[LedgerNode, AuditTrail]]:
    with trail_on(tmp_path, db_url) as pair:
        yield pair


def _count(engine: Engine, table: Any = audit_events) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _chain_batches(node: LedgerNode) -> list[dict[str, Any]]:
    with node.reader() as r:
        return [
            json.loads(d)
            for rows in r.entry_batches(0)
            for _, d in rows
            if b'"type":"audit.batch"' in d
        ]


def test_schema_matches_the_migration(env: tuple[LedgerNode, AuditTrail]) -> None:
    """The audit tables Alembic creates are exactly those schema_audit declares."""
    node, _ = env
    only = MetaData()
    for table in schema_audit.__all__:
        getattr(schema_audit, table).to_metadata(only)
    with node.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), only)
    ours = [d for d in diff if "audit_" in repr(d)]
    assert not [d for d in ours if d[0] != "remove_table"], ours


def test_group_commit_200_concurrent_records(env: tuple[LedgerNode, AuditTrail]) -> None:
    """200 threads recording at once: all durable, gapless distinct seqs, few transactions."""
    node, trail = env
    engine = node.store.engine
    commits = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    start = threading.Barrier(200)
    ids: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        start.wait()
        got = trail.record(read_record(i))
        with lock:
            ids.append(got)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.seq, audit_events.c.id)).all()
    assert sorted(r.seq for r in rows) == list(range(1, 201))
    assert {r.id for r in rows} == set(ids)
    assert trail.transactions == len(commits)
    assert len(commits) <= 40, f"{len(commits)} transactions for 200 events"


def test_record_returns_only_after_commit(env: tuple[LedgerNode, AuditTrail]) -> None:
    """A failing commit gives every waiter of the group a StorageError and stores nothing."""
    node, trail = env
    engine = node.store.engine

    def refuse(_conn: Any) -> None:
        raise RuntimeError("disk full")

    event.listen(engine, "commit", refuse)
    errors: list[BaseException] = []
    recorded: list[str] = []

    def work(i: int) -> None:
        try:
            recorded.append(trail.record(read_record(i)))
        except StorageError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    event.remove(engine, "commit", refuse)
    assert not recorded
    assert len(errors) == 20
    assert "disk full" in str(errors[0])
    assert _count(engine) == 0
    assert trail.read(trail.record(read_record(1)))["id"]  # the committer survived


def test_record_async_does_not_block_the_loop(env: tuple[LedgerNode, AuditTrail]) -> None:
    """record_async awaits a slow commit while the event loop keeps running."""
    node, trail = env
    slow = lambda _conn: time.sleep(0.3)  # noqa: E731
    event.listen(node.store.engine, "commit", slow)

    async def main() -> tuple[list[str], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        ids = await asyncio.gather(*(trail.record_async(read_record(i)) for i in range(30)))
        done.set()
        await task
        return list(ids), ticks

    ids, ticks = asyncio.run(main())
    event.remove(node.store.engine, "commit", slow)
    assert len(set(ids)) == 30
    assert ticks >= 10
    assert _count(node.store.engine) == 30


def test_cancelled_async_waiter_still_gets_its_event_written(
    env: tuple[LedgerNode, AuditTrail],
) -> None:
    """A request cancelled while its event commits: the event is stored, the writer lives on."""
    node, trail = env
    slow = threading.Event()
    slow.set()
    # Never removed while commits run: removing a listener mid-dispatch breaks that commit.
    event.listen(node.store.engine, "commit", lambda _c: slow.is_set() and time.sleep(0.2))

    async def main() -> None:
        first = asyncio.create_task(trail.record_async(read_record(1)))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(trail.record_async(read_record(i))) for i in range(2, 6)]
        await asyncio.sleep(0)
        for task in (first, *queued):
            task.cancel()
        await asyncio.gather(first, *queued, return_exceptions=True)

    asyncio.run(main())
    slow.clear()
    assert trail.record(read_record(9))
    assert _count(node.store.engine) == 6


@pytest.mark.parametrize("suite", ["intl-v1", "sm-v1"])
def test_batch_and_certificate_round_trip(tmp_path: Path, db_url: str | None, suite: str) -> None:
    """Every event of a flushed batch gets a certificate that verifies offline."""
    with trail_on(tmp_path, db_url, suite=suite, max_batch=7) as (node, trail):
        ids = [trail.record(read_record(i)) for i in range(17)]
        with pytest.raises(StateError, match="not anchored yet; retry after the next batch"):
            trail.certificate(ids[0])
        assert trail.flush() == 17
        batches = _chain_batches(node)
        assert [b["meta"]["count"] for b in batches] == [7, 7, 3]
        assert [b["meta"]["first_seq"] for b in batches] == [1, 8, 15]
        assert all(b["ref"].startswith("audit-batch/") for b in batches)
        for event_id in ids:
            cert = trail.certificate(event_id)
            assert cert["format"] == "medledger-audit-cert/1"
            assert cert["event"]["id"] == event_id
            report = verify_audit_certificate(json.loads(json.dumps(cert)), node.trust)
            assert f"suite {suite}" in " ".join(report.passed)
        cert = trail.certificate(ids[9])
        assert cert["batch"]["leaf_index"] == 2
        cert["event"]["outcome"] = "4"
        with pytest.raises(VerificationFailed) as info:
            verify_audit_certificate(cert, node.trust)
        assert info.value.check == "audit.inclusion"
        assert trail.flush() == 0


def test_read_and_search(env: tuple[LedgerNode, AuditTrail]) -> None:
    """read adds meta.lastUpdated; searches filter, page newest first, refuse unknown params."""
    _, trail = env
    first = trail.record(read_record(1))
    trail.record(read_record(2, LIS, status=404))
    glass = trail.record(read_record(3, replace(DR_LI, break_glass="cardiac arrest")))
    event = trail.read(first)
    assert event["meta"]["lastUpdated"] == event["recorded"]
    with pytest.raises(NotFound):
        trail.read("00000000-0000-4000-8000-000000000000")

    def ids(*params: tuple[str, str]) -> list[str]:
        return [e["id"] for e in trail.search(list(params))[0]]

    assert ids() == [glass, ids()[1], first]
    assert ids(("agent", "dr.li")) == [glass, first]
    assert ids(("agent", "urn:medledger:client|lis-01"), ("outcome", "4")) == [ids()[1]]
    assert ids(("entity", "Observation/o1")) == [first]
    assert ids(("entity", "Observation/o1/_history/1")) == [first]
    assert ids(("entity", "Observation/o1,Observation/o3")) == [glass, first]
    assert ids(("patient", PSEUDONYM), ("action", "R"), ("outcome", "0")) == [glass, first]
    assert ids(("break_glass", "true")) == [glass]
    assert ids(("date", "ge2000-01-01"), ("date", "lt2999-01-01")) == ids()
    assert ids(("date", "lt2000-01-01")) == []
    assert ids(("date", event["recorded"])) == [first]
    assert ids(("date", "gt" + event["recorded"])) == ids()[:2]
    page, total, token = trail.search([("_count", "2"), ("_total", "accurate")])
    assert (len(page), total) == (2, 3)
    assert token is not None
    rest, _, after = trail.search([("_count", "2"), ("_page_token", token)])
    assert [e["id"] for e in rest] == [first]
    assert after is None
    assert (
        trail.search([], institutions={"hosp-central"})[0][0]["agent"][0]["who"]["identifier"][
            "value"
        ]
        == "lis-01"
    )
    assert trail.search([], institutions=set())[0] == []
    for bad in (("name", "x"), ("outcome", "2"), ("date", "ne2026"), ("_count", "0")):
        with pytest.raises(InputError) as info:
            trail.search([bad])
        assert info.value.field == bad[0]
    assert [e["id"] for e in trail.break_glass_events()] == [glass]
    assert trail.break_glass_events(since="2999-01-01") == []


def test_background_thread_anchors_after_the_interval(tmp_path: Path, db_url: str | None) -> None:
    """start(): recorded events are anchored within about batch_interval."""
    with trail_on(tmp_path, db_url, batch_interval=0.05) as (_, trail):
        trail.start()
        event_id = trail.record(read_record(1))
        _wait(lambda: trail.certificate(event_id))


def test_background_thread_anchors_when_max_batch_wait(tmp_path: Path, db_url: str | None) -> None:
    """start(): max_batch waiting events wake the thread long before the interval is up."""
    with trail_on(tmp_path, db_url, batch_interval=600, max_batch=5) as (_, trail):
        trail.start()
        ids = [trail.record(read_record(i)) for i in range(5)]
        cert = _wait(lambda: trail.certificate(ids[4]))
        assert cert["batch"]["size"] == 5


def test_recover_appends_a_pending_batch_exactly_once(
    env: tuple[LedgerNode, AuditTrail], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch cut but not appended (crash, ledger down) is appended by recover, never twice."""
    node, trail = env
    event_id = trail.record(read_record(1))

    def down(_entries: Any) -> Any:
        raise StorageError("ledger unavailable")

    monkeypatch.setattr(node, "submit", down)
    with pytest.raises(StorageError):
        trail.flush()
    monkeypatch.undo()
    with node.store.engine.connect() as conn:
        assert conn.execute(select(audit_batches.c.state)).scalars().all() == ["pending"]
    assert trail.recover() == 1
    assert trail.recover() == 0
    assert trail.flush() == 0
    assert len(_chain_batches(node)) == 1
    verify_audit_certificate(trail.certificate(event_id), node.trust)


def test_access_events_are_recorded_and_never_raise(
    env: tuple[LedgerNode, AuditTrail], caplog: pytest.LogCaptureFixture
) -> None:
    """Lockout events from Credentials land in the trail; a failing store only logs."""
    from medledger.access.admin import AccessAdmin
    from medledger.access.model import PrincipalKind
    from medledger.access.passwords import FAST, PasswordHasher
    from medledger.errors import AuthenticationFailed
    from tests.access._admin_fixtures import populate

    node, trail = env
    admin = AccessAdmin.open(
        node.store.engine,
        node.data_dir,
        node.suite,
        hasher=PasswordHasher(FAST),
        on_event=trail.record_access_event,
    )
    populate(admin)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            admin.credentials.authenticate(PrincipalKind.USER, "ea", "wrong-password-1")
    events, _, _ = trail.search([("agent", "ea")])
    assert [e["subtype"][0]["code"] for e in events] == ["login"]
    assert events[0]["outcome"] == "4"

    def refuse(_conn: Any) -> None:
        raise RuntimeError("database down")

    event.listen(node.store.engine, "commit", refuse)
    trail.record_access_event({"event": "auth.unlock", "principal_kind": "user",
                               "principal": "ea", "at": "2026-11-23T00:00:00.000000Z",
                               "reason": "expired"})  # fmt: skip
    event.remove(node.store.engine, "commit", refuse)
    assert "auth.unlock of ea not recorded" in caplog.text


def test_close_anchors_what_was_recorded(tmp_path: Path, db_url: str | None) -> None:
    """close() commits queued events and anchors them; recording afterwards is refused."""
    with trail_on(tmp_path, db_url) as (node, trail):
        event_id = trail.record(read_record(1))
        trail.close()
        with pytest.raises(StateError, match="closed"):
            trail.record(read_record(2))
        again = AuditTrail(node.store.engine, node, node="hosp-central")
        verify_audit_certificate(again.certificate(event_id), node.trust)


def _wait(probe: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except StateError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
