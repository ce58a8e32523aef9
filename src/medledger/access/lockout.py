"""Lockout after repeated sign-in failures, with back-off (pure: no storage, no clock reads).

The rule (``LockoutPolicy``, defaults):

- 5 consecutive failures lock the account for 30 s.
- The failure count is not reset when a lock expires, so each further failure locks it again
  for twice as long as the time before: 30 s, 60 s, 120 s, … capped at 1 h.
- Attempts while locked are refused without checking the password, and neither count as
  failures nor extend the lock.
- A successful sign-in (or an admin unlock) resets everything.

Each transition that an auditor must see returns an ``Event``, a small dict with no password,
hash or personal data: ``{"event": "auth.lockout" | "auth.unlock", "principal_kind",
"principal", "at", ...}``. The audit trail records them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from medledger.errors import AccountLocked

__all__ = ["Event", "LockState", "LockoutPolicy", "rfc3339"]

Event = dict[str, Any]


def rfc3339(epoch: float) -> str:
    """Return ``epoch`` as RFC 3339 UTC with microseconds (fits String(32))."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LockState:
    """Consecutive failures, the lock's end (epoch seconds) if locked, and lockouts so far."""

    failures: int = 0
    locked_until: float | None = None
    lockouts: int = 0


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """After ``threshold`` failures lock for ``base_seconds``, doubling up to ``max_seconds``."""

    threshold: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def lock_seconds(self, lockouts: int) -> float:
        """Return the length of the ``lockouts``-th lock (1-based)."""
        if lockouts < 1:
            raise ValueError("lockouts is 1-based")
        return min(self.base_seconds * 2.0 ** min(lockouts - 1, 60), self.max_seconds)

    def check(
        self, state: LockState, now: float, who: tuple[str, str]
    ) -> tuple[LockState, list[Event]]:
        """Run before verifying a secret: raise AccountLocked while locked.

        Return the state with an expired lock cleared, and an ``auth.unlock`` event for it.
        """
        if state.locked_until is None:
            return state, []
        if now < state.locked_until:
            wait = max(1, int(state.locked_until - now + 0.999))
            raise AccountLocked(
                f"too many failed sign-ins; try again in {wait} s", retry_after=wait
            )
        return replace(state, locked_until=None), [
            _event("auth.unlock", who, now, reason="expired")
        ]

    def failure(
        self, state: LockState, now: float, who: tuple[str, str]
    ) -> tuple[LockState, list[Event]]:
        """Record a failed attempt; lock (and return an ``auth.lockout`` event) at the threshold."""
        if state.locked_until is not None and now < state.locked_until:
            return state, []  # raced with the attempt that locked it: already counted
        failures = state.failures + 1
        if failures < self.threshold:
            return replace(state, failures=failures, locked_until=None), []
        lockouts = state.lockouts + 1
        seconds = self.lock_seconds(lockouts)
        until = now + seconds
        event = _event(
            "auth.lockout",
            who,
            now,
            failures=failures,
            lock_seconds=seconds,
            locked_until=rfc3339(until),
        )
        return LockState(failures, until, lockouts), [event]

    def success(
        self, state: LockState, now: float, who: tuple[str, str]
    ) -> tuple[LockState, list[Event]]:
        """Record a successful sign-in: reset the count and the back-off."""
        del now, who  # the unlock event, if any, was emitted by ``check``
        return LockState(), []

    def unlock(
        self, state: LockState, now: float, who: tuple[str, str], by: str
    ) -> tuple[LockState, list[Event]]:
        """Reset on an admin's request; return an ``auth.unlock`` event if anything was set."""
        if state == LockState():
            return state, []
        return LockState(), [_event("auth.unlock", who, now, reason="admin", by=by)]


def _event(name: str, who: tuple[str, str], now: float, **extra: Any) -> Event:
    kind, principal = who
    return {
        "event": name,
        "principal_kind": kind,
        "principal": principal,
        "at": rfc3339(now),
        **extra,
    }
