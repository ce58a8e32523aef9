"""The solo orderer: an in-process sequencer with group commit.

One thread cuts blocks: it takes what has been submitted, waits at most ``max_wait_ms`` after
the first pending entry or until ``max_entries`` are pending, builds and signs one block, hands it
to the committer (one durable transaction), and only then resolves the submitters' futures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from medledger.errors import MedLedgerError, StateError, StorageError
from medledger.ledger.block import BlockBuilder, ChainTip
from medledger.ordering.base import Committer, Receipt


@dataclass(slots=True)
class _Request:
    entries: Sequence[bytes]
    future: Future[list[Receipt]]
    taken: int = 0
    receipts: list[Receipt] = field(default_factory=list)


class SoloOrderer:
    """Sequence entries into blocks on one node."""

    def __init__(
        self,
        builder: BlockBuilder,
        committer: Committer,
        tip_loader: Callable[[], ChainTip],
        *,
        max_entries: int = 2000,
        max_wait_ms: float = 10.0,
    ) -> None:
        if max_entries < 1 or max_wait_ms < 0:
            raise ValueError("max_entries must be >= 1 and max_wait_ms >= 0")
        self._builder = builder
        self._committer = committer
        self._load_tip = tip_loader
        self._tip = tip_loader()
        self._max_entries = max_entries
        self._max_wait = max_wait_ms / 1000.0
        self._queue: deque[_Request] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="medledger-solo", daemon=True)
        self._thread.start()

    @property
    def tip(self) -> ChainTip:
        return self._tip

    def submit(self, entries: Sequence[bytes]) -> Future[list[Receipt]]:
        """Queue canonical entries; the future resolves with one receipt per entry, in order."""
        fut: Future[list[Receipt]] = Future()
        if not entries:
            fut.set_result([])
            return fut
        with self._cond:
            if self._closed:
                raise StateError("the orderer is closed")
            if not self._thread.is_alive():
                raise StorageError("the sequencer has stopped; reopen the ledger")
            self._queue.append(_Request(entries, fut))
            self._pending += len(entries)
            self._cond.notify()
        return fut

    def close(self) -> None:
        """Finish what was submitted, then stop the sequencer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                deadline = time.monotonic() + self._max_wait
                while self._pending < self._max_entries and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, parts = self._take()
            if batch:
                self._cut(batch, parts)

    def _take(self) -> tuple[list[bytes], list[tuple[_Request, int]]]:
        """Take up to max_entries from the queue head; a big request spans several blocks."""
        batch: list[bytes] = []
        parts: list[tuple[_Request, int]] = []
        while self._queue and len(batch) < self._max_entries:
            req = self._queue[0]
            # A caller may cancel until its first entry is taken; after that it must wait.
            if req.taken == 0 and not req.future.set_running_or_notify_cancel():
                self._queue.popleft()
                self._pending -= len(req.entries)
                continue
            if req.future.done():
                # An earlier slice of this request failed and its caller has been told so:
                # committing the rest would store entries nobody will get a receipt for.
                self._queue.popleft()
                self._pending -= len(req.entries) - req.taken
                continue
            n = min(len(req.entries) - req.taken, self._max_entries - len(batch))
            batch.extend(req.entries[req.taken : req.taken + n])
            parts.append((req, n))
            req.taken += n
            if req.taken == len(req.entries):
                self._queue.popleft()
        self._pending -= len(batch)
        return batch, parts

    def _cut(self, batch: list[bytes], parts: list[tuple[_Request, int]]) -> None:
        try:
            block, tip = self._builder.propose(self._tip, batch)
            self._committer.commit(block)
        except BaseException as exc:
            err = exc if isinstance(exc, MedLedgerError) else StorageError(f"commit failed: {exc}")
            for req, _ in parts:
                if not req.future.done():
                    req.future.set_exception(err)
            self._tip = self._reload_tip()
            return
        self._tip = tip
        height = block.header.height
        index = block.first_index
        leaves = block.leaf_hashes
        pos = 0
        for req, n in parts:
            if req.future.done():  # an earlier slice of this request failed
                pos += n
                index += n
                continue
            req.receipts.extend(Receipt(index + i, leaves[pos + i].hex(), height) for i in range(n))
            pos += n
            index += n
            if len(req.receipts) == len(req.entries):
                req.future.set_result(req.receipts)

    def _reload_tip(self) -> ChainTip:
        try:
            return self._load_tip()
        except Exception:  # keep the old tip: the next commit conflicts and reloads again
            return self._tip
