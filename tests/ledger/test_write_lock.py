"""The in-process SQLite write lock: arrival order, re-entrancy, and interrupted waiters."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from medledger.store.engine import FairLock


def test_granted_in_arrival_order() -> None:
    """Threads that queue one after another get the lock in that order."""
    lock, order = FairLock(), []
    lock.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(
            target=lambda i=i: (lock.__enter__(), order.append(i), lock.__exit__())
        )
        t.start()
        threads.append(t)
        time.sleep(0.05)  # make the arrival order unambiguous
    lock.__exit__()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_reentrant_for_the_owner() -> None:
    """The owning thread may take it again; it is free only after as many exits."""
    lock = FairLock()
    with lock, lock:
        pass
    got = []
    t = threading.Thread(target=lambda: (lock.__enter__(), got.append(1), lock.__exit__()))
    t.start()
    t.join(5)
    assert got == [1]


def test_an_interrupted_waiter_gives_up_its_place() -> None:
    """Ctrl-C while queueing must not leave a ticket nobody will ever serve."""
    lock = FairLock()
    holder_in, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holder_in.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holder_in.wait(5)
    # A real SIGINT: it interrupts the blocked wait, as Ctrl-C does.
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt), lock:  # queues behind the holder, is interrupted
        pass
    release.set()
    holder.join(5)
    later = []
    t = threading.Thread(target=lambda: (lock.__enter__(), later.append(1), lock.__exit__()))
    t.start()
    t.join(5)
    assert later == [1], "the lock was left waiting for the interrupted ticket"
