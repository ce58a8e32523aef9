"""One conformance suite for the token stores: in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData

from medledger.access.assertions import MemorySeenJtis
from medledger.access.refresh import MemoryRefreshStore, RefreshRecord
from medledger.access.revocations import MemoryRevocations
from medledger.access.token_store import FAMILY_GRACE, TokenStores
from medledger.store import migrate, schema_tokens
from tests.access._admin_fixtures import migrated_engine


@dataclass
class Stores:
    revocations: Any
    refresh: Any
    seen_jtis: Any
    prune: Callable[[float], int] | None


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """The in-memory stores, or the SQL ones on a fresh database of each backend."""
    if request.param == "memory":
        refresh = MemoryRefreshStore()
        yield Stores(MemoryRevocations(families=refresh), refresh, MemorySeenJtis(), None)
        return
    url = None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    with migrated_engine(url, tmp_path) as engine:
        sql = TokenStores.open(engine)
        yield Stores(sql.revocations, sql.refresh, sql.seen_jtis, sql.prune)


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(db_url, tmp_path) as eng:
        yield eng


def record(token_hash: str = "h" * 64, family: str = "fam-1", **kw: Any) -> RefreshRecord:
    fields: dict[str, Any] = {
        "token_hash": token_hash,
        "family_id": family,
        "subject": "dr.li",
        "institution": "hosp-a",
        "client_id": None,
        "scope": "user/*.rs offline_access",
        "issued_at": 100,
        "expires_at": 200,
        "family_expires_at": 1000,
        **kw,
    }
    return RefreshRecord(**fields)


def race(n: int, call: Callable[[], bool]) -> list[bool]:
    """Run ``call`` in ``n`` threads released at once; return what each returned."""
    barrier = threading.Barrier(n)
    out: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        got = call()
        with lock:
            out.append(got)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_revocations(stores: Stores) -> None:
    """A revoked jti, or a token of a revoked sign-in, is revoked; nothing else is."""
    rev = stores.revocations
    assert not rev.is_revoked("j1")
    rev.revoke("j1", 500)
    rev.revoke("j1", 400)  # revoking again never shortens it
    assert rev.is_revoked("j1")
    assert rev.is_revoked("j1", "fam-x")
    assert not rev.is_revoked("j2", "fam-1")
    stores.refresh.revoke_family("fam-1", 150)
    assert rev.is_revoked("j2", "fam-1")
    assert not rev.is_revoked("j2")
    if stores.prune is not None:
        assert stores.prune(499) == 0
        assert stores.prune(501) == 1
        assert rev.is_revoked("j2", "fam-1")  # a revoked family outlives its tokens' revocations


def test_refresh_records_round_trip(stores: Stores) -> None:
    """What is added is found again, field for field; mark_used works once."""
    rec = record(client_id="app-1")
    stores.refresh.add(rec)
    assert stores.refresh.find(rec.token_hash) == rec
    assert stores.refresh.find("0" * 64) is None
    assert stores.refresh.mark_used(rec.token_hash, 150)
    assert not stores.refresh.mark_used(rec.token_hash, 151)
    assert stores.refresh.find(rec.token_hash).used_at == 150
    assert not stores.refresh.mark_used("0" * 64, 150)


def test_family_revocation_covers_later_tokens(stores: Stores) -> None:
    """Revoking a family is idempotent and covers tokens added to it afterwards."""
    stores.refresh.add(record())
    assert not stores.refresh.family_revoked("fam-1")
    stores.refresh.revoke_family("fam-1", 150)
    stores.refresh.revoke_family("fam-1", 160)
    stores.refresh.add(record("i" * 64))
    assert stores.refresh.family_revoked("fam-1")
    assert not stores.refresh.family_revoked("fam-2")
    stores.refresh.revoke_family("never-seen", 170)  # a family nobody stored: still recorded
    assert stores.refresh.family_revoked("never-seen")


def test_mark_used_is_atomic(stores: Stores) -> None:
    """Twenty concurrent mark_used calls on one token: exactly one wins."""
    stores.refresh.add(record())
    results = race(20, lambda: stores.refresh.mark_used("h" * 64, 150))
    assert sorted(results) == [False] * 19 + [True]


def test_seen_jtis_are_atomic_and_per_client(stores: Stores) -> None:
    """An assertion id is accepted once per client, even under concurrency."""
    results = race(20, lambda: stores.seen_jtis.remember("lis-01", "a-1", 300))
    assert sorted(results) == [False] * 19 + [True]
    assert stores.seen_jtis.remember("his-02", "a-1", 300)
    if stores.prune is not None:
        assert stores.prune(301) == 2
        assert stores.seen_jtis.remember("lis-01", "a-1", 600)


def test_prune_keeps_live_families(engine: Engine) -> None:
    """Refresh tokens stay until their family ends; revoked families until their tokens can't."""
    sql = TokenStores.open(engine)
    sql.refresh.add(record())
    sql.refresh.revoke_family("fam-1", 150)
    assert sql.prune(999) == 0
    assert sql.prune(1001) == 1  # the refresh token: its family ended at 1000
    assert sql.refresh.family_revoked("fam-1")
    assert sql.prune(1000 + FAMILY_GRACE + 1) == 1
    assert not sql.refresh.family_revoked("fam-1")


def test_schema_matches_the_migration(engine: Engine) -> None:
    """The token tables Alembic creates are exactly those schema_tokens declares."""
    only = MetaData()
    for table in schema_tokens.__all__:
        getattr(schema_tokens, table).to_metadata(only)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), only)
    ours = [d for d in diff if any(t in repr(d) for t in schema_tokens.__all__)]
    assert not ours, ours


def test_migration_downgrades_and_upgrades(engine: Engine) -> None:
    """0007 can be rolled back to 0006 and applied again."""
    cfg = migrate._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    assert migrate.current_revision(engine) == "0006"
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    TokenStores.open(engine).revocations.revoke("j", 1)
