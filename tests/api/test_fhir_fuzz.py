"""Fuzz /fhir/R4 over real HTTP: no input, however malformed, yields a 5xx or a partial write."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.api.app import create_app, open_security
from medledger.ledger.node import LedgerNode
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.records.service import RecordService
from tests.api.conftest import _free_port
from tests.identity import provision

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
types = st.sampled_from([*SUPPORTED_TYPES, "Spaceship", "", "Patient/../x"])


def _resourceish(rtype: str) -> st.SearchStrategy[dict[str, object]]:
    return st.dictionaries(
        st.sampled_from(
            [
                "status",
                "code",
                "subject",
                "name",
                "identifier",
                "id",
                "meta",
                "valueQuantity",
                "birthDate",
                "effectiveDateTime",
                "foo",
            ]
        ),
        json_values,
        max_size=5,
    ).map(lambda d: {"resourceType": rtype, **d})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    data: Path = tmp_path_factory.mktemp("fuzz") / "d"
    node = LedgerNode.init(data, node="hosp-central", block_max_wait_ms=1)
    service = RecordService.open(node)
    auth = provision(node).headers("hub")
    app = create_app(service, security=open_security(service, audit_interval=3600))
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    import threading
    import time

    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.02)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=auth)
    yield client, node
    client.close()
    srv.should_exit = True
    t.join(10)
    app.state.security.close()
    node.close()


def _count(node: LedgerNode) -> int:
    with node.reader() as r:
        return r.entry_count()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_5xx_and_no_partial_writes(
    server: tuple[httpx.Client, LedgerNode], data: st.DataObject
) -> None:
    """Random methods, types, ids and bodies: 2xx or 4xx only; a 4xx appends nothing."""
    client, node = server
    rtype = data.draw(types)
    method = data.draw(st.sampled_from(["POST", "PUT", "GET", "DELETE"]))
    rid = data.draw(st.text(alphabet="abc-.123/%", min_size=1, max_size=8))
    body = data.draw(st.one_of(_resourceish(rtype), json_values))
    raw = data.draw(
        st.one_of(
            st.just(json.dumps(body)), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
        )
    )
    path = f"/fhir/R4/{rtype}" if method == "POST" else f"/fhir/R4/{rtype}/{rid}"
    if method == "GET" and data.draw(st.booleans()):
        path = f"/fhir/R4/{rtype}?" + data.draw(
            st.sampled_from(
                [
                    "code=x",
                    "date=ge2026",
                    "date=zz",
                    "_count=abc",
                    "name=",
                    "subject=Patient/",
                    "_sort=weird",
                    "identifier=a|b|c",
                    "%ff=1",
                ]
            )
        )
    before = _count(node)
    r = client.request(
        method,
        path,
        content=raw.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code < 500, (method, path, raw[:200], r.text[:300])
    if r.status_code >= 400:
        assert _count(node) == before, (method, path, r.status_code)
        assert r.json()["resourceType"] == "OperationOutcome"
