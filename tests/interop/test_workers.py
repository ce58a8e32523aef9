"""interop.workers: queued items taken in groups, each answered, nothing left behind."""

from __future__ import annotations

import asyncio
import threading

import pytest

from medledger.interop.workers import Workers


def test_waiting_items_are_taken_together_and_each_answered() -> None:
    gate = threading.Event()
    groups: list[list[tuple[object, ...]]] = []

    def process(items: list[tuple[object, ...]]) -> list[object | BaseException]:
        gate.wait(5)  # hold the first group until the rest are queued
        groups.append(items)
        return [ValueError(f"bad {i}") if i[0] == 3 else i[0] * 10 for i in items]

    workers: Workers[tuple[object, ...], object] = Workers(process, threads=1, batch=4)

    async def run() -> list[object | BaseException]:
        tasks = [asyncio.create_task(workers.submit(0))]
        await asyncio.sleep(0.05)  # the thread has taken item 0 and waits at the gate
        tasks += [asyncio.create_task(workers.submit(n)) for n in range(1, 7)]
        await asyncio.sleep(0.05)
        gate.set()
        return list(await asyncio.gather(*tasks))

    answers = asyncio.run(run())
    workers.close()
    assert answers[:3] == [0, 10, 20]
    assert isinstance(answers[3], ValueError)
    assert answers[4:] == [40, 50, 60]
    assert [len(g) for g in groups] == [1, 4, 2]  # the first alone, then what was waiting


def test_a_failing_process_answers_every_item_with_its_exception() -> None:
    def process(items: list[tuple[object, ...]]) -> list[object | BaseException]:
        raise RuntimeError("store down")

    workers: Workers[tuple[object, ...], object] = Workers(process, threads=2, batch=8)

    async def run() -> list[object | BaseException]:
        return list(await asyncio.gather(*(workers.submit(n) for n in range(5))))

    answers = asyncio.run(run())
    workers.close()
    assert all(isinstance(a, RuntimeError) for a in answers)


def test_close_finishes_what_is_queued() -> None:
    done: list[object] = []

    def process(items: list[tuple[object, ...]]) -> list[object | BaseException]:
        done.extend(i[0] for i in items)
        return [None] * len(items)

    workers: Workers[tuple[object, ...], object] = Workers(process, threads=2, batch=3)

    async def run() -> None:
        await asyncio.gather(*(workers.submit(n) for n in range(10)))

    asyncio.run(run())
    workers.close()
    assert sorted(done) == list(range(10))  # type: ignore[type-var]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Workers(lambda items: [], threads=0)
