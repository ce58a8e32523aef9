"""Child process of the ledger benchmark: the same leaves through pymerkle's in-memory tree."""

from __future__ import annotations

import json
import sys
import time

from pymerkle import InmemoryTree, verify_inclusion

from medledger.benchmarks.ledger import peak_rss_mib


def main() -> None:
    path, picks_json = sys.argv[1], sys.argv[2]
    picks = json.loads(picks_json)
    with open(path, "rb") as fh:
        entries = [line[:-1] for line in fh]
    t = InmemoryTree(algorithm="sha256")
    t0 = time.perf_counter()
    for e in entries:
        t.append_entry(e)
    appends = len(entries) / (time.perf_counter() - t0)
    size = t.get_size()
    root = t.get_root()
    t0 = time.perf_counter()
    proofs = [t.prove_inclusion(i + 1) for i in picks]  # pymerkle counts leaves from 1
    prove = len(picks) / (time.perf_counter() - t0)
    leaves = [t.get_leaf(i + 1) for i in picks]
    t0 = time.perf_counter()
    for leaf, proof in zip(leaves, proofs, strict=True):
        verify_inclusion(leaf, root, proof)
    verify = len(picks) / (time.perf_counter() - t0)
    json.dump(
        {
            "name": "pymerkle",
            "mode": "in-memory (not durable)",
            "size": size,
            "root": root.hex(),
            "appends_per_s": round(appends),
            "proofs_per_s": round(prove),
            "verifications_per_s": round(verify),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
