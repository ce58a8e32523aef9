"""Regenerate the golden certificate files (run once; the test suite verifies the output).

.venv/bin/python tests/data/golden/make_golden.py
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from medledger.crypto.canonical import canonical_bytes
from medledger.ledger.node import LedgerNode

HERE = Path(__file__).parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        node = LedgerNode.init(Path(tmp) / "d", node="hosp-central", block_max_wait_ms=0)
        salt = bytes.fromhex("9a3c5e7f11223344556677889900aabb")
        payload = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "urn:hosp-central:lis", "code": "HGB"}]},
            "valueQuantity": {"value": 135, "unit": "g/L"},
        }
        entries = [
            {
                "v": 1,
                "type": "record.put",
                "inst": "hosp-central",
                "ts": f"2026-11-22T08:0{i}:00Z",
                "ref": f"Observation/{i}/_history/1",
                "subject": hashlib.sha256(f"demo-{i}".encode()).hexdigest(),
            }
            for i in range(6)
        ]
        entries[5]["payload_hash"] = hashlib.sha256(salt + canonical_bytes(payload)).hexdigest()
        node.append(entries[:3])
        node.append(entries[3:])
        cert = node.certificate(5, payload_salt=salt)
        node.append([{"v": 1, "type": "audit.batch", "meta": {"n": i}} for i in range(5)])
        cons = node.consistency(cert["header"]["tree_size"])
        trust = json.loads((node.data_dir / "keys.json").read_text())
        node.close()
    leaf_bytes = canonical_bytes(cert["entry"])
    header = {k: v for k, v in cert["header"].items() if k != "signatures"}
    trace = {
        "leaf_bytes_utf8": leaf_bytes.decode(),
        "leaf_hash": hashlib.sha256(b"\x00" + leaf_bytes).hexdigest(),
        "header_signed_bytes_utf8": canonical_bytes(header).decode(),
        "header_hash": hashlib.sha256(canonical_bytes(header)).hexdigest(),
    }
    for name, obj in [
        ("cert.json", cert),
        ("keys.json", trust),
        ("consistency.json", cons),
        ("payload.json", payload),
        ("trace.json", trace),
    ]:
        (HERE / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
