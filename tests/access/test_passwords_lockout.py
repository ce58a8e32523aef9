"""Argon2id hashing, the password policy, and lockout back-off on a fake clock."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.access.lockout import LockoutPolicy, LockState
from medledger.access.passwords import (
    FAST,
    PRODUCTION,
    HashParams,
    PasswordHasher,
    check_password_policy,
)
from medledger.errors import AccountLocked, InputError

WHO = ("user", "dr.li")


def test_production_parameters_are_argon2id_64mib_and_fast_enough() -> None:
    """Production hashes are Argon2id m=64 MiB, t=3, p=2, and one verify stays under 1 s."""
    hasher = PasswordHasher(PRODUCTION)
    encoded = hasher.hash("correct horse battery staple")
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    start = time.perf_counter()
    assert hasher.verify(encoded, "correct horse battery staple")
    assert time.perf_counter() - start < 1.0  # ~0.1 s measured; 1 s leaves room for CI load
    assert not hasher.needs_rehash(encoded)


def test_hash_and_verify() -> None:
    """A hash verifies its own secret only, and is salted (two hashes differ)."""
    hasher = PasswordHasher(FAST)
    a, b = hasher.hash("s3cret-s3cret"), hasher.hash("s3cret-s3cret")
    assert a != b
    assert hasher.verify(a, "s3cret-s3cret")
    assert not hasher.verify(a, "s3cret-s3creT")
    assert not hasher.verify("not-a-hash", "s3cret-s3cret")
    assert "s3cret" not in a


def test_changed_parameters_ask_for_a_rehash() -> None:
    """A hash made under other parameters needs a rehash under the current ones."""
    old = PasswordHasher(HashParams(time_cost=1, memory_cost=32, parallelism=1)).hash("x" * 12)
    assert PasswordHasher(FAST).needs_rehash(old)
    assert PasswordHasher(FAST).verify(old, "x" * 12)  # still verifies meanwhile
    assert PasswordHasher(FAST).needs_rehash("garbage")


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short-pw", "shorter than 12"),
        ("            ", "whitespace"),
        ("x" * 1025, "longer than 1024"),
        ("Dr.Li.Hospital", "account id"),
    ],
)
def test_policy_refusals_name_the_field_not_the_password(password: str, problem: str) -> None:
    """Each refusal is an InputError on field 'password' that never echoes the password."""
    with pytest.raises(InputError) as info:
        check_password_policy(password, "dr.li.hospital")
    err = info.value
    assert err.field == "password"
    assert problem in err.message
    if password.strip():
        assert password not in str(err.to_dict())
    assert err.to_dict()["details"]["value"] == "(not shown)"


def test_policy_accepts_a_long_password() -> None:
    """Twelve characters that are not the account id pass."""
    check_password_policy("苹果香蕉橘子葡萄西瓜草莓", "dr.li")


def test_five_failures_lock_for_30_seconds() -> None:
    """The 5th consecutive failure locks the account and emits one lockout event."""
    policy, state, events = LockoutPolicy(), LockState(), []
    for i in range(5):
        state, ev = policy.failure(state, 1000.0 + i, WHO)
        events += ev
    assert state.locked_until == 1004.0 + 30
    assert [e["event"] for e in events] == ["auth.lockout"]
    assert events[0] | {"at": None} == {
        "event": "auth.lockout",
        "principal_kind": "user",
        "principal": "dr.li",
        "at": None,
        "failures": 5,
        "lock_seconds": 30.0,
        "locked_until": "1970-01-01T00:17:14.000000Z",
    }
    with pytest.raises(AccountLocked) as info:
        policy.check(state, 1020.0, WHO)
    assert info.value.details["retry_after"] == 14
    assert info.value.http_status == 429


def test_back_off_doubles_and_caps_at_one_hour() -> None:
    """After each lock expires, one more failure locks again for twice as long, up to 1 h."""
    policy, state, now = LockoutPolicy(), LockState(), 0.0
    for _ in range(5):
        state, _ = policy.failure(state, now, WHO)
    lengths = []
    for _ in range(10):
        assert state.locked_until is not None
        lengths.append(state.locked_until - now)
        now = state.locked_until
        state, unlocked = policy.check(state, now, WHO)  # expired: an unlock event
        assert [e["event"] for e in unlocked] == ["auth.unlock"]
        assert unlocked[0]["reason"] == "expired"
        state, locked = policy.failure(state, now, WHO)
        assert [e["event"] for e in locked] == ["auth.lockout"]
    assert lengths == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_success_resets_and_locked_attempts_do_not_count() -> None:
    """A success clears the count; failures while locked neither count nor extend the lock."""
    policy, state = LockoutPolicy(), LockState()
    for i in range(4):
        state, _ = policy.failure(state, float(i), WHO)
    state, events = policy.success(state, 5.0, WHO)
    assert state == LockState()
    assert events == []
    for i in range(5):
        state, _ = policy.failure(state, 10.0 + i, WHO)
    until = state.locked_until
    again, events = policy.failure(state, 20.0, WHO)
    assert again == state
    assert events == []
    assert again.locked_until == until


def test_admin_unlock_emits_an_event_only_if_something_was_set() -> None:
    """unlock resets the state; the event names who unlocked, and no secret."""
    policy = LockoutPolicy()
    assert policy.unlock(LockState(), 0.0, WHO, "root") == (LockState(), [])
    state, events = policy.unlock(LockState(5, 99.0, 1), 0.0, WHO, "root")
    assert state == LockState()
    assert events[0]["event"] == "auth.unlock"
    assert events[0]["by"] == "root"


@given(st.lists(st.booleans(), max_size=40))
def test_lock_only_after_threshold_consecutive_failures(outcomes: list[bool]) -> None:
    """Whatever the sequence, a lock starts exactly when the run of failures reaches 5."""
    policy, state, run, now = LockoutPolicy(), LockState(), 0, 0.0
    for ok in outcomes:
        now += 10_000.0  # every lock has expired by the next attempt
        state, _ = policy.check(state, now, WHO)
        state, events = (policy.success if ok else policy.failure)(state, now, WHO)
        run = 0 if ok else run + 1
        assert (state.locked_until is not None) == (run >= 5)
        assert bool(events) == (run >= 5)
