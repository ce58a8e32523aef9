"""Worker threads that take queued items in groups: whatever is waiting when one is free.

``submit`` (from the event loop) queues an item and awaits its answer; each worker thread
takes the oldest waiting item and every other one waiting behind it (up to ``batch``) and
hands them to ``process`` together, which answers each (a value, or the exception that item
failed with). Nothing waits for a group to fill: under light load a group is one item.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Workers"]

T = TypeVar("T")
R = TypeVar("R")
_Waiting = tuple[Any, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]  # item, its loop, answer


class Workers(Generic[T, R]):
    """``threads`` threads running ``process`` over groups of at most ``batch`` items."""

    def __init__(
        self,
        process: Callable[[list[T]], list[R | BaseException]],
        *,
        threads: int = 4,
        batch: int = 64,
    ) -> None:
        if threads < 1 or batch < 1:
            raise ValueError("threads and batch must be at least 1")
        self.process = process
        self.threads = threads
        self.batch = batch
        self._queue: queue.Queue[_Waiting | None] = queue.Queue()
        self._running: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads (once)."""
        if self._running:
            return
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"medledger-gateway-{n}", daemon=True)
            thread.start()
            self._running.append(thread)

    def close(self) -> None:
        """Let the threads finish what is queued, then stop them (blocks until they do)."""
        for _ in self._running:
            self._queue.put(None)
        for thread in self._running:
            thread.join()
        self._running = []

    async def submit(self, *item: object) -> R | BaseException:
        """Queue ``item`` (its parts as a tuple) and wait for its answer: the value, or the
        exception processing it failed with (returned, not raised)."""
        self.start()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[R | BaseException] = loop.create_future()
        self._queue.put((item, loop, answer))
        return await answer

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._answer(group)
            if stop:
                return

    def _answer(self, group: list[_Waiting]) -> None:
        try:
            answers = self.process([item for item, _, _ in group])
        except Exception as exc:  # (every waiter must hear of it)
            answers = [exc] * len(group)
        for (_, loop, fut), answer in zip(group, answers, strict=True):
            loop.call_soon_threadsafe(_settle, fut, answer)


def _settle(fut: asyncio.Future[R | BaseException], answer: R | BaseException) -> None:
    if not fut.done():
        fut.set_result(answer)
