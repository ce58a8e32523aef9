"""A real HTTP server with the specimen routes, and lab orders stored the way the gateway does.

The node is the central hospital's (示例市第一人民医院, ``hosp-central``); the institutions of
``tests.identity.provision`` plus ``hosp-member-east`` (示例区中医院), which sends the orders.
Requisitions become a transaction Bundle (``requisition_bundle``) posted as the sender; the
Specimen then gets its group barcode from the default scheme, as the gateway allocates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from medledger.access.model import InstitutionKind
from medledger.api.app import create_app, open_security
from medledger.api.specimens import router
from medledger.interop.barcode.scheme import BarcodeScheme
from medledger.interop.barcode.sequences import Sequences, allocate
from medledger.interop.hl7.fhir_orders import requisition_bundle
from medledger.interop.model import Coded, Requisition, identifier_system
from medledger.interop.specimens import GROUP_BARCODE
from medledger.ledger.node import LedgerNode
from medledger.records.bundles import process_bundle
from medledger.records.guard import SystemGuard
from medledger.records.service import RecordService
from tests.conftest import PG_ADMIN_URL
from tests.identity import Identities, admin_of, provision
from tests.interop._uvicorn import serve_app
from tests.interop.specimens._orders import (
    BIOPSY,
    BLOOD_WORK,
    CRP,
    EAST,
    EAST_NAME,
    ELSEWHERE,
    NOT_LABELLED,
    TRANSLATIONS,
    ZHANG,
    lab,
    requisition,
)

SCHEME = BarcodeScheme(
    institutions={"hosp-central": "11", "hosp-member": "12", "hosp-other": "13", EAST: "14"}
)
DAY = date(2026, 11, 23)


@dataclass
class Site:
    """The running server, its records, and the barcodes the seeding allocated."""

    url: str
    service: RecordService
    node: LedgerNode
    ids: Identities
    sequences: Sequences
    barcodes: dict[str, str] = field(default_factory=dict)  # member barcode -> group barcode

    def client(self, name: str) -> httpx.Client:
        """An HTTP client sending ``name``'s token."""
        return httpx.Client(base_url=self.url, timeout=30, headers=self.ids.headers(name))

    def store(
        self,
        req: Requisition,
        translations: Mapping[tuple[str, str], Sequence[Coded]] | None = None,
        *,
        group_barcodes: bool = True,
    ) -> None:
        """Store ``req`` as the gateway would: its Bundle as the sender, then group barcodes."""
        bundle = requisition_bundle(req, translations=translations)
        process_bundle(self.service, bundle, guard=SystemGuard(req.sender))
        if not group_barcodes:
            return
        for own in dict.fromkeys(i.barcode for i in req.items if i.barcode):
            assert own is not None
            self.barcodes[own] = self.add_group_barcode(req.sender, own)

    def allocate(self, sender: str) -> str:
        """A new group barcode, as the gateway allocates it for ``sender``'s specimen."""
        return allocate(SCHEME, self.sequences, sender, DAY)

    def add_group_barcode(self, sender: str, own: str, value: str | None = None) -> str:
        """Give the Specimen with the sender's barcode ``own`` a group barcode (a new one
        unless ``value``)."""
        spec = self.specimen(sender, own)
        value = value or self.allocate(sender)
        spec["identifier"].append({"system": GROUP_BARCODE, "value": value})
        self.service.update("Specimen", spec["id"], spec, guard=SystemGuard(sender))
        return value

    def specimen(self, sender: str, own: str) -> dict[str, Any]:
        """The stored Specimen with the sender's barcode ``own``."""
        system = identifier_system(sender, "barcode")
        found = self.service.search("Specimen", [("identifier", f"{system}|{own}")])
        assert len(found.resources) == 1, own
        return found.resources[0]

    def order(self, sender: str, placer: str) -> dict[str, Any]:
        """The stored ServiceRequest with placer number ``placer``."""
        system = identifier_system(sender, "placer")
        found = self.service.search("ServiceRequest", [("identifier", f"{system}|{placer}")])
        assert len(found.resources) == 1, placer
        return found.resources[0]


@contextmanager
def _serve(data_dir: Path, db_url: str | None) -> Iterator[Site]:
    """A node with the specimen routes served by uvicorn on a loopback port."""
    node = LedgerNode.init(data_dir, db=db_url, node="hosp-central", block_max_wait_ms=1)
    service = RecordService.open(node)
    ids = provision(node)
    admin_of(node).add_institution(EAST, EAST_NAME, InstitutionKind.MEMBER, actor="root")
    app = create_app(
        service, max_body=64 * 1024, security=open_security(service, audit_interval=3600)
    )
    app.include_router(router(service, max_body=64 * 1024))
    try:
        with serve_app(app) as url:
            yield Site(url, service, node, ids, Sequences(node.store.engine))
    finally:
        app.state.security.close()
        node.close()


def _seed(site: Site) -> Site:
    """Store the test requisitions, in this order: blood work (two lab items in one tube
    E0001, one CT), a biopsy (E0002), a urine test whose Specimen has no group barcode yet
    (E0003), a CRP test the member sent without a barcode (the gateway's group barcode is its
    only one), and hosp-member's order to hosp-member-east (M0001)."""
    site.store(BLOOD_WORK, TRANSLATIONS)
    site.store(BIOPSY)
    site.store(NOT_LABELLED, group_barcodes=False)
    value = site.allocate(EAST)
    site.store(requisition(ZHANG, lab("SQ-0006", CRP, value)), group_barcodes=False)
    site.barcodes["CRP"] = site.add_group_barcode(EAST, value, value)
    site.store(ELSEWHERE)
    return site


@pytest.fixture
def seeded(tmp_path: Path, db_url: str | None) -> Iterator[Site]:
    """A fresh seeded site of its own, for a test that changes records."""
    with _serve(tmp_path / "d", db_url) as site:
        yield _seed(site)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One seeded site per test module and backend, for tests that only read (faster)."""
    data_dir = tmp_path_factory.mktemp("specimens") / "d"
    if request.param == "sqlite":
        with _serve(data_dir, None) as site:
            yield _seed(site)
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"mltest_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        with _serve(data_dir, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}") as site:
            yield _seed(site)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
