"""Realistic transaction Bundles of every supported type, ingested over HTTP and read back.

Each Bundle is one seeded clinical episode (patient, orders, specimen, results, report, images,
document, consent, provenance, terminology) with urn:uuid references. Read back, every
resource equals what was sent, modulo ``meta`` and with its references resolved to the ids the
server assigned; every version is on the ledger and its certificate verifies with it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from medledger.crypto.canonical import canonical_bytes
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.samples.bundles import as_transaction
from medledger.samples.fhir import clinical_set
from medledger.verify.certificate import parse_certificate, verify_certificate
from tests.api.conftest import Live

FHIR = {"Content-Type": "application/fhir+json"}


def _resolve(node: Any, ids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: ids.get(v, v) if k == "reference" and isinstance(v, str) else _resolve(v, ids)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve(v, ids) for v in node]
    return node


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_every_type_round_trips_through_a_transaction(live: Live, seed: int) -> None:
    """All 15 clinical types in one transaction: read back equals sent, each anchored."""
    bundle = as_transaction(clinical_set(seed))
    sent = copy.deepcopy(bundle)
    r = live.client.post("/fhir/R4", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["type"] == "transaction-response"
    ids = {
        e["fullUrl"]: "/".join(a["response"]["location"].split("/")[:2])
        for e, a in zip(sent["entry"], answer["entry"], strict=True)
    }
    # A Subscription is registered by a system, not part of a clinical episode.
    assert {ref.split("/")[0] for ref in ids.values()} == set(SUPPORTED_TYPES) - {"Subscription"}
    indexes = set()
    for entry in sent["entry"]:
        ref = ids[entry["fullUrl"]]
        got = live.client.get(f"/fhir/R4/{ref}")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["meta"]["versionId"] == "1"
        expected = _resolve(entry["resource"], ids) | {"id": ref.split("/")[1]}
        expected.pop("meta", None)
        assert {k: v for k, v in body.items() if k != "meta"} == expected
        cert = live.client.get(f"/fhir/R4/{ref}/_history/1/$certificate").json()
        report = verify_certificate(
            parse_certificate(cert), live.node.trust, payload=canonical_bytes(body)
        )
        assert report.tree_size >= len(sent["entry"])
        assert str(cert["leaf_index"]) == got.headers["X-Ledger-Index"]
        indexes.add(cert["leaf_index"])
        assert got.headers["ETag"] == 'W/"1"'
    assert len(indexes) == len(sent["entry"])  # one ledger entry per resource
