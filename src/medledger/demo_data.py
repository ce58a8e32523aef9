"""Realistic ledger entries for the demo and the benchmark: a referral story's metadata.

Only what the records layer will put on chain: refs, pseudonyms, salted hashes. No names, no
identifiers, no birth dates.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

INSTITUTIONS = ("hosp-central", "hosp-member-east", "hosp-member-west")
_FLOWS = (
    ("ServiceRequest", "record.put", "放射/CT"),
    ("ServiceRequest", "record.put", "检验/血常规"),
    ("Specimen", "record.put", "送检条码"),
    ("Observation", "record.put", "检验结果"),
    ("DiagnosticReport", "record.put", "检查报告"),
    ("ImagingStudy", "record.put", "影像"),
    ("DiagnosticReport", "record.put", "报告召回"),
    ("AuditEvent", "audit.batch", "访问留痕"),
)


def sample_entries(count: int, *, seed: int = 6962) -> Iterator[dict[str, Any]]:
    """Yield ``count`` entries shaped like the records layer's ``record.put`` entries."""
    rnd = random.Random(seed)
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    for i in range(count):
        rtype, kind, label = _FLOWS[rnd.randrange(len(_FLOWS))]
        inst = INSTITUTIONS[rnd.randrange(len(INSTITUTIONS))]
        patient = rnd.randrange(5000)
        subject = hashlib.sha256(f"pseudonym:{inst}:{patient}".encode()).hexdigest()
        ts = start + timedelta(seconds=i * 3 + rnd.randrange(3))
        yield {
            "v": 1,
            "type": kind,
            "inst": inst,
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ref": f"{rtype}/{100000 + i}/_history/{1 + rnd.randrange(3)}",
            "subject": subject,
            "payload_hash": hashlib.sha256(f"payload:{seed}:{i}".encode()).hexdigest(),
            "meta": {"kind": label, "source": "HIS" if rtype == "ServiceRequest" else "LIS"},
        }
