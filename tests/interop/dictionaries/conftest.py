"""Fixtures: a real node and a real HTTP server with the terminology routes, and sample tables.

The terminology router is put in front of the app's routes: appended after the FHIR router,
``GET /fhir/R4/ConceptMap/$translate`` would be taken by the FHIR read ``/{rtype}/{rid}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from medledger.api.app import create_app, open_security
from medledger.api.terminology import CSV, router
from medledger.interop.dictionaries import DictionaryService
from medledger.ledger.node import LedgerNode
from medledger.records.fhir_shape import check_shape, resource_model
from medledger.records.service import RecordService
from tests.identity import CENTRAL, MEMBER, Identities, provision
from tests.interop._uvicorn import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "dictionaries"
MEMBER_CSV = (DATA / "member_east.csv").read_bytes()  # GB18030, as Excel saves it
CENTRAL_CSV = (DATA / "central.csv").read_bytes()  # UTF-8 with BOM
MAPPING_CSV = (DATA / "member_east_to_central.csv").read_bytes()
MEMBER_SYSTEM = f"urn:medledger:dict:{MEMBER}"
CENTRAL_SYSTEM = f"urn:medledger:dict:{CENTRAL}"
MAX_BODY = 64 * 1024


@dataclass
class Server:
    """A running server: its URL, node, identities and the app."""

    url: str
    node: LedgerNode
    service: RecordService
    ids: Identities
    app: FastAPI

    def client(self, who: str) -> httpx.Client:
        """An HTTP client sending ``who``'s token."""
        return httpx.Client(base_url=self.url, timeout=30, headers=self.ids.headers(who))


def put_table(client: httpx.Client, path: str, data: bytes, ctype: str = CSV) -> httpx.Response:
    """PUT a table to a native terminology route."""
    return client.put(f"/api/v1/interop/{path}", content=data, headers={"Content-Type": ctype})


def load_samples(server: Server, *, by: str | None = None) -> None:
    """Import the member and central dictionaries and their mapping (by their owners' users,
    or all by ``by``)."""
    with server.client(by or "dr-member") as member, server.client(by or "dr-central") as central:
        assert put_table(member, f"dictionaries/{MEMBER}", MEMBER_CSV).status_code == 201
        assert put_table(central, f"dictionaries/{CENTRAL}", CENTRAL_CSV).status_code == 201
        path = f"mappings/{MEMBER}/{CENTRAL}"
        assert put_table(member, path, MAPPING_CSV).status_code == 201


def validate_parameters(obj: dict[str, Any]) -> None:
    """Check a Parameters resource as strictly as the records layer checks what it serves."""
    model = resource_model("Parameters")
    assert model is not None
    assert check_shape(obj, model, "Parameters") == []
    model.model_validate(obj)


def front(app: FastAPI, service: RecordService) -> None:
    """Include the terminology router in front of every route the app already has."""
    before = len(app.router.routes)
    app.include_router(router(service, max_body=MAX_BODY))
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added


@contextmanager
def serving(tmp_path: Path, *, policy: str | None = None) -> Iterator[Server]:
    """A node of hosp-central with the test identities, served by uvicorn on a free port."""
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    if policy is not None:
        (tmp_path / "d" / "sharing.yaml").write_text(policy, encoding="utf-8")
    service = RecordService.open(node)
    ids = provision(node)
    app = create_app(
        service, max_body=MAX_BODY, security=open_security(service, audit_interval=3600)
    )
    front(app, service)
    try:
        with serve_app(app) as url:
            yield Server(url, node, service, ids, app)
    finally:
        app.state.security.close()
        node.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Server]:
    """A fresh server under the default sharing policy (dictionaries are shared group-wide)."""
    with serving(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per module with the sample dictionaries and mapping (tests only read it)."""
    with serving(tmp_path_factory.mktemp("loaded")) as server:
        load_samples(server)
        yield server


@pytest.fixture
def node_service(tmp_path: Path) -> Iterator[RecordService]:
    """The records of a fresh node (no HTTP), for the service tests."""
    node = LedgerNode.init(tmp_path / "n", node=CENTRAL, block_max_wait_ms=1)
    try:
        yield RecordService.open(node)
    finally:
        node.close()


@pytest.fixture
def dicts(node_service: RecordService) -> DictionaryService:
    """A DictionaryService listening to its node's writes."""
    return DictionaryService(node_service)
