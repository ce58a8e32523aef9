"""The ledger's tables on SQLAlchemy: SQLite (embedded default) and PostgreSQL.

Hot paths (node reads for proofs, bulk inserts for blocks, audit streaming) use driver-level SQL
through ``exec_driver_sql`` because SQLAlchemy's statement layer costs more per row than the
database does; everything else uses Core. Driver exceptions are translated to StorageError or
NotFound here, so nothing above sees SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.errors import NotFound, StateError, StorageError
from medledger.ledger.arena import DEFAULT_BUDGET, NodeArena
from medledger.ledger.proof import NodeID
from medledger.ledger.storage import StoredBlock
from medledger.ledger.tree import Memo
from medledger.store.engine import READ_ONLY, begin_write
from medledger.store.migrate import first_line

_STREAM_BATCH = 20_000
_BLOCK_PAGE = 5_000


class SqlLedgerStore:
    """Open readers and writers on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ph = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        # The proof and audit paths use the driver's cursor directly, so its own exceptions
        # must be translated here as well as SQLAlchemy's.
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self.arena = NodeArena()  # whole levels in memory once warm_cache() has run
        self.memo: Memo = {}  # right-edge hashes by tree size, for proofs (see tree.py)

    @contextmanager
    def reader(self) -> Iterator[SqlReader]:
        """Yield a read view inside one transaction (a consistent snapshot)."""
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                if self.engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    )
                yield SqlReader(conn, self._ph, self.arena, self.memo)
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from exc
        except self._driver_error as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc

    @contextmanager
    def writer(self) -> Iterator[SqlWriter]:
        """Yield a writer; its rows commit together when the block exits cleanly."""
        try:
            with begin_write(self.engine) as conn:
                yield SqlWriter(conn, self._ph)
        except IntegrityError as exc:
            raise StateError(
                f"write conflicts with stored rows ({exc.orig.__class__.__name__}); "
                "another writer may be using this ledger"
            ) from exc
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from exc
        except self._driver_error as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc

    def warm_cache(self, size: int, budget: int = DEFAULT_BUDGET) -> int:
        """Copy the tree's levels into memory, top down, within ``budget`` bytes.

        Proofs then read the arena instead of the database (a long-running server does this
        at start). Returns how many nodes were loaded.
        """
        with self.reader() as r:
            return self.arena.load(r, size, budget)

    def dispose(self) -> None:
        self.engine.dispose()


