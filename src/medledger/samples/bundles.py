"""Turn linked sample resources into a FHIR transaction Bundle with ``urn:uuid`` references."""

from __future__ import annotations

import copy
import uuid
from typing import Any


def as_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a transaction that POSTs ``resources``; ``Type/id`` references become urn:uuids.

    The server assigns the ids, so the same resources can be posted any number of times.
    """
    urns = {
        f"{r['resourceType']}/{r['id']}": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['id'])}"
        for r in resources
    }
    entries = []
    for r in resources:
        body = _rewrite(copy.deepcopy(r), urns)
        key = f"{r['resourceType']}/{r['id']}"
        del body["id"]
        entries.append(
            {
                "fullUrl": urns[key],
                "resource": body,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _rewrite(node: Any, urns: dict[str, str]) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and v in urns:
                node[k] = urns[v]
            else:
                _rewrite(v, urns)
    elif isinstance(node, list):
        for v in node:
            _rewrite(v, urns)
    return node
