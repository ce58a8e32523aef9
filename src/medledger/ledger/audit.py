"""Audit a store: recompute every leaf, stored node, header hash, prev link and signature.

The entries are the ground truth: the audit rebuilds the tree from them, compares every stored
complete-subtree hash and every block root on the way, and names each problem by index, node or
height. A mismatch that merely follows from a problem already reported below it (the ancestors of
an altered entry) is not reported again, so each tampering is located once, at its lowest point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.rfc6962 import hasher_for
from medledger.crypto.suite import Suite
from medledger.crypto.trust import TrustBundle
from medledger.errors import MedLedgerError, NotFound
from medledger.ledger.compact import Frontier
from medledger.ledger.sqlstore import SqlReader
from medledger.verify.header import ZERO_HASH, SignedHeader

Progress = Callable[[int, int], None]
MAX_FINDINGS = 1000
_BATCH = 1 << 14  # entries per node-range fetch; a power of two keeps ranges aligned
_MAX_GAP = 100_000  # missing entries past this are summarized, not walked one by one
_KEY_LIMIT = 49 << 48  # node keys at level 49 and up cannot exist (2^48 leaves at most)


@dataclass(slots=True)
class Findings:
    """What an audit found (at most ``MAX_FINDINGS``); the ledger's, the audit trail's and
    the records' reports all keep them this way."""

    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, where: int | str, problem: str, **extra: Any) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append({"kind": kind, "at": where, "problem": problem, **extra})


@dataclass(slots=True)
class AuditReport(Findings):
    entries: int = 0
    nodes: int = 0
    blocks: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "nodes": self.nodes,
            "blocks": self.blocks,
            "seconds": round(self.seconds, 3),
            "findings": self.findings,
        }


@dataclass(slots=True)
class _Block:
    height: int
    tree_size: int
    header: SignedHeader | None


