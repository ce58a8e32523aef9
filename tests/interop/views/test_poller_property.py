"""Property: any interleaving of inserts, polls, restarts and sink crashes delivers every row.

Rows arrive with non-decreasing watermarks (often equal, with keys in random order, so rows of
one watermark commit "late" behind the cursor), batches have random sizes, pollers restart
from the store, and a sink may crash before it commits. The sink that dedupes by key then holds
each row exactly once; without crashes the raw deliveries are exactly once as well.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from medledger.interop.views.mapping import Model
from medledger.interop.views.poller import Checkpoint, ViewPoller
from tests.interop.views._his import connector, create_his, insert_rows, later, row

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=5),
                  st.integers(0, 2)),
        st.tuples(st.just("poll")),
        st.tuples(st.just("restart"), st.integers(1, 4)),
        st.tuples(st.just("crash")),
    ),
    max_size=14,
)  # fmt: skip


class DedupSink:
    """Counts raw deliveries per row key; ``crash_next`` makes the next call fail (no commit)."""

    def __init__(self) -> None:
        self.raw: Counter[str] = Counter()
        self.stored: set[str] = set()
        self.crash_next = False

    def __call__(self, models: Sequence[Model], checkpoint: Checkpoint) -> None:
        if self.crash_next:
            self.crash_next = False
            raise RuntimeError("crash before commit")
        for m in models:
            key = str(m.control_id).split("@")[0]
            self.raw[key] += 1
            self.stored.add(key)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, first_batch=st.integers(1, 4))
def test_every_row_is_delivered_once(
    source: Engine, ml_engine: Engine, ops: list[tuple[Any, ...]], first_batch: int
) -> None:
    """Random inserts/polls/restarts/crashes: each row stored once; exactly once without crashes."""
    tag = uuid.uuid4().hex[:8]
    table = create_his(source, table=f"t_{tag}", view=f"v_{tag}")
    name = f"prop-{tag}"
    sink, inserted, clock, serial, crashed = DedupSink(), set(), 0, 0, False

    def poller(batch: int) -> ViewPoller:
        c = connector(str(source.url), view=f"v_{tag}", name=name, batch=batch)
        return ViewPoller(c, ml_engine, sink, source=source)

    current = poller(first_batch)
    for op in ops:
        if op[0] == "insert":
            clock += op[2]
            rows = []
            for prefix in op[1]:
                serial += 1
                rows.append(row(serial, later(clock), sqmxh=f"{prefix}{serial:04d}"))
            insert_rows(source, table, rows)
            inserted.update(r["sqmxh"] for r in rows)
        elif op[0] == "poll":
            current.poll_once()
        elif op[0] == "restart":
            current = poller(op[1])
        else:
            sink.crash_next, crashed = True, True
            with contextlib.suppress(RuntimeError):
                current.poll_once()
            sink.crash_next = False
    for _ in range(len(inserted) + 2):
        if current.poll_once().rows == 0:
            break
    assert sink.stored == inserted
    assert all(n >= 1 for n in sink.raw.values())
    if not crashed:
        assert all(n == 1 for n in sink.raw.values()), sink.raw
    assert current.poll_once().rows == 0
