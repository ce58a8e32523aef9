"""Poll a view incrementally from a stored (watermark, key) cursor; deliver at least once.

One poll reads the rows after the cursor ordered by ``(watermark, key)``, at most ``batch``,
plus the not yet delivered rows of the lookback window (late rows), maps them, hands the models
to the sink, and only after the sink has returned (it stores durably) saves the new cursor in
``interop_watermarks``. A crash in between re-delivers the batch, so the sink dedupes by
business key. Unmappable rows are quarantined and the cursor still moves past them. The rules
(late rows, watermark types, NULLs) are set out in :mod:`medledger.interop.views`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, and_, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import ColumnElement, Select

from medledger.errors import EnvironmentFailure, InputError, MedLedgerError, StorageError
from medledger.interop.views.config import ConnectorConfig
from medledger.interop.views.mapping import Model, Quarantined, RowMapper
from medledger.store.engine import begin_write
from medledger.store.schema_interop import interop_watermarks

__all__ = [
    "MAX_SEEN", "Checkpoint", "Cursor", "PollReport", "Sink", "ViewPoller", "Watermark",
    "WatermarkStore",
]  # fmt: skip

_LOG = logging.getLogger(__name__)
Watermark = datetime | date | int
RowKey = str | int
MAX_SEEN = 20_000  # (watermark, key) pairs remembered inside the lookback window
_Query = tuple[Select[Any], ColumnElement[Any], ColumnElement[Any]]


@dataclass(frozen=True)
class Checkpoint:
    """Where the connector stands once the sink has stored a batch, and the rows it skipped."""

    connector: str
    watermark: Watermark
    row_key: RowKey
    quarantined: tuple[Quarantined, ...] = ()


Sink = Callable[[Sequence[Model], Checkpoint], None]


@dataclass(frozen=True)
class Cursor:
    """A stored position: the last row read, the pairs delivered inside the lookback window,
    and ``floor``: late rows at or below it are no longer looked for (the window overflowed)."""

    watermark: Watermark
    row_key: RowKey
    seen: frozenset[tuple[Watermark, RowKey]] = frozenset()
    floor: Watermark | None = None


@dataclass(frozen=True)
class PollReport:
    """What one poll did: rows read (``late`` of them from the window), models delivered (and
    the models), rows quarantined, the checkpoint; ``more``: the batch was full, poll again."""

    connector: str
    rows: int
    late: int
    delivered: int
    quarantined: tuple[Quarantined, ...] = ()
    checkpoint: Checkpoint | None = None
    more: bool = False
    models: tuple[Model, ...] = field(default=(), repr=False)


class WatermarkStore:
    """Cursors in ``interop_watermarks``: row ``<name>`` holds (watermark, key) as JSON, row
    ``<name>#seen`` the window as ``{"floor": …, "seen": [[watermark, key], …]}``."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def load(self, connector: ConnectorConfig) -> Cursor | None:
        """Return the connector's stored cursor, or None before its first batch."""
        t, names = interop_watermarks, (connector.name, connector.name + "#seen")
        try:
            with self._engine.connect() as conn:
                found = conn.execute(select(t).where(t.c.connector.in_(names)))
                rows = {r.connector: r for r in found}
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("cannot read the watermark store", connector=connector.name) from exc
        if connector.name not in rows:
            return None
        try:
            main = rows[connector.name]
            window = json.loads(rows[names[1]].watermark) if names[1] in rows else {}
            floor, pairs = window.get("floor"), window.get("seen", ())
            return Cursor(
                watermark=_decode(json.loads(main.watermark), connector),
                row_key=_key(json.loads(main.row_key), connector),
                seen=frozenset((_decode(w, connector), _key(k, connector)) for w, k in pairs),
                floor=None if floor is None else _decode(floor, connector),
            )  # fmt: skip
        except (ValueError, TypeError, AttributeError, KeyError, InputError) as exc:
            raise InputError(
                f"connector {connector.name}: the stored cursor does not fit the configuration",
                field=connector.path("watermark_type"),
                value=connector.watermark_type,
                expected="the watermark type this connector stored its cursor with",
            ) from exc

    def save(self, connector: ConnectorConfig, cursor: Cursor) -> None:
        """Store ``cursor`` (both rows in one transaction)."""
        seen: list[Any] = sorted(cursor.seen)  # type: ignore[type-var,unused-ignore]
        window = {"floor": _encode(cursor.floor), "seen": [[_encode(w), k] for w, k in seen]}
        rows = (
            (connector.name, json.dumps(_encode(cursor.watermark)), json.dumps(cursor.row_key)),
            (connector.name + "#seen", json.dumps(window, ensure_ascii=False), None),
        )
        t, now = interop_watermarks, int(self._clock() * 1000)
        try:
            with begin_write(self._engine) as conn:
                for name, wm, key in rows:
                    values = {"watermark": wm, "row_key": key, "updated_at": now}
                    done = conn.execute(sa.update(t).where(t.c.connector == name).values(values))
                    if done.rowcount == 0:
                        conn.execute(sa.insert(t).values(connector=name, **values))
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("cannot save the watermark", connector=connector.name) from exc


