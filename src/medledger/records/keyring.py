"""Per-subject data keys (DEKs), wrapped under a master key: envelope encryption at rest.

Each subject (a patient pseudonym, never PHI) has one random DEK for the suite's AEAD. The
table ``record_keys`` stores it wrapped: ``nonce(12) ‖ AEAD(master, DEK)`` with associated data
``b"medledger-dek/1|" ‖ subject ‖ b"|" ‖ master_kid``, so a wrapped key copied onto another
subject's row, or relabelled with another kid, fails to unwrap. Payloads are sealed with the DEK
as ``nonce(12) ‖ ciphertext ‖ tag``.

Erasure (crypto-shredding) sets ``wrapped`` to NULL and keeps the row as a tombstone, so the
subject can never silently receive a fresh key. On SQLite the wrapped key also leaves the
database files (see ``_keytable``). Copies elsewhere (PostgreSQL dead tuples and WAL archives,
backups) are still wrapped under the master key: rotating to a new master and destroying the
old one makes those copies useless too.

Rotation re-wraps DEKs only; payloads are untouched. Each batch commits on its own and every
row names the kid it is wrapped under, so a rotation killed at any moment leaves each row
readable with the old or the new master, and running it again finishes the job.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from medledger.crypto.suite import Aead, Suite
from medledger.errors import (
    Gone,
    InputError,
    MalformedDocument,
    StateError,
    StorageError,
    VerificationFailed,
)
from medledger.records._keytable import KeyTable
from medledger.records.masterkey import MasterKey

__all__ = ["NONCE_SIZE", "KeyRing", "Progress"]

NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAP_TAG = b"medledger-dek/1|"
_SUBJECT = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int, int], None]
"""Called after each committed rotation batch with (re-wrapped so far, total to do)."""


class KeyRing:
    """Get, use, shred and re-wrap subjects' data keys; the first master is the current one."""

    def __init__(
        self,
        engine: Engine,
        suite: Suite,
        masters: Sequence[MasterKey],
        *,
        cache_size: int = 10_000,
        cache_ttl: float | None = 60.0,
    ) -> None:
        """Open the ring; older ``masters`` unwrap keys not yet rotated to ``masters[0]``.

        Unwrapped keys stay in an LRU of ``cache_size`` entries for ``cache_ttl`` seconds: the
        TTL bounds how long a key shredded by another process stays usable in this one.
        """
        if not masters:
            raise InputError(
                "a key ring needs a master key",
                field="masters",
                value=[],
                expected="one or more master keys",
            )
        self.engine = engine
        self.suite = suite
        self._masters: dict[str, MasterKey] = {}
        for master in masters:
            self._check_master(master)
            self._masters.setdefault(master.kid, master)
        self._current = masters[0]
        self._master_aead: dict[str, Aead] = {}
        self._table = KeyTable(engine)
        self._cache_size = cache_size
        self._cache_ttl = float("inf") if cache_ttl is None else cache_ttl
        self._cache: OrderedDict[str, tuple[float, bytes, Aead]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def current(self) -> MasterKey:
        """The master key new data keys are wrapped under."""
        return self._current

    def data_key(self, subject: str) -> bytes:
        """Return the subject's DEK, creating it on first use; raise ``Gone`` if erased."""
        return self._entry(subject)[0]

    def encrypt(self, subject: str, plaintext: bytes, aad: bytes) -> bytes:
        """Seal ``plaintext`` under the subject's DEK; return ``nonce ‖ ciphertext ‖ tag``."""
        aead = self._entry(subject)[1]
        nonce = os.urandom(NONCE_SIZE)
        return nonce + aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, subject: str, blob: bytes, aad: bytes) -> bytes:
        """Open a blob made by ``encrypt`` and return the plaintext.

        Raise ``VerificationFailed`` (check="aead") if the blob or ``aad`` differs from what
        was sealed, ``Gone`` if the subject was erased.
        """
        aead = self._entry(subject)[1]
        if len(blob) < NONCE_SIZE + _TAG_SIZE:
            raise VerificationFailed(
                f"encrypted payload of {len(blob)} bytes is too short to be genuine",
                check="aead",
            )
        return aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)

    def shred(self, subject: str, reason: str) -> str:
        """Destroy the subject's DEK and return the erasure time (RFC 3339, UTC).

        A second call changes nothing and returns the first erasure's time. A subject that
        never had a key gets a tombstone, so no key can be created for it later.
        """
        _check_subject(subject)
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(
                "an erasure needs a reason", field="reason", value=reason, expected="some text"
            )
        when, _ = self._table.shred(subject, reason, self._current.kid)
        self._forget(subject)
        return when

    def rotate(
        self, new_master: MasterKey, *, batch: int = 500, progress: Progress | None = None
    ) -> int:
        """Re-wrap every live DEK under ``new_master`` and make it current; return the count.

        Each batch is one transaction. ``progress`` runs after each committed batch; if it
        raises, rotation stops there and a later call carries on.
        """
        self._check_master(new_master)
        if not isinstance(batch, int) or batch < 1:
            raise InputError(
                "batch size must be positive", field="batch", value=batch, expected="an int >= 1"
            )
        # New keys created by this ring from now on are wrapped under the new master already.
        self._masters = {new_master.kid: new_master, **self._masters}
        self._current = new_master

        def rewrap(subject: str, kid: str, wrapped: bytes) -> bytes:
            dek = self._unwrap(self._master(subject, kid), subject, wrapped)
            return self._wrap(new_master, subject, dek)

        total = self._table.count_not_under(new_master.kid)
        done, after = 0, ""
        while True:
            # Walk subjects in key order so the loop ends even if rows keep changing under it;
            # rows created behind the cursor under an old master are left for the next run.
            after, changed = self._table.rewrap_batch(new_master.kid, after, batch, rewrap)
            if not after:
                return done
            done += changed
            if progress is not None:
                progress(done, total)

    def rotation_status(self) -> dict[str, int]:
        """Return how many live (unshredded) DEKs are wrapped under each master kid."""
        return self._table.status()

    # -- internals ---------------------------------------------------------------------------

    def _check_master(self, master: MasterKey) -> None:
        if master.suite.name != self.suite.name:
            raise InputError(
                f"master key {master.kid} is for suite {master.suite.name}, not {self.suite.name}",
                field="masters",
                value=master.kid,
                expected=f"a {self.suite.name} master key",
            )

    def _entry(self, subject: str) -> tuple[bytes, Aead]:
        _check_subject(subject)
        with self._lock:
            hit = self._cache.get(subject)
            if hit is not None and hit[0] > time.monotonic():
                self._cache.move_to_end(subject)
                return hit[1], hit[2]
        for _ in range(3):
            row = self._table.get(subject)
            if row is not None:
                kid, wrapped, shredded_at = row
                if wrapped is None:
                    # Never the reason: it may itself describe the patient.
                    raise Gone(
                        f"the data of subject {subject} was erased at {shredded_at}",
                        subject=subject,
                        erased_at=shredded_at,
                    )
                dek = self._unwrap(self._master(subject, kid), subject, wrapped)
                return self._remember(subject, dek)
            dek = os.urandom(self.suite.aead_key_size)
            master = self._current
            try:
                self._table.insert(subject, master.kid, self._wrap(master, subject, dek))
            except IntegrityError:
                continue  # another caller created it first: theirs wins, read it back
            return self._remember(subject, dek)
        raise StorageError(f"could not create or read the data key of subject {subject}")

    def _master(self, subject: str, kid: str) -> MasterKey:
        master = self._masters.get(kid)
        if master is None:
            raise StateError(
                f"the data key of subject {subject} is wrapped under master key {kid}, which "
                "this key ring does not hold; load that master key as an older master",
                subject=subject,
                master_kid=kid,
            )
        return master

    def _master_aead_for(self, master: MasterKey) -> Aead:
        aead = self._master_aead.get(master.kid)
        if aead is None:
            aead = self._master_aead[master.kid] = self.suite.aead(master.key)
        return aead

    def _wrap(self, master: MasterKey, subject: str, dek: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._master_aead_for(master).encrypt(nonce, dek, _wrap_ad(subject, master))

    def _unwrap(self, master: MasterKey, subject: str, wrapped: bytes) -> bytes:
        try:
            dek = self._master_aead_for(master).decrypt(
                wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], _wrap_ad(subject, master)
            )
        except (VerificationFailed, MalformedDocument):
            dek = b""
        if len(dek) != self.suite.aead_key_size:
            raise VerificationFailed(
                f"the wrapped data key of subject {subject} does not unwrap under master key "
                f"{master.kid}: the row was altered or the master key is not the one it names",
                check="aead",
                subject=subject,
                master_kid=master.kid,
            )
        return dek

    def _remember(self, subject: str, dek: bytes) -> tuple[bytes, Aead]:
        aead = self.suite.aead(dek)
        with self._lock:
            self._cache[subject] = (time.monotonic() + self._cache_ttl, dek, aead)
            self._cache.move_to_end(subject)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return dek, aead

    def _forget(self, subject: str) -> None:
        with self._lock:
            self._cache.pop(subject, None)


def _check_subject(subject: object) -> None:
    if not isinstance(subject, str) or _SUBJECT.fullmatch(subject) is None:
        # Not echoed: a caller that got this wrong may be passing a real patient id.
        raise InputError(
            "subject must be a pseudonym, never a patient identifier",
            field="subject",
            value="(redacted)",
            expected="64 lowercase hex characters (see records.blind.pseudonym)",
        )


def _wrap_ad(subject: str, master: MasterKey) -> bytes:
    return _WRAP_TAG + subject.encode() + b"|" + master.kid.encode()
