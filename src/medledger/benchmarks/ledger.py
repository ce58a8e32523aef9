"""``medledger bench ledger``: durable appends, proofs, verifications, audit, peak RSS.

The same leaves go to pymerkle (a benchmark-only dependency) in a child process, so its memory
does not count against ours; the roots must be equal, and the speed ratios are reported.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from itertools import islice
from pathlib import Path
from typing import Any

from medledger.demo_data import sample_entries
from medledger.ledger import tree
from medledger.ledger.audit import Auditor
from medledger.ledger.node import LedgerNode
from medledger.ordering.base import Receipt
from medledger.verify.merkle import verify_inclusion

Progress = Callable[[str, int, int], None]
SUBMIT_CHUNK = 1000
IN_FLIGHT = 8


def peak_rss_mib() -> float:
    """Return this process's peak resident set (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(
    entries: int,
    *,
    suite: str = "intl-v1",
    db: str | None = None,
    samples: int = 20_000,
    peer: bool = True,
    workdir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the ledger benchmark and return its figures (see docs/benchmarks.md)."""
    note = progress or (lambda *_: None)
    tmp = tempfile.TemporaryDirectory(prefix="medledger-bench-", dir=workdir)
    data = Path(tmp.name) / "data"
    leaves_file = Path(tmp.name) / "entries.jsonl"
    result: dict[str, Any] = {
        "benchmark": "ledger",
        "entries": entries,
        "suite": suite,
        "db": "sqlite" if db is None else db.split(":", 1)[0],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    with LedgerNode.init(data, suite=suite, db=db, node="bench") as ledger:
        # 1. Validate and canonicalize (what a caller pays before appending), streamed to a
        #    file so memory stays flat at any N; the same file feeds the pymerkle peer.
        t0 = time.perf_counter()
        with leaves_file.open("wb") as fh:
            source = sample_entries(entries)
            while chunk := list(islice(source, SUBMIT_CHUNK)):
                fh.write(b"\n".join(ledger.encode(chunk)) + b"\n")
        result["encode_per_s"] = round(entries / (time.perf_counter() - t0))
        # 2. Durable appends: canonical entries in, receipts out only after the block's
        #    commit is synced (order, leaf hashes, tree, signature, one transaction per block).
        t0 = time.perf_counter()
        pending: list[Future[list[Receipt]]] = []
        done = 0
        with leaves_file.open("rb") as fh:
            while lines := fh.readlines(SUBMIT_CHUNK * 400):
                pending.append(ledger.submit([line[:-1] for line in lines]))
                if len(pending) >= IN_FLIGHT:
                    done += len(pending.pop(0).result())
                    note("append", done, entries)
        for fut in pending:
            done += len(fut.result())
        append_s = time.perf_counter() - t0
        note("append", done, entries)
        if done != entries:
            raise RuntimeError(f"appended {done} entries, expected {entries}")
        result["durable_appends_per_s"] = round(entries / append_s)
        result["validated_appends_per_s"] = round(
            1 / (1 / result["encode_per_s"] + 1 / result["durable_appends_per_s"])
        )
        head = ledger.head()
        result["blocks"] = head.height
        result["root"] = head.root.hex()
        size = head.tree_size
        rnd = random.Random(9162)
        picks = [rnd.randrange(size) for _ in range(min(samples, size))]
        t0 = time.perf_counter()
        result["cache_warm_nodes"] = ledger.warm_cache()
        result["cache_warm_s"] = round(time.perf_counter() - t0, 3)
        # 3. Inclusion proofs at the final size, one at a time (a certificate request),
        #    through the store's read path with the tree's levels warmed into memory.
        with ledger.reader() as reader:
            t0 = time.perf_counter()
            proofs = [
                tree.inclusion_proof(reader, ledger.hasher, i, size, memo=reader.memo)
                for i in picks
            ]
            result["proofs_per_s"] = round(len(picks) / (time.perf_counter() - t0))
            leaves = reader.get_nodes([(0, i) for i in picks])
        # 4. Verifications against one known signed head.
        t0 = time.perf_counter()
        for i, leaf, proof in zip(picks, leaves, proofs, strict=True):
            verify_inclusion(ledger.hasher, i, size, leaf, proof, head.root)
        result["verifications_per_s"] = round(len(picks) / (time.perf_counter() - t0))
        # 5. Full audit.
        with ledger.reader() as reader:
            report = Auditor(
                reader,
                ledger.suite,
                ledger.trust,
                progress=lambda d, t: note("audit", d, t),
            ).run()
        if not report.ok:
            raise RuntimeError(f"benchmark store failed its own audit: {report.findings[:3]}")
        result["audit_entries_per_s"] = round(entries / report.seconds)
        result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if peer:
        note("pymerkle", 0, entries)
        result["peer"] = _peer(leaves_file, picks, result)
    tmp.cleanup()
    return result


def _peer(leaves_file: Path, picks: list[int], ours: dict[str, Any]) -> dict[str, Any]:
    """Feed the same entries to pymerkle in a child process and compare."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "medledger.benchmarks.pymerkle_peer",
            str(leaves_file),
            json.dumps(picks[:2000]),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    peer: dict[str, Any] = json.loads(out.stdout)
    if peer["root"] != ours["root"]:
        raise RuntimeError(f"roots differ: ours {ours['root']}, pymerkle {peer['root']}")
    peer["roots_equal"] = True
    peer["ratio_appends"] = round(ours["durable_appends_per_s"] / peer["appends_per_s"], 2)
    peer["ratio_proofs"] = round(ours["proofs_per_s"] / peer["proofs_per_s"], 2)
    peer["ratio_verifications"] = round(
        ours["verifications_per_s"] / peer["verifications_per_s"], 2
    )
    return peer
