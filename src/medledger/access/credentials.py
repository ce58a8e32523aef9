"""Sign-in checks for users (password) and clients (client secret), with lockout.

``Credentials.authenticate`` is the one entry point the token endpoint needs. It

1. refuses a locked account before looking at the secret (``AccountLocked``);
2. verifies the secret against its Argon2id hash outside any transaction (about 100 ms);
3. records the outcome in one write transaction that re-reads the lockout state, so
   concurrent attempts are all counted, and a correct secret that arrives after parallel
   wrong guesses locked the account is refused too;
4. re-hashes the secret when the stored hash used other Argon2 parameters;
5. hands every lockout and unlock event to ``on_event`` (the audit trail) after commit.

Unknown, disabled and secret-less accounts get the same ``AuthenticationFailed`` after the
same amount of hashing work, so the answer does not reveal which accounts exist.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, select, update

from medledger.access._sql import SqlTables, utc_now
from medledger.access.lockout import Event, LockoutPolicy, LockState
from medledger.access.model import PrincipalKind
from medledger.access.passwords import PasswordHasher
from medledger.errors import AccountLocked, AuthenticationFailed
from medledger.store.schema_access import access_clients as CLIENTS
from medledger.store.schema_access import access_credentials as CREDS
from medledger.store.schema_access import access_users as USERS

__all__ = ["Clock", "Credentials", "EventSink", "log_event"]

Clock = Callable[[], float]
EventSink = Callable[[Event], None]

_log = logging.getLogger(__name__)


def log_event(event: Event) -> None:
    """The default sink: log the event (ids and times only; events never hold secrets)."""
    _log.warning("%s %s %s", event["event"], event["principal_kind"], event["principal"])


class Credentials(SqlTables):
    """Secrets and lockout state of users and clients on one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        hasher: PasswordHasher | None = None,
        policy: LockoutPolicy | None = None,
        clock: Clock = time.time,
        on_event: EventSink = log_event,
    ) -> None:
        super().__init__(engine)
        self.hasher = hasher or PasswordHasher()
        self.policy = policy or LockoutPolicy()
        self.clock = clock
        self.on_event = on_event

    def lock_state(self, kind: PrincipalKind, principal: str) -> LockState | None:
        """Return the principal's lockout state, or None if it has no credential row."""
        with self.read() as c:
            row = _row(c, kind, principal, lock=False)
        return None if row is None else row[1]

    def set_secret(self, kind: PrincipalKind, principal: str, secret_hash: str | None) -> bool:
        """Replace the secret hash and clear the lockout; return False if there is no row."""
        with self.write() as c:
            result = c.execute(
                update(CREDS)
                .where(CREDS.c.kind == kind.value, CREDS.c.principal == principal)
                .values(
                    secret_hash=secret_hash,
                    failures=0,
                    lockouts=0,
                    locked_until=None,
                    changed=utc_now(),
                )
            )
        return bool(result.rowcount)

    def unlock(self, kind: PrincipalKind, principal: str, by: str) -> list[Event]:
        """Clear a lockout on an admin's request; return (and emit) the unlock event."""
        with self.write() as c:
            row = _row(c, kind, principal, lock=self.postgres)
            if row is None:
                return []
            state, events = self.policy.unlock(row[1], self.clock(), (kind.value, principal), by)
            _save(c, kind, principal, state, None)
        self._emit(events)
        return events

    def authenticate(self, kind: PrincipalKind, principal: str, secret: str) -> None:
        """Return if ``secret`` is the principal's; raise AuthenticationFailed or AccountLocked."""
        who = (kind.value, principal)
        with self.read() as c:
            row = _row(c, kind, principal, lock=False)
            enabled = row is not None and _enabled(c, kind, principal)
        if row is None or row[0] is None or not enabled:
            self.hasher.verify_dummy(secret)
            raise AuthenticationFailed("invalid credentials")
        stored, state = row[0], row[1]
        self.policy.check(state, self.clock(), who)  # raises while locked; expiry handled below
        ok = self.hasher.verify(stored, secret)
        fresh = self.hasher.hash(secret) if ok and self.hasher.needs_rehash(stored) else None
        events: list[Event] = []
        locked: AccountLocked | None = None
        with self.write() as c:
            current = _row(c, kind, principal, lock=self.postgres)
            if current is None:  # deleted meanwhile
                raise AuthenticationFailed("invalid credentials")
            now = self.clock()
            try:
                state, events = self.policy.check(current[1], now, who)
            except AccountLocked as exc:
                locked = exc  # parallel failures locked it while we verified
            else:
                step = self.policy.success if ok else self.policy.failure
                state, more = step(state, now, who)
                events += more
                changed = current[0] != stored  # the secret was rotated while we verified
                _save(c, kind, principal, state, fresh if ok and not changed else None)
        self._emit(events)
        if locked is not None:
            raise locked
        if not ok:
            raise AuthenticationFailed("invalid credentials")

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.on_event(event)


def _row(
    c: Connection, kind: PrincipalKind, principal: str, *, lock: bool
) -> tuple[str | None, LockState] | None:
    query = select(CREDS).where(CREDS.c.kind == kind.value, CREDS.c.principal == principal)
    row = c.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    return row.secret_hash, LockState(int(row.failures), row.locked_until, int(row.lockouts))


def _enabled(c: Connection, kind: PrincipalKind, principal: str) -> bool:
    if kind is PrincipalKind.USER:
        query = select(USERS.c.disabled).where(USERS.c.id == principal)
    else:
        query = select(CLIENTS.c.disabled).where(CLIENTS.c.client_id == principal)
    row = c.execute(query).first()
    return row is not None and not row.disabled


def _save(
    c: Connection, kind: PrincipalKind, principal: str, state: LockState, fresh: str | None
) -> None:
    values: dict[str, object] = {
        "failures": state.failures,
        "lockouts": state.lockouts,
        "locked_until": state.locked_until,
        "changed": utc_now(),
    }
    if fresh is not None:
        values["secret_hash"] = fresh
    c.execute(
        update(CREDS)
        .where(CREDS.c.kind == kind.value, CREDS.c.principal == principal)
        .values(**values)
    )