class ViewPoller:
    """Poll one connector's view into ``sink``; ``engine`` is MedLedger's (for the cursor) and
    ``source`` overrides the engine built from the connector's URL."""

    def __init__(
        self,
        config: ConnectorConfig,
        engine: Engine,
        sink: Sink,
        *,
        source: Engine | None = None,
        clock: Callable[[], float] = time.time,
        max_seen: int = MAX_SEEN,
    ) -> None:
        self._c, self._sink = config, sink
        self._store = WatermarkStore(engine, clock)
        self._mapper = RowMapper(config)
        self._source = source if source is not None else _source_engine(config)
        self._owns_source, self._max_seen = source is None, max_seen
        self._cursor: Cursor | None = None
        self._loaded = False  # the cursor is read from the store on the first poll
        self._query: _Query | None = None

    def __enter__(self) -> ViewPoller:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the source engine's connections (if this poller built it)."""
        if self._owns_source:
            self._source.dispose()

    def poll_once(self) -> PollReport:
        """Read, map and deliver the next batch, then save the cursor.

        Raises EnvironmentFailure when the source is unreachable, StorageError when the
        watermark store fails, InputError when the view does not match the configuration;
        an exception from the sink propagates and leaves the cursor where it was.
        """
        c = self._c
        base, wm, key = self._select()
        if not self._loaded:
            self._cursor, self._loaded = self._store.load(c), True
        cur = self._cursor
        late: list[dict[str, Any]] = []
        with self._reading() as conn:
            forward = base
            if cur is not None:
                upto = or_(wm < cur.watermark, and_(wm == cur.watermark, key <= cur.row_key))
                window = base.where(wm >= self._minus(cur.watermark), upto)
                if cur.floor is not None:
                    window = window.where(wm > cur.floor)
                late = [r for r in self._rows(conn, window) if self._pair(r) not in cur.seen]
                after = or_(wm > cur.watermark, key > cur.row_key)
                forward = base.where(wm >= cur.watermark, after)
            rows = self._rows(conn, forward.limit(c.batch))
        batch = late + rows  # still ordered by (watermark, key): late rows precede the cursor
        if cur is None and not rows:
            return PollReport(c.name, 0, 0, 0)
        last = self._pair(rows[-1]) if rows else (cur.watermark, cur.row_key)  # type: ignore[union-attr]
        if not batch:
            return PollReport(c.name, 0, 0, 0, checkpoint=Checkpoint(c.name, *last))
        models, quarantined = self._mapper.map_rows(batch)
        point = Checkpoint(c.name, last[0], last[1], tuple(quarantined))
        self._sink(models, point)
        new = self._advance(cur, last, batch)
        self._store.save(c, new)
        self._cursor = new
        return PollReport(
            c.name, len(batch), len(late), len(models), tuple(quarantined), point,
            more=len(rows) == c.batch, models=tuple(models),
        )  # fmt: skip

    def run(
        self, stop: threading.Event, *, on_error: Callable[[MedLedgerError], None] | None = None
    ) -> None:
        """Poll until ``stop`` is set: at once while batches come back full, else every
        ``interval``. A source or store outage goes to ``on_error`` (default: a warning in the
        log, without the URL) and is retried after ``interval``; any other error ends the loop."""
        while not stop.is_set():
            try:
                report = self.poll_once()
            except (EnvironmentFailure, StorageError) as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    _LOG.warning("view connector %s: %s: %s", self._c.name, exc.code, exc.message)
                stop.wait(self._c.interval)
                continue
            if not report.more:
                stop.wait(self._c.interval)

    def _select(self) -> _Query:
        """Build (once) the SELECT of the mapped columns, resolved against the real view."""
        if self._query is None:
            c = self._c
            schema, _, name = c.view.rpartition(".")
            with self._reading() as conn:
                actual = _resolve(conn, c, name, schema or None)
            kinds = {"datetime": sa.DateTime(), "date": sa.Date(), "integer": sa.BigInteger()}
            cols: dict[str, ColumnElement[Any]] = {
                n: sa.column(a, kinds[c.watermark_type] if n == c.watermark else None)  # type: ignore[arg-type]
                for n, a in actual.items()
            }  # fmt: skip
            wm, key = cols[c.watermark], cols[c.key]
            view = sa.table(name, *cols.values(), schema=schema or None)  # type: ignore[arg-type]
            labelled = [col.label(n) for n, col in cols.items()]
            base = select(*labelled).select_from(view).where(wm.is_not(None), key.is_not(None))
            self._query = (base.order_by(wm, key), wm, key)
        return self._query

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        c = self._c
        try:
            with self._source.connect() as conn:
                yield conn
        except sa_exc.OperationalError as exc:
            raise EnvironmentFailure(
                f"connector {c.name}: the source database cannot be reached or read",
                connector=c.name,
                url=c.redacted_url,
                error=type(exc.orig).__name__,
            ) from exc
        except sa_exc.DBAPIError as exc:
            first = (str(exc.orig).strip().splitlines() or [""])[0][:200]
            raise InputError(
                f"connector {c.name}: the view cannot be read ({first})",
                field=c.path("view"),
                value=c.view,
                expected="a view the connector's database user can SELECT from",
            ) from exc

    def _rows(self, conn: Connection, query: Select[Any]) -> list[dict[str, Any]]:
        out = []
        for r in conn.execute(query).mappings():
            row = dict(r)
            row[self._c.key] = _key(row[self._c.key], self._c)
            row[self._c.watermark] = self._checked(row[self._c.watermark])
            out.append(row)
        return out

    def _pair(self, row: dict[str, Any]) -> tuple[Watermark, RowKey]:
        return row[self._c.watermark], row[self._c.key]

    def _checked(self, value: Any) -> Watermark:
        kind = self._c.watermark_type
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        types = {"datetime": datetime, "date": date, "integer": int}[kind]
        ok = isinstance(value, types) and not isinstance(value, bool)
        ok = ok and not (kind == "date" and isinstance(value, datetime))
        if not ok:
            raise InputError(
                f"connector {self._c.name}: the watermark column holds {type(value).__name__}",
                field=self._c.path("watermark_type"),
                value=kind,
                expected=f"the type of column {self._c.watermark} (datetime, date or integer)",
            )
        return value  # type: ignore[no-any-return]

    def _minus(self, mark: Any) -> Any:
        lb = self._c.lookback
        if isinstance(lb, timedelta) and isinstance(mark, date) and not isinstance(mark, datetime):
            return mark - timedelta(days=math.ceil(lb.total_seconds() / 86400))
        return mark - lb

    def _advance(
        self, cur: Cursor | None, last: tuple[Watermark, RowKey], batch: list[dict[str, Any]]
    ) -> Cursor:
        """The cursor after ``batch``: the window keeps the pairs at or after last − lookback."""
        lower = self._minus(last[0])
        seen = {p for p in (cur.seen if cur else ()) if p[0] >= lower}
        seen.update(p for p in map(self._pair, batch) if p[0] >= lower)
        floor = cur.floor if cur is not None and cur.floor is not None else None
        floor = floor if floor is not None and floor >= lower else None
        if len(seen) > self._max_seen:  # forget whole watermarks, oldest first
            kept: set[tuple[Watermark, RowKey]] = set()
            marks: list[Any] = sorted({p[0] for p in seen}, reverse=True)  # type: ignore[type-var,unused-ignore]
            for mark in marks:
                group = {p for p in seen if p[0] == mark}
                if len(kept) + len(group) > self._max_seen:
                    floor = mark
                    break
                kept |= group
            seen = kept
        return Cursor(last[0], last[1], frozenset(seen), floor)


