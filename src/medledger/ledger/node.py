"""A ledger node: one chain's keys, store and orderer behind a small API.

This is the library the CLI (and later the API server) is a thin shell over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection

from medledger.crypto.keys import key_id, read_signing_key, write_signing_key
from medledger.crypto.registry import get_suite
from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.suite import SigningKey, Suite
from medledger.crypto.trust import TrustBundle, TrustedKey, load_trust_bundle
from medledger.errors import LedgerExists, StateError
from medledger.ledger import certificate as certs
from medledger.ledger.block import Block, BlockBuilder, ChainTip, Clock
from medledger.ledger.certificate import header_of
from medledger.ledger.compact import Frontier
from medledger.ledger.config import (
    HEAD_FILE,
    KEY_FILE,
    SQLITE_FILE,
    TRUST_FILE,
    NodeConfig,
    check_tunables,
    db_url,
    read_config,
    write_config,
)
from medledger.ledger.entry import validate_entry
from medledger.ledger.proof import compact_range_ids
from medledger.ledger.sqlstore import SqlLedgerStore, SqlReader
from medledger.ordering.base import Receipt
from medledger.ordering.solo import SoloOrderer
from medledger.store import migrate
from medledger.store.engine import make_engine
from medledger.verify.header import SignedHeader

log = logging.getLogger(__name__)
WRITER_LOCK = "writer.lock"


CommitHook = Callable[[Connection, Block], None]


class _SqlCommitter:
    """Store a block's entries, nodes, header and signatures in one durable transaction.

    Commit hooks run inside that same transaction, so what they write (a record version marked
    as anchored, say) commits together with the block or not at all.
    """

    def __init__(
        self, store: SqlLedgerStore, head_path: Path | None, hooks: list[CommitHook]
    ) -> None:
        self._store = store
        self._head_path = head_path
        self._hooks = hooks

    def commit(self, block: Block) -> None:
        h = block.header
        first = block.first_index
        with self._store.writer() as w:
            w.add_entries([(first + i, e) for i, e in enumerate(block.entries)])
            w.add_nodes(block.nodes)
            w.add_block(
                h.height,
                h.tree_size,
                h.signing_bytes(),
                [(s.key_id, s.sig) for s in h.signatures],
            )
            for hook in self._hooks:
                hook(w.connection, block)
        if self._store.arena.active:
            self._store.arena.append_nodes(block.nodes)
        if self._head_path is not None:
            _write_head(self._head_path, h)


def _write_head(path: Path, header: SignedHeader) -> None:
    # A copy of the newest signed head outside the database: audit compares the two, so a store
    # rolled back to an older state (rows deleted from the end of every table) is still caught.
    # The block is already durable here; failing to refresh the copy must not fail the receipts,
    # and the next commit tries again.
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(header.to_json()))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot refresh the last-head file %s: %s", path, exc)


class LedgerNode:
    """Open ledger: append entries, issue certificates and proofs, audit the store."""

    def __init__(self, data_dir: Path, config: NodeConfig, *, clock: Clock = time.time) -> None:
        self.data_dir = data_dir
        self.config = config
        self.suite = get_suite(config.suite)
        self.hasher = hasher_for(self.suite)
        self.trust = load_trust_bundle(data_dir / TRUST_FILE)
        suite, self._key, self.key_id, _ = read_signing_key(data_dir / KEY_FILE)
        if suite.name != config.suite:
            raise StateError(f"{KEY_FILE} is a {suite.name} key, the chain uses {config.suite}")
        engine = make_engine(db_url(data_dir, config))
        migrate.upgrade(engine)
        self.store = SqlLedgerStore(engine)
        self._check_meta()
        self.builder = BlockBuilder(self.suite, self._key, self.key_id, config.chain, clock)
        self._orderer: SoloOrderer | None = None
        self._orderer_lock = threading.Lock()
        self._hooks: list[CommitHook] = []
        self._writer_lock: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        data_dir: Path,
        *,
        suite: str = "intl-v1",
        db: str | None = None,
        node: str | None = None,
        clock: Clock = time.time,
        **tunables: Any,
    ) -> LedgerNode:
        """Create a new chain in ``data_dir``: node key (0600), trust bundle, schema, genesis."""
        chosen = get_suite(suite)
        data_dir = Path(data_dir)
        if (data_dir / KEY_FILE).exists() or (data_dir / "medledger.json").exists():
            raise LedgerExists(f"{data_dir} already holds a ledger", path=str(data_dir))
        created = not data_dir.exists()
        ours = (
            KEY_FILE,
            TRUST_FILE,
            "medledger.json",
            SQLITE_FILE,
            f"{SQLITE_FILE}-wal",
            f"{SQLITE_FILE}-shm",
        )
        existed = {n for n in ours if (data_dir / n).exists()}
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return cls._create(data_dir, chosen, db, node, clock, tunables)
        except BaseException:
            # Bad input or an unreachable database must leave nothing behind, and must never
            # remove anything that was there before (an old ledger.db is somebody's data).
            if created:
                shutil.rmtree(data_dir, ignore_errors=True)
            else:
                for name in set(ours) - existed:
                    (data_dir / name).unlink(missing_ok=True)
            raise

    @classmethod
    def _create(
        cls,
        data_dir: Path,
        chosen: Suite,
        db: str | None,
        node: str | None,
        clock: Clock,
        tunables: dict[str, Any],
    ) -> LedgerNode:
        suite = chosen.name
        os.chmod(data_dir, 0o700)
        name = node or socket.gethostname()
        chain = os.urandom(16).hex()
        key = chosen.generate_signing_key()
        kid = key_id(chosen, key.public_bytes)
        engine = make_engine(db_url(data_dir, NodeConfig(chain, suite, name, db)))
        migrate.upgrade(engine)
        store = SqlLedgerStore(engine)
        with store.reader() as r:
            if r.get_meta("chain") is not None:
                raise LedgerExists(f"the database already holds chain {r.get_meta('chain')}")
        write_signing_key(data_dir / KEY_FILE, chosen, key, node=name)
        trust = TrustBundle(chain, suite, 1, (TrustedKey.of(chosen, key.public_bytes, node=name),))
        (data_dir / TRUST_FILE).write_text(json.dumps(trust.to_json(), indent=2) + "\n")
        config = NodeConfig(chain, suite, name, db, **tunables)
        builder = BlockBuilder(chosen, key, kid, chain, clock)
        genesis, _ = builder.genesis()
        with store.writer() as w:
            w.set_meta("chain", chain)
            w.set_meta("suite", suite)
            w.add_block(
                0,
                0,
                genesis.header.signing_bytes(),
                [(s.key_id, s.sig) for s in genesis.header.signatures],
            )
        store.dispose()
        _write_head(data_dir / HEAD_FILE, genesis.header)
        write_config(data_dir, config)
        return cls(data_dir, config, clock=clock)

    @classmethod
    def open(cls, data_dir: Path, *, clock: Clock = time.time, **overrides: Any) -> LedgerNode:
        """Open an existing ledger; ``overrides`` change tunables for this process only."""
        config = read_config(Path(data_dir))
        if overrides:
            config = replace(config, **overrides)
            check_tunables(config, where="overrides")
        return cls(Path(data_dir), config, clock=clock)

    def close(self) -> None:
        if self._orderer is not None:
            self._orderer.close()
            self._orderer = None
        if self._writer_lock is not None:
            os.close(self._writer_lock)  # releases the flock
            self._writer_lock = None
        self.store.dispose()

    def __enter__(self) -> LedgerNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def signing_key(self) -> SigningKey:
        """Return the node's private signing key, for signing access tokens in-process only.

        Never serialize, log or send it anywhere; the key file stays the only copy at rest.
        """
        return self._key

    def _check_meta(self) -> None:
        with self.store.reader() as r:
            chain, suite = r.get_meta("chain"), r.get_meta("suite")
        if chain != self.config.chain or suite != self.config.suite:
            raise StateError(
                f"the database holds chain {chain} ({suite}), the config names chain "
                f"{self.config.chain} ({self.config.suite})"
            )

    # -- appending ---------------------------------------------------------------------------

    @property
    def orderer(self) -> SoloOrderer:
        with self._orderer_lock:  # concurrent first appends must share one sequencer
            if self._orderer is None:
                self._orderer = self._new_orderer()
            return self._orderer

    def acquire_writer(self) -> None:
        """Become this data directory's only writer, or raise StateError naming the problem.

        Held (an exclusive flock on DATA/writer.lock) until the process ends or ``close``;
        a second process writing the same ledger would otherwise fork the chain's tip.
        """
        if self._writer_lock is not None:
            return
        fd = os.open(self.data_dir / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateError(
                f"another process is writing to the ledger in {self.data_dir} (a running "
                "`medledger serve`?); stop it first, or run this against that server",
                path=str(self.data_dir),
            ) from None
        self._writer_lock = fd

    def _new_orderer(self) -> SoloOrderer:
        self.acquire_writer()
        return SoloOrderer(
            self.builder,
            _SqlCommitter(self.store, self.data_dir / HEAD_FILE, self._hooks),
            self.load_tip,
            max_entries=self.config.block_max_entries,
            max_wait_ms=self.config.block_max_wait_ms,
        )

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Run ``hook(connection, block)`` inside every block's commit transaction.

        A hook that raises aborts the block: its entries are not appended and their callers
        get the error. Hooks see only the ledger's own database connection.
        """
        self._hooks.append(hook)

    def load_tip(self) -> ChainTip:
        """Rebuild the chain tip (newest header and tree right edge) from the store."""
        with self.store.reader() as r:
            block = r.latest_block()
            if block is None:
                raise StateError("the store has no genesis block")
            header = header_of(block)
            ids = compact_range_ids(header.tree_size)
            frontier = Frontier.from_hashes(self.hasher, header.tree_size, r.get_nodes(ids))
        return ChainTip(header, header.header_hash(self.suite), frontier)

    def encode(self, entries: Iterable[Any], labels: Sequence[str] | None = None) -> list[bytes]:
        """Validate every entry and return canonical bytes; raise on the first bad one.

        ``labels`` name each entry in error messages (e.g. ``file.jsonl:12``).
        """
        cap = self.config.max_entry_bytes
        return [
            validate_entry(e, max_bytes=cap, where=labels[i] if labels else f"entry[{i}]")
            for i, e in enumerate(entries)
        ]

    def submit(self, canonical: Sequence[bytes]) -> Future[list[Receipt]]:
        """Queue already-validated entries; the future resolves once they are durable."""
        return self.orderer.submit(canonical)

    def append(self, entries: Iterable[Any]) -> list[Receipt]:
        """Validate all entries, then append them; return receipts once durable.

        Nothing is written unless every entry is valid.
        """
        return self.submit(self.encode(entries)).result()

    # -- reading -----------------------------------------------------------------------------

    def reader(self) -> AbstractContextManager[SqlReader]:
        """Open a consistent read view of the store."""
        return self.store.reader()

    def head(self) -> SignedHeader:
        with self.store.reader() as r:
            block = r.latest_block()
            assert block is not None
            return header_of(block)

    def warm_cache(self) -> int:
        """Copy the tree into memory (top levels first, bounded) for fast proofs."""
        return self.store.warm_cache(self.head().tree_size)

    def certificate(self, index: int, *, payload_salt: bytes | None = None) -> dict[str, Any]:
        with self.store.reader() as r:
            return certs.issue(r, self.suite, self.hasher, index, payload_salt=payload_salt)

    def consistency(self, from_size: int, to_size: int | None = None) -> dict[str, Any]:
        with self.store.reader() as r:
            return certs.consistency_document(r, self.suite, self.hasher, from_size, to_size)

    def blocks(self, reader: SqlReader, start: int = 0) -> Iterable[SignedHeader]:
        """Yield the signed headers from height ``start`` on."""
        for b in reader.iter_blocks(start):
            yield header_of(b)