class Auditor:
    """Run one audit over a reader. Requires the chain's suite and trust bundle."""

    def __init__(
        self,
        reader: SqlReader,
        suite: Suite,
        trust: TrustBundle,
        *,
        head_file: Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.r = reader
        self.suite = suite
        self.trust = trust
        self.hasher = hasher_for(suite)
        self.head_file = head_file
        self.progress = progress
        self.report = AuditReport()
        self._tainted: list[tuple[int, int]] = []  # leaf ranges already reported as bad

    def run(self) -> AuditReport:
        started = time.perf_counter()
        # Read the last-head file before the first query opens our snapshot: it is written only
        # after a commit, so it can never be ahead of a snapshot taken later.
        head = self._read_head_file()
        blocks = self._audit_blocks()
        self._audit_tree(blocks, self._tree_size_to_walk())
        for _ in blocks:  # blocks the tree walk did not need still get their own checks
            pass
        if self.report.blocks == 0:
            self.report.add("block", 0, "the store has no blocks, not even genesis")
        if head is not None:
            self._audit_head(head)
        self.report.seconds = time.perf_counter() - started
        return self.report

    # -- blocks ------------------------------------------------------------------------------

    def _audit_blocks(self) -> Iterator[_Block]:
        """Check each block as it streams past, and yield it for the root checks."""
        rep = self.report
        chain = self.r.get_meta("chain")
        prev_hash: bytes | None = None
        prev: _Block | None = None
        expected_height = 0
        for row in self.r.iter_blocks():
            rep.blocks += 1
            for missing in range(expected_height, row.height):
                rep.add("block", missing, "block is missing (height gap)")
                prev_hash = None
            expected_height = row.height + 1
            header = self._parse_header(row.height, row.header, row.signatures)
            current = _Block(row.height, row.tree_size, header)
            if header is None:
                prev_hash, prev = None, current
                yield current
                continue
            if header.height != row.height or header.tree_size != row.tree_size:
                rep.add("block", row.height, "row columns disagree with the signed header")
            if header.chain != chain:
                rep.add("block", row.height, f"header names chain {header.chain}, store is {chain}")
            if row.height == 0 and header.prev != ZERO_HASH:
                rep.add("block", 0, "genesis prev is not all zeros")
            if prev_hash is not None and header.prev != prev_hash:
                rep.add("block", row.height, "prev does not match the hash of the previous header")
            if prev is not None and prev.header is not None:
                if header.tree_size < prev.tree_size or (
                    row.height > 0 and header.tree_size == prev.tree_size
                ):
                    rep.add("block", row.height, "tree size does not grow")
                if header.ts < prev.header.ts:
                    rep.add("block", row.height, "timestamp goes backwards")
            self._audit_signatures(header)
            prev_hash = self.suite.hash(row.header)
            prev = current
            yield current

    def _parse_header(
        self, height: int, raw: bytes, sigs: tuple[tuple[str, bytes], ...]
    ) -> SignedHeader | None:
        try:
            body = json.loads(raw)
            if canonical_bytes(body) != raw:
                self.report.add("block", height, "header bytes are not canonical JSON")
                return None
            body["signatures"] = [{"key_id": k, "sig": s.hex()} for k, s in sigs]
            return SignedHeader.from_json(body, field=f"block[{height}]")
        except (ValueError, MedLedgerError) as exc:
            self.report.add("block", height, f"header is corrupt: {exc}")
            return None

    def _audit_signatures(self, h: SignedHeader) -> None:
        message = h.signing_bytes()
        good = 0
        for s in h.signatures:
            key = self.trust.verify_key(s.key_id)
            if key is None:
                self.report.add("signature", h.height, f"signature by untrusted key {s.key_id}")
            elif not key.verify(s.sig, message):
                self.report.add("signature", h.height, f"signature by {s.key_id} does not verify")
            else:
                good += 1
        if good < self.trust.quorum:
            self.report.add(
                "signature", h.height, f"{good} valid signature(s), quorum is {self.trust.quorum}"
            )
        if h.proposer not in {s.key_id for s in h.signatures}:
            self.report.add("signature", h.height, f"proposer {h.proposer} did not sign")

    # -- entries and nodes -------------------------------------------------------------------

    def _audit_tree(self, blocks: Iterator[_Block], final: int) -> None:
        rep = self.report
        frontier = Frontier.from_hashes(self.hasher, 0, [])
        leaf_hash = self.hasher.leaf_hash
        pending = self._next_root(blocks, frontier)
        new = self.hasher.new
        start = 0
        while start < final:
            end = min(start + _BATCH, final)
            stored = self._stored_nodes(start, end)
            rows = self.r.entry_range(start, end)
            if len(rows) == end - start:  # the normal case: every entry present, in order
                if new is not None:
                    leaves = [new(b"\x00" + d).digest() for _, d in rows]
                else:
                    leaves = [leaf_hash(d) for _, d in rows]
            else:
                have = dict(rows)
                leaves = []
                for i in range(start, end):
                    data = have.get(i)
                    if data is not None:
                        leaves.append(leaf_hash(data))
                        continue
                    rep.add("entry", i, "entry is missing")
                    self._tainted.append((i, i + 1))
                    leaves.append(stored.get(i, ZERO_HASH))
            # Cut at block boundaries inside the batch so every block root is checked.
            pos = start
            while pos < end:
                stop = pending.tree_size if pending and pending.tree_size <= end else end
                completed = frontier.extend(leaves[pos - start : stop - start])
                rep.nodes += len(completed)
                get = stored.get
                for level, index, h in completed:
                    if get((level << 48) | index) != h:
                        self._mismatch(level, index, h, stored)
                pos = stop
                pending = self._next_root(blocks, frontier, pending)
            rep.entries = end
            if self.progress is not None:
                self.progress(end, final)
            start = end
        for batch in self.r.entry_batches(final):
            for idx, _ in batch:
                rep.add("entry", idx, "entry is not covered by any signed head")
        self._check_node_count(final)

    def _tree_size_to_walk(self) -> int:
        """Return the largest claimed tree size, capped near what the store can back."""
        claimed = self.r.max_tree_size()
        held = self.r.entry_count()
        if claimed > held + _MAX_GAP:
            self.report.add(
                "block",
                "tree_size",
                f"blocks claim a tree of {claimed} entries but the store holds {held}; "
                f"only the first {held} are checked",
            )
            return held
        return claimed

    def _stored_nodes(self, start: int, end: int) -> dict[int, bytes]:
        """Fetch the stored nodes completed by leaves [start, end), keyed by node key."""
        out: dict[int, bytes] = {}
        level = 0
        while (1 << level) <= end:
            lo = max(0, ((start + 1 + (1 << level) - 1) >> level) - 1)
            hi = (end >> level) - 1
            if hi >= lo:
                base = level << 48
                out.update(self.r.node_rows(base + lo, base + hi))
            level += 1
        return out

    def _mismatch(self, level: int, index: int, h: bytes, stored: dict[int, bytes]) -> None:
        got = stored.get((level << 48) | index)
        lo, hi = index << level, (index + 1) << level
        if any(a < hi and lo < b for a, b in self._tainted):
            return  # follows from a problem already reported below this node
        if level == 0:
            problem = "entry bytes do not hash to the stored leaf hash"
            parent = stored.get((1 << 48) | (index >> 1))
            sib = stored.get(index ^ 1)
            if got is None:
                problem = "stored leaf hash is missing"
            elif parent is not None and sib is not None:
                pair = (got, sib) if index % 2 == 0 else (sib, got)
                if self.hasher.node_hash(*pair) != parent:
                    problem = "stored leaf hash was altered (it no longer fits its parent)"
                else:
                    problem = "entry bytes were altered (the stored leaf hash still fits the tree)"
            self.report.add("entry", index, problem)
        else:
            problem = "node is missing" if got is None else "node hash does not match its children"
            self.report.add("node", f"{level}/{index}", problem, level=level, index=index)
        self._tainted.append((lo, hi))

    def _next_root(
        self, blocks: Iterator[_Block], frontier: Frontier, pending: _Block | None = None
    ) -> _Block | None:
        """Check every block whose tree size the rebuild has reached; return the next one."""
        while True:
            if pending is not None:
                if pending.tree_size > frontier.size:
                    return pending
                if pending.tree_size == frontier.size:
                    self._check_root(frontier, pending)
                # A smaller size is out of order, already reported by the block checks.
            pending = next(blocks, None)
            if pending is None:
                return None

    def _check_root(self, frontier: Frontier, block: _Block) -> None:
        size, height, header = block.tree_size, block.height, block.header
        if header is None or frontier.root() == header.root:
            return
        if any(a < size for a, _ in self._tainted):
            return  # explained by an altered entry or node already reported
        self.report.add("block", height, f"root does not match the entries (tree size {size})")

    def _check_node_count(self, size: int) -> None:
        for idx, _ in self.r.entry_range(-(2**62), 0):
            self.report.add("entry", idx, "entry at a negative index")
        for key, _ in self.r.node_rows(-(2**62), -1) + self.r.node_rows(_KEY_LIMIT, 2**62):
            self.report.add("node", key, "node key outside the tree's key space")
        want = 2 * size - bin(size).count("1")
        if self.r.node_count() <= want:
            return  # missing nodes were already named while rebuilding the tree
        for level in range(48):
            for index, _ in self.r.get_node_range(level, size >> level, (1 << 48) - 1):
                self.report.add("node", f"{level}/{index}", "node lies outside the signed tree")

    def _read_head_file(self) -> SignedHeader | None:
        if self.head_file is None:
            return None
        if not self.head_file.exists():
            self.report.add(
                "head",
                str(self.head_file),
                "the last-head file is missing, so a rollback of the store cannot be ruled out",
            )
            return None
        try:
            return SignedHeader.from_json(json.loads(self.head_file.read_text("utf-8")))
        except (OSError, ValueError, MedLedgerError) as exc:
            self.report.add("head", str(self.head_file), f"cannot read the last-head file: {exc}")
            return None

    def _audit_head(self, head: SignedHeader) -> None:
        latest = self.r.latest_block()
        if latest is None:
            return
        if latest.height < head.height:
            self.report.add(
                "head",
                head.height,
                f"the node committed height {head.height} (tree size {head.tree_size}) but the "
                f"store ends at height {latest.height}: blocks were removed",
            )
            return
        try:
            mine = self.r.get_block(head.height)
        except NotFound:
            self.report.add("head", head.height, "the committed head's block is missing")
            return
        if mine.header != head.signing_bytes():
            self.report.add("head", head.height, "stored header differs from the committed head")