def _resolve(conn: Connection, c: ConnectorConfig, name: str, schema: str | None) -> dict[str, str]:
    """Map each configured column name to the view's own spelling (case-insensitive match)."""
    try:
        present = [col["name"] for col in sa.inspect(conn).get_columns(name, schema)]
    except sa_exc.NoSuchTableError:
        wanted = "a view (or table) the connector's database user can read"
        raise InputError(
            f"connector {c.name}: no such view", field=c.path("view"), value=c.view, expected=wanted
        ) from None
    needed: list[tuple[tuple[str, ...], str]] = [(("watermark",), c.watermark), (("key",), c.key)]
    needed += [(("group_by",), c.group_by)] if c.group_by is not None else []
    needed += [(("columns", f), col) for f, col in c.columns.items()]
    folded = {p.lower(): p for p in present}
    actual: dict[str, str] = {}
    for path, col in needed:
        found = col if col in present else folded.get(col.lower())
        if found is None:
            raise InputError(
                f"connector {c.name}: the view has no column {col}",
                field=c.path(*path),
                value=col,
                expected=f"a column of {c.view}",
            )
        actual[col] = found
    return actual


def _source_engine(c: ConnectorConfig) -> Engine:
    try:
        return sa.create_engine(c.url, pool_pre_ping=True, pool_size=2, max_overflow=2)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise InputError(
            f"connector {c.name}: cannot use the source URL ({type(exc).__name__})",
            field=c.path("url"),
            value=c.redacted_url,
            expected="a SQLAlchemy URL with an installed driver, e.g. mysql+pymysql",
        ) from exc


def _encode(mark: Watermark | None) -> Any:
    return mark.isoformat() if isinstance(mark, date) else mark


def _decode(raw: Any, c: ConnectorConfig) -> Watermark:
    if c.watermark_type == "integer":
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise TypeError("not an integer watermark")
        return raw
    if c.watermark_type == "date":
        return date.fromisoformat(raw)
    return datetime.fromisoformat(raw)


def _key(raw: Any, c: ConnectorConfig) -> RowKey:
    if isinstance(raw, Decimal) and raw == raw.to_integral_value():
        raw = int(raw)
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        return raw
    raise InputError(
        f"connector {c.name}: unsupported key column type {type(raw).__name__}",
        field=c.path("key"),
        value=None,
        expected="a text or integer key column (NOT NULL, unique)",
    )
