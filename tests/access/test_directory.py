"""The SQL directory and sign-in checks, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, text

from medledger.access.credentials import Credentials
from medledger.access.directory import Directory
from medledger.access.lockout import Event, LockoutPolicy
from medledger.access.model import Institution, InstitutionKind, PrincipalKind, Role
from medledger.access.passwords import FAST, HashParams, PasswordHasher
from medledger.errors import AccountLocked, AuthenticationFailed, NotFound, StateError, StorageError
from medledger.store import schema_access, schema_tokens
from tests.access._admin_fixtures import migrated_engine

USER = PrincipalKind.USER
CLIENT = PrincipalKind.CLIENT


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(db_url, tmp_path) as eng:
        yield eng


@pytest.fixture
def directory(engine: Engine) -> Directory:
    d = Directory(engine)
    d.add_institution(
        Institution(
            "hosp-east", "东院", InstitutionKind.MEMBER, "intl-v1", "ab" * 8, "cd" * 32, "t"
        )
    )
    return d


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_schema_matches_the_migration(engine: Engine) -> None:
    """The access tables Alembic creates are exactly those schema_access declares."""
    only = MetaData()
    for module in (schema_access, schema_tokens):  # both declare access_* tables
        for table in module.__all__:
            getattr(module, table).to_metadata(only)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), only)
    ours = [d for d in diff if "access_" in repr(d)]
    assert not [d for d in ours if d[0] != "remove_table"], ours


def test_institutions_users_clients_round_trip(directory: Directory) -> None:
    """What is added is listed back with its grants; a missing institution is NotFound."""
    directory.add_user("dr.li", "hosp-east", "李医生", "h", [(Role.CLINICIAN, "hosp-east")], "ea")
    directory.add_client(
        "lis-01",
        "hosp-east",
        "LIS",
        None,
        ({"kty": "OKP"}, "tp"),
        [(Role.INTEGRATION, "hosp-east")],
        "ea",
    )
    user = directory.get_user("dr.li")
    assert user is not None
    assert user.display_name == "李医生"
    assert user.roles == {Role.CLINICIAN}
    assert user.grants[0].granted_by == "ea"
    client = directory.get_client("lis-01")
    assert client is not None
    assert not client.has_secret
    assert client.jwk_thumbprint == "tp"
    assert [c.client_id for c in directory.list_clients("hosp-east")] == ["lis-01"]
    assert [u.id for u in directory.list_users()] == ["dr.li"]
    assert directory.list_users("hosp-west") == []
    assert [i.id for i in directory.list_institutions()] == ["hosp-east"]
    with pytest.raises(NotFound) as info:
        directory.add_user("x.y", "hosp-west", "X", "h", [], "ea")
    assert info.value.field == "institution"


def test_duplicates_are_state_errors(directory: Directory) -> None:
    """A taken id, or a grant held already, is a StateError naming it (not a driver error)."""
    directory.add_user("dr.li", "hosp-east", "Li", "h", [], "ea")
    with pytest.raises(StateError, match=r"user dr\.li already exists"):
        directory.add_user("dr.li", "hosp-east", "Li", "h", [], "ea")
    with pytest.raises(StateError, match="institution hosp-east already exists"):
        directory.add_institution(directory.institution("hosp-east"))
    directory.add_grant(USER, "dr.li", Role.CLINICIAN, "hosp-east", "ea")
    with pytest.raises(StateError, match="already holds clinician"):
        directory.add_grant(USER, "dr.li", Role.CLINICIAN, "hosp-east", "ea")


def test_revoke_keeps_history_and_allows_a_new_grant(directory: Directory, engine: Engine) -> None:
    """A revoked grant stays as a row with who revoked it; the role can be granted again."""
    directory.add_user("dr.li", "hosp-east", "Li", "h", [(Role.CLINICIAN, "hosp-east")], "ea")
    assert directory.revoke_grant(USER, "dr.li", Role.CLINICIAN, "hosp-east", "ea")
    assert not directory.revoke_grant(USER, "dr.li", Role.CLINICIAN, "hosp-east", "ea")
    user = directory.get_user("dr.li")
    assert user is not None
    assert user.grants == ()
    directory.add_grant(USER, "dr.li", Role.CLINICIAN, "hosp-east", "ea")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT revoked_by FROM access_grants ORDER BY id")).all()
    assert [r[0] for r in rows] == ["ea", None]


def test_group_admin_count_ignores_disabled_and_revoked(directory: Directory) -> None:
    """Only enabled users with an active group_admin grant count."""
    assert directory.count_active_group_admins() == 0
    directory.add_user("root", "hosp-east", "R", "h", [(Role.GROUP_ADMIN, "*")], "bootstrap")
    directory.add_user("r2", "hosp-east", "R2", "h", [(Role.GROUP_ADMIN, "*")], "root")
    assert directory.count_active_group_admins() == 2
    assert directory.count_active_group_admins(excluding="root") == 1
    assert directory.set_disabled(USER, "r2", True)
    assert directory.count_active_group_admins() == 1
    assert not directory.set_disabled(USER, "nobody", True)


def test_authenticate_locks_out_and_rehashes(engine: Engine, directory: Directory) -> None:
    """Wrong passwords lock after 5; the lock expires; a success rehashes an old hash."""
    old = PasswordHasher(HashParams(time_cost=1, memory_cost=32, parallelism=1))
    directory.add_user("dr.li", "hosp-east", "Li", old.hash("right-password"), [], "ea")
    clock, events = Clock(), list[Event]()
    creds = Credentials(engine, hasher=PasswordHasher(FAST), clock=clock, on_event=events.append)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed) as info:
            creds.authenticate(USER, "dr.li", "wrong-password")
        assert type(info.value) is AuthenticationFailed
    assert [e["event"] for e in events] == ["auth.lockout"]
    with pytest.raises(AccountLocked):  # even the right password, while locked
        creds.authenticate(USER, "dr.li", "right-password")
    clock.now += 31
    creds.authenticate(USER, "dr.li", "right-password")
    assert [e["event"] for e in events] == ["auth.lockout", "auth.unlock"]
    state = creds.lock_state(USER, "dr.li")
    assert state is not None
    assert state.failures == 0
    assert state.locked_until is None
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM access_credentials")).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")  # rehashed under FAST
    creds.authenticate(USER, "dr.li", "right-password")


def test_parallel_failures_lock_a_correct_guess_out(engine: Engine, directory: Directory) -> None:
    """A right password verified while others locked the account is still refused."""
    hasher = PasswordHasher(FAST)
    directory.add_user("dr.li", "hosp-east", "Li", hasher.hash("right-password"), [], "ea")
    clock, events = Clock(), list[Event]()
    creds = Credentials(engine, hasher=hasher, clock=clock, on_event=events.append)
    real_verify = hasher.verify

    def verify_then_lock(encoded: str, secret: str) -> bool:
        ok = real_verify(encoded, secret)
        hasher.verify = real_verify  # type: ignore[method-assign]
        for _ in range(5):  # the attacker's parallel guesses land meanwhile
            with pytest.raises(AuthenticationFailed):
                creds.authenticate(USER, "dr.li", "guess-guess-guess")
        return ok

    hasher.verify = verify_then_lock  # type: ignore[method-assign]
    with pytest.raises(AccountLocked):
        creds.authenticate(USER, "dr.li", "right-password")


def test_unknown_disabled_and_secretless_are_alike(engine: Engine, directory: Directory) -> None:
    """Unknown, disabled and secret-less accounts all get the same vague failure."""
    hasher = PasswordHasher(FAST)
    directory.add_user("dr.li", "hosp-east", "Li", hasher.hash("right-password"), [], "ea")
    directory.add_client("lis-01", "hosp-east", "LIS", None, None, [], "ea")
    creds = Credentials(engine, hasher=hasher)
    directory.set_disabled(USER, "dr.li", True)
    messages = set()
    for kind, who in ((USER, "nobody"), (USER, "dr.li"), (CLIENT, "lis-01")):
        with pytest.raises(AuthenticationFailed) as info:
            creds.authenticate(kind, who, "right-password")
        assert type(info.value) is AuthenticationFailed
        messages.add(info.value.message)
    assert messages == {"invalid credentials"}


def test_set_secret_replaces_it_and_clears_the_lock(engine: Engine, directory: Directory) -> None:
    """Rotating a client secret makes the old one fail and resets a lockout."""
    hasher = PasswordHasher(FAST)
    directory.add_client("lis-01", "hosp-east", "LIS", hasher.hash("old-secret"), None, [], "ea")
    creds = Credentials(engine, hasher=hasher, policy=LockoutPolicy(threshold=1))
    with pytest.raises(AuthenticationFailed):
        creds.authenticate(CLIENT, "lis-01", "nope")
    assert creds.set_secret(CLIENT, "lis-01", hasher.hash("new-secret"))
    with pytest.raises(AuthenticationFailed):
        creds.authenticate(CLIENT, "lis-01", "old-secret")
    creds.set_secret(CLIENT, "lis-01", hasher.hash("new-secret"))
    creds.authenticate(CLIENT, "lis-01", "new-secret")
    assert not creds.set_secret(CLIENT, "nobody", None)


def test_driver_failures_become_storage_errors(engine: Engine, directory: Directory) -> None:
    """A broken table surfaces as StorageError, never a SQLAlchemy exception."""
    events: list[Event] = []
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE access_credentials"))
    with pytest.raises(StorageError, match="database error"):
        Credentials(engine, on_event=events.append).lock_state(USER, "dr.li")
    with pytest.raises(StorageError):
        directory.add_user("dr.li", "hosp-east", "Li", "h", [], "ea")
