"""The key ring: per-subject data keys, encryption, shredding and master-key rotation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from medledger.crypto.registry import get_suite
from medledger.crypto.suite import Suite
from medledger.errors import Gone, InputError, StateError, VerificationFailed
from medledger.records.keyring import KeyRing
from medledger.records.masterkey import MasterKey
from medledger.store.engine import READ_ONLY, make_engine
from medledger.store.migrate import upgrade
from medledger.store.schema import record_keys

AAD = b"DiagnosticReport/1/_history/1"


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(db_url or f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["intl-v1", "sm-v1"])
def suite(request: pytest.FixtureRequest) -> Suite:
    return get_suite(request.param)


def master(suite: Suite) -> MasterKey:
    return MasterKey.from_bytes(suite, os.urandom(suite.aead_key_size))


def subject(i: int | str) -> str:
    return hashlib.sha256(f"patient-{i}".encode()).hexdigest()


def rows(engine: Engine) -> dict[str, tuple[str, bytes | None]]:
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        found = conn.execute(
            select(record_keys.c.subject, record_keys.c.master_kid, record_keys.c.wrapped)
        ).all()
    return {s: (k, None if w is None else bytes(w)) for s, k, w in found}


def test_round_trip(engine: Engine, suite: Suite) -> None:
    """encrypt then decrypt gives the plaintext back, for both suites."""
    ring = KeyRing(engine, suite, [master(suite)])
    blob = ring.encrypt(subject(1), "血常规 WBC 6.1".encode(), AAD)
    assert ring.decrypt(subject(1), blob, AAD) == "血常规 WBC 6.1".encode()
    assert len(ring.data_key(subject(1))) == suite.aead_key_size


def test_key_persists_across_rings(engine: Engine, suite: Suite) -> None:
    """A second ring on the same database and master reads the same data key back."""
    m = master(suite)
    blob = KeyRing(engine, suite, [m]).encrypt(subject(1), b"x", AAD)
    other = KeyRing(engine, suite, [m])
    assert other.decrypt(subject(1), blob, AAD) == b"x"
    assert rows(engine)[subject(1)][0] == m.kid


def test_each_encryption_uses_a_fresh_nonce(engine: Engine, suite: Suite) -> None:
    """Encrypting the same plaintext twice gives different blobs."""
    ring = KeyRing(engine, suite, [master(suite)])
    a, b = (ring.encrypt(subject(1), b"same", AAD) for _ in range(2))
    assert a != b
    assert a[:12] != b[:12]


def test_subjects_have_different_keys(engine: Engine, suite: Suite) -> None:
    """One subject's blob does not open under another subject's key."""
    ring = KeyRing(engine, suite, [master(suite)])
    assert ring.data_key(subject(1)) != ring.data_key(subject(2))
    blob = ring.encrypt(subject(1), b"x", AAD)
    with pytest.raises(VerificationFailed):
        ring.decrypt(subject(2), blob, AAD)


@pytest.mark.parametrize("where", [0, 11, 12, -17, -1])
def test_tampered_blob_fails(engine: Engine, suite: Suite, where: int) -> None:
    """Flipping a bit in the nonce, ciphertext or tag raises VerificationFailed(aead)."""
    ring = KeyRing(engine, suite, [master(suite)])
    blob = bytearray(ring.encrypt(subject(1), b"potassium 4.1 mmol/L", AAD))
    blob[where] ^= 0x01
    with pytest.raises(VerificationFailed) as info:
        ring.decrypt(subject(1), bytes(blob), AAD)
    assert info.value.check == "aead"


def test_wrong_aad_fails(engine: Engine, suite: Suite) -> None:
    """A blob opened with different associated data raises VerificationFailed."""
    ring = KeyRing(engine, suite, [master(suite)])
    blob = ring.encrypt(subject(1), b"x", AAD)
    with pytest.raises(VerificationFailed):
        ring.decrypt(subject(1), blob, AAD + b"2")


def test_truncated_blob_fails(engine: Engine, suite: Suite) -> None:
    """A blob shorter than nonce plus tag raises VerificationFailed, not IndexError."""
    ring = KeyRing(engine, suite, [master(suite)])
    with pytest.raises(VerificationFailed):
        ring.decrypt(subject(1), b"\0" * 27, AAD)


def test_wrapped_key_moved_to_another_subject_fails(engine: Engine, suite: Suite) -> None:
    """Copying one subject's wrapped key onto another's row does not unwrap."""
    m = master(suite)
    ring = KeyRing(engine, suite, [m])
    ring.data_key(subject(1))
    ring.data_key(subject(2))
    first = rows(engine)[subject(1)][1]
    with engine.begin() as conn:
        conn.execute(
            update(record_keys).where(record_keys.c.subject == subject(2)).values(wrapped=first)
        )
    with pytest.raises(VerificationFailed):
        KeyRing(engine, suite, [m]).data_key(subject(2))


def test_subject_must_be_a_pseudonym(engine: Engine) -> None:
    """A subject that is not 64 lowercase hex is refused without being echoed."""
    suite = get_suite("intl-v1")
    ring = KeyRing(engine, suite, [master(suite)])
    for bad in ["310101199001011234", subject(1).upper(), subject(1)[:63], ""]:
        with pytest.raises(InputError) as info:
            ring.data_key(bad)
        assert bad not in str(info.value.to_dict()) or bad == ""


def test_ring_needs_masters_of_its_suite(engine: Engine) -> None:
    """An empty master list or a master of another suite is refused."""
    intl, sm = get_suite("intl-v1"), get_suite("sm-v1")
    with pytest.raises(InputError):
        KeyRing(engine, intl, [])
    with pytest.raises(InputError):
        KeyRing(engine, intl, [master(sm)])


def test_shred_makes_data_gone(engine: Engine, suite: Suite) -> None:
    """After shred, decrypt and data_key raise Gone naming the time, never the reason."""
    m = master(suite)
    ring = KeyRing(engine, suite, [m])
    blob = ring.encrypt(subject(1), b"HIV 1/2 Ab negative", AAD)
    when = ring.shred(subject(1), "patient request 2026-11-30 (PIPL art. 47)")
    for r in (ring, KeyRing(engine, suite, [m])):
        with pytest.raises(Gone) as info:
            r.decrypt(subject(1), blob, AAD)
        assert when in info.value.message
        assert "PIPL" not in str(info.value.to_dict())
        with pytest.raises(Gone):
            r.data_key(subject(1))
    assert ring.decrypt(subject(2), ring.encrypt(subject(2), b"y", AAD), AAD) == b"y"


def test_shred_is_idempotent(engine: Engine, suite: Suite) -> None:
    """A second shred changes nothing and returns the first erasure time."""
    ring = KeyRing(engine, suite, [master(suite)])
    ring.data_key(subject(1))
    first = ring.shred(subject(1), "first")
    assert ring.shred(subject(1), "second") == first
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        reason = conn.execute(select(record_keys.c.shred_reason)).scalar_one()
    assert reason == "first"


def test_shred_of_unknown_subject_leaves_a_tombstone(engine: Engine, suite: Suite) -> None:
    """Shredding a subject with no key yet blocks any key being created for it later."""
    ring = KeyRing(engine, suite, [master(suite)])
    ring.shred(subject(9), "erased before any data arrived")
    with pytest.raises(Gone):
        ring.encrypt(subject(9), b"x", AAD)


def test_shred_needs_a_reason(engine: Engine, suite: Suite) -> None:
    """An erasure without a reason is refused."""
    ring = KeyRing(engine, suite, [master(suite)])
    with pytest.raises(InputError):
        ring.shred(subject(1), "  ")


def test_shred_removes_wrapped_key_from_storage(
    engine: Engine, suite: Suite, db_url: str | None, tmp_path: Path
) -> None:
    """After shred the wrapped key is in no table row, nor (SQLite) in the database files."""
    ring = KeyRing(engine, suite, [master(suite)])
    for i in range(20):
        ring.data_key(subject(i))
    wrapped = rows(engine)[subject(3)][1]
    assert wrapped is not None
    if db_url is None:
        assert any(wrapped in p.read_bytes() for p in tmp_path.glob("keys.db*"))
    ring.shred(subject(3), "court order")
    assert rows(engine)[subject(3)] == (ring.current.kid, None)
    assert all(w != wrapped for _, w in rows(engine).values())
    if db_url is None:
        files = list(tmp_path.glob("keys.db*"))
        assert files
        assert not any(wrapped in p.read_bytes() for p in files)


def test_cache_ttl_zero_sees_another_rings_shred(engine: Engine, suite: Suite) -> None:
    """With no cache lifetime, a shred made elsewhere takes effect at once."""
    m = master(suite)
    reader = KeyRing(engine, suite, [m], cache_ttl=0)
    blob = reader.encrypt(subject(1), b"x", AAD)
    KeyRing(engine, suite, [m]).shred(subject(1), "elsewhere")
    with pytest.raises(Gone):
        reader.decrypt(subject(1), blob, AAD)


def test_cache_is_bounded(engine: Engine, suite: Suite) -> None:
    """The unwrapped-key cache never holds more than cache_size entries."""
    ring = KeyRing(engine, suite, [master(suite)], cache_size=3)
    for i in range(10):
        ring.data_key(subject(i))
    assert len(ring._cache) == 3


def test_concurrent_first_use_makes_one_key(engine: Engine, suite: Suite) -> None:
    """20 threads asking for a new subject's key at once all get the same single key."""
    m = master(suite)
    rings = [KeyRing(engine, suite, [m]) for _ in range(20)]
    barrier = threading.Barrier(len(rings))
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def work(ring: KeyRing) -> None:
        try:
            barrier.wait()
            keys.append(ring.data_key(subject("race")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in rings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(keys) == 20
    assert len(set(keys)) == 1
    assert list(rows(engine)) == [subject("race")]
    assert KeyRing(engine, suite, [m]).data_key(subject("race")) == keys[0]


def _fill(ring: KeyRing, n: int) -> dict[str, bytes]:
    return {subject(i): ring.encrypt(subject(i), f"result {i}".encode(), AAD) for i in range(n)}


def test_rotation_rewraps_every_key(engine: Engine, suite: Suite) -> None:
    """rotate re-wraps all keys under the new master; old payloads still decrypt."""
    old, new = master(suite), master(suite)
    ring = KeyRing(engine, suite, [old])
    blobs = _fill(ring, 12)
    before = rows(engine)
    assert ring.rotate(new, batch=5) == 12
    assert ring.rotation_status() == {new.kid: 12}
    after = rows(engine)
    assert all(after[s][1] != before[s][1] for s in blobs)
    assert ring.current == new
    fresh = KeyRing(engine, suite, [new])  # the old master is no longer needed
    for i, (s, blob) in enumerate(blobs.items()):
        assert fresh.decrypt(s, blob, AAD) == f"result {i}".encode()
    with pytest.raises(StateError, match=new.kid):
        KeyRing(engine, suite, [old]).data_key(subject(0))


def test_new_keys_after_rotation_use_the_new_master(engine: Engine, suite: Suite) -> None:
    """A key created after rotate is wrapped under the new master."""
    old, new = master(suite), master(suite)
    ring = KeyRing(engine, suite, [old])
    ring.rotate(new)
    ring.data_key(subject("late"))
    assert rows(engine)[subject("late")][0] == new.kid


def test_rotation_skips_shredded_subjects(engine: Engine, suite: Suite) -> None:
    """Shredded rows are not re-wrapped or counted, and stay Gone."""
    old, new = master(suite), master(suite)
    ring = KeyRing(engine, suite, [old])
    _fill(ring, 4)
    ring.shred(subject(2), "erasure")
    assert ring.rotate(new) == 3
    assert ring.rotation_status() == {new.kid: 3}
    with pytest.raises(Gone):
        KeyRing(engine, suite, [new]).data_key(subject(2))


def test_interrupted_rotation_is_readable_and_resumable(engine: Engine, suite: Suite) -> None:
    """A rotation stopped after one batch leaves every key readable; a rerun completes it."""
    old, new = master(suite), master(suite)
    blobs = _fill(KeyRing(engine, suite, [old]), 10)
    calls: list[tuple[int, int]] = []

    def crash(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt("simulated kill after the first batch")

    with pytest.raises(KeyboardInterrupt):
        KeyRing(engine, suite, [old]).rotate(new, batch=3, progress=crash)
    assert calls == [(3, 10)]
    assert KeyRing(engine, suite, [old]).rotation_status() == {new.kid: 3, old.kid: 7}
    for masters in ([new, old], [old, new]):
        ring = KeyRing(engine, suite, masters)
        for s, blob in blobs.items():
            assert ring.decrypt(s, blob, AAD).startswith(b"result ")
    resumed = KeyRing(engine, suite, [new, old])
    assert resumed.rotate(new, batch=3) == 7
    assert resumed.rotation_status() == {new.kid: 10}
    only_new = KeyRing(engine, suite, [new])
    assert all(only_new.decrypt(s, b, AAD).startswith(b"result ") for s, b in blobs.items())


def test_rotation_without_the_old_master_stops_clearly(engine: Engine, suite: Suite) -> None:
    """Rotating with a ring that lacks a row's master raises StateError naming its kid."""
    old, new = master(suite), master(suite)
    _fill(KeyRing(engine, suite, [old]), 2)
    with pytest.raises(StateError, match=old.kid):
        KeyRing(engine, suite, [new]).rotate(new)
    assert KeyRing(engine, suite, [old]).rotation_status() == {old.kid: 2}


def test_rotation_batch_must_be_positive(engine: Engine, suite: Suite) -> None:
    """batch=0 is refused."""
    ring = KeyRing(engine, suite, [master(suite)])
    with pytest.raises(InputError):
        ring.rotate(master(suite), batch=0)