class SqlReader:
    """LedgerReader over one connection."""

    def __init__(
        self,
        conn: Connection,
        ph: str,
        arena: NodeArena | None = None,
        memo: Memo | None = None,
    ) -> None:
        self._arena = arena if arena is not None else NodeArena()
        self.memo: Memo = {} if memo is None else memo
        self._conn = conn
        self._ph = ph
        self._cur: Any = None

    def _cursor(self) -> Any:
        # The proof path goes straight to the driver: SQLAlchemy's result machinery costs ten
        # times what SQLite needs to find a handful of rows by key.
        if self._cur is None:
            self._cur = self._conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        return self._cur

    def _rows(self, sql: str, params: Any = ()) -> list[Any]:
        return list(self._conn.exec_driver_sql(sql.replace("?", self._ph), params).fetchall())

    def get_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        arena = self._arena
        if arena.active:
            held = arena.get_many(ids)
            if held is not None:
                return held
        keys = [(level << 48) | index for level, index in ids]
        found: dict[int, bytes] = {}
        wanted = []
        for (level, index), k in zip(ids, keys, strict=True):
            h = arena.get(level, index) if arena.active else None
            if h is None:
                wanted.append(k)
            else:
                found[k] = h
        if wanted:
            marks = ",".join([self._ph] * len(wanted))
            cur = self._cursor()
            cur.execute(f"SELECT id, hash FROM ledger_nodes WHERE id IN ({marks})", wanted)
            for k, h in cur.fetchall():
                found[k] = bytes(h)
        try:
            return [found[k] for k in keys]
        except KeyError:
            missing = next(i for i, k in zip(ids, keys, strict=True) if k not in found)
            raise NotFound(
                f"node level {missing[0]} index {missing[1]} is not in the store",
                field="node",
                value=f"{missing[0]}/{missing[1]}",
                expected="a stored complete subtree",
            ) from None

    def get_entry(self, index: int) -> bytes:
        rows = self._rows("SELECT data FROM ledger_entries WHERE idx = ?", (index,))
        if not rows:
            raise NotFound(
                f"entry {index} is not in the store",
                field="index",
                value=index,
                expected=f"an index below {self.entry_count()}",
            )
        return bytes(rows[0][0])

    def entry_count(self) -> int:
        rows = self._rows("SELECT MAX(idx) FROM ledger_entries")
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def _block(self, where: str, params: Any) -> StoredBlock | None:
        rows = self._rows(
            f"SELECT height, tree_size, header FROM ledger_blocks {where} LIMIT 1", params
        )
        if not rows:
            return None
        height, size, header = rows[0]
        sigs = self._rows(
            "SELECT key_id, sig FROM ledger_signatures WHERE height = ? ORDER BY key_id",
            (height,),
        )
        return StoredBlock(
            int(height), int(size), bytes(header), tuple((k, bytes(s)) for k, s in sigs)
        )

    def latest_block(self) -> StoredBlock | None:
        return self._block("ORDER BY height DESC", ())

    def get_block(self, height: int) -> StoredBlock:
        block = self._block("WHERE height = ?", (height,))
        if block is None:
            latest = self.latest_block()
            top = -1 if latest is None else latest.height
            raise NotFound(
                f"block {height} does not exist; the latest height is {top}",
                field="height",
                value=height,
                expected=f"0..{top}",
            )
        return block

    def block_covering(self, index: int) -> StoredBlock:
        block = self._block("WHERE tree_size > ? ORDER BY tree_size, height", (index,))
        if block is None:
            latest = self.latest_block()
            size = 0 if latest is None else latest.tree_size
            raise NotFound(
                f"index {index} out of bounds for tree size {size}",
                field="index",
                value=index,
                expected=f"0..{size - 1}" if size else "nothing: the log is empty",
            )
        return block

    def block_at_size(self, tree_size: int) -> StoredBlock | None:
        return self._block("WHERE tree_size = ? ORDER BY height", (tree_size,))

    def get_node_range(self, level: int, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Return ``(index, hash)`` of stored nodes at ``level`` with lo <= index <= hi."""
        base = level << 48
        return [(k - base, h) for k, h in self.node_rows(base + lo, base + min(hi, (1 << 48) - 1))]

    def node_rows(self, lo_key: int, hi_key: int) -> list[tuple[int, bytes]]:
        """Return raw ``(node_key, hash)`` rows with lo_key <= key <= hi_key, in key order."""
        cur = self._cursor()
        cur.execute(
            f"SELECT id, hash FROM ledger_nodes WHERE id BETWEEN {self._ph} AND {self._ph} "
            "ORDER BY id",
            (lo_key, hi_key),
        )
        return [(k, bytes(h)) for k, h in cur.fetchall()]

    def entry_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Return the stored ``(index, data)`` rows with start <= index < end, in order."""
        cur = self._cursor()
        ph = self._ph
        cur.execute(
            f"SELECT idx, data FROM ledger_entries WHERE idx >= {ph} AND idx < {ph} ORDER BY idx",
            (start, end),
        )
        return list(cur.fetchall())

    def entry_batches(self, start: int = 0, size: int = _STREAM_BATCH) -> Iterator[list[Any]]:
        """Yield lists of ``(index, data)`` rows in index order, ``size`` rows at a time."""
        cur = self._cursor()
        sql = (
            f"SELECT idx, data FROM ledger_entries WHERE idx >= {self._ph} ORDER BY idx "
            f"LIMIT {int(size)}"
        )
        nxt = start
        while True:
            cur.execute(sql, (nxt,))
            rows = cur.fetchall()
            if not rows:
                return
            yield rows
            nxt = rows[-1][0] + 1

    def node_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM ledger_nodes")[0][0])

    def iter_blocks(self, start: int = 0) -> Iterator[StoredBlock]:
        """Yield blocks from height ``start`` on, in height order, a page at a time."""
        nxt = start
        while True:
            rows = self._rows(
                "SELECT height, tree_size, header FROM ledger_blocks WHERE height >= ? "
                f"ORDER BY height LIMIT {_BLOCK_PAGE}",
                (nxt,),
            )
            if not rows:
                return
            lo, hi = int(rows[0][0]), int(rows[-1][0])
            sigs: dict[int, list[tuple[str, bytes]]] = {}
            for height, key_id, sig in self._rows(
                "SELECT height, key_id, sig FROM ledger_signatures WHERE height >= ? AND "
                "height <= ? ORDER BY height, key_id",
                (lo, hi),
            ):
                sigs.setdefault(int(height), []).append((key_id, bytes(sig)))
            for height, size, header in rows:
                yield StoredBlock(
                    int(height), int(size), bytes(header), tuple(sigs.get(int(height), ()))
                )
            nxt = hi + 1

    def max_tree_size(self) -> int:
        """Return the largest tree size any block claims (0 for none)."""
        value = self._rows("SELECT MAX(tree_size) FROM ledger_blocks")[0][0]
        return 0 if value is None else int(value)

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM chain_meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])


class SqlWriter:
    """LedgerWriter inside one transaction."""

    def __init__(self, conn: Connection, ph: str) -> None:
        self._conn = conn
        self._ph = ph

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for commit hooks that must commit with the block."""
        return self._conn

    def _many(self, table: str, cols: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            marks = ",".join([self._ph] * len(rows[0]))
            self._conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))

    def add_entries(self, rows: Sequence[tuple[int, bytes]]) -> None:
        self._many("ledger_entries", "idx, data", rows)

    def add_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        self._many("ledger_nodes", "id, hash", rows)

    def add_block(
        self, height: int, tree_size: int, header: bytes, signatures: Sequence[tuple[str, bytes]]
    ) -> None:
        self._many("ledger_blocks", "height, tree_size, header", [(height, tree_size, header)])
        self._many(
            "ledger_signatures", "height, key_id, sig", [(height, k, s) for k, s in signatures]
        )

    def add_signature(self, height: int, key_id: str, sig: bytes) -> None:
        self._many("ledger_signatures", "height, key_id, sig", [(height, key_id, sig)])

    def set_meta(self, key: str, value: str) -> None:
        self._many("chain_meta", "key, value", [(key, value)])


def _storage_error(exc: SQLAlchemyError) -> StorageError:
    return StorageError(f"database error: {first_line(exc)}")
