"""Process held messages again, one pass at a time, without losing a request.

A held message waits for a code mapping or for its order. Whatever may release some (a new
ConceptMap, a stored order, the gateway starting) asks for a release. Passes run on one thread
at a time; a request made while a pass runs, or just as the last pass ends, makes the thread
that runs them pass again (a request is never dropped because another thread was busy).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from medledger.interop.journal import Message

__all__ = ["HeldRelease"]


class HeldRelease:
    """Retry the held messages ``held()`` lists with ``retry`` (which returns the new status)."""

    def __init__(
        self, held: Callable[[], Sequence[Message]], retry: Callable[[Message], str]
    ) -> None:
        self._held = held
        self._retry = retry
        self._lock = threading.Lock()
        self._again = False  # a release was asked for while a thread held the lock

    def __call__(self, *, waiting: bool = False) -> int:
        """Process held messages again; return how many were stored. ``waiting`` only retries
        results held for their order. Returns 0 at once if another thread is releasing: that
        thread makes another pass for this request."""
        total = 0
        while self._lock.acquire(blocking=False):
            try:
                total += self._passes(waiting)
            finally:
                self._lock.release()
            if not self._again:
                return total
            waiting = False  # asked for between the last pass and the release: pass again
        self._again = True
        return total

    def _passes(self, waiting: bool) -> int:
        """Pass over the held messages until a pass stores nothing and nobody asked again."""
        total = 0
        while True:
            self._again = False
            stored = 0
            for message in self._held():
                if waiting and message.mismatch != "order-unknown":
                    continue
                stored += self._retry(message) == "stored"
            total += stored
            if not stored and not self._again:
                return total
            waiting = False  # a stored order may release results, a result nothing more
