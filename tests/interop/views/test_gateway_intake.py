"""A HIS view polled into the gateway on real MariaDB and PostgreSQL: rows become orders
(translated to the performer's dictionary), a bad row is quarantined without blocking, a
revoked row is a new version, and the bridge tables show it all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from medledger.interop.config import parse_gateway
from medledger.interop.gateway import Gateway
from medledger.interop.model import code_system
from medledger.interop.terminology import Mapping, concept_map
from medledger.interop.view_intake import Exposer, ViewIntake
from medledger.interop.views.exposed import ExposedTables
from medledger.interop.views.poller import ViewPoller
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from tests.interop.views._his import CENTRAL, MEMBER, connector, create_his, insert_rows, row

pytestmark = pytest.mark.xdist_group("interop-views")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    node = LedgerNode.init(tmp_path / "d", node=CENTRAL, block_max_wait_ms=1)
    try:
        service = RecordService.open(node)
        service.create(
            "ConceptMap", concept_map(MEMBER, CENTRAL, [Mapping("CT001", "胸部CT平扫", "300101")])
        )
        yield Gateway(service, parse_gateway({}))
    finally:
        node.close()


def test_view_rows_become_orders_and_bridge_rows(
    gateway: Gateway, source: Engine, source_url: str
) -> None:
    """Two good rows stored and translated, one bad row quarantined, a re-poll adds nothing,
    a revoked row is a new version; the bridge tables carry the performer's codes."""
    table = create_his(source)
    insert_rows(source, table, [row(1), row(2), row(3, xb="X")])  # X: no sex mapping
    bridge = ExposedTables(source_url)
    gateway.on_stored = Exposer(gateway, bridge)
    conn = connector(source_url)
    engine = gateway.service.ledger.store.engine
    with ViewPoller(conn, engine, ViewIntake(gateway, conn)) as poller:
        poller.poll_once()
        statuses = sorted(m.status for m in gateway.journal.between("2000-01-01", "2999-12-31"))
        assert statuses == ["quarantined", "stored", "stored"]
        bad = gateway.journal.by_status("quarantined")[0]
        assert str(bad.reason).startswith("xb: ")  # names the column, not the value
        orders = gateway.service.search("ServiceRequest", []).resources
        assert len(orders) == 2
        codes = {(c["system"], c["code"]) for o in orders for c in o["code"]["coding"]}
        assert (code_system(CENTRAL), "300101") in codes
        poller.poll_once()
        assert gateway.journal.count() == 3  # nothing re-read twice
        with source.begin() as c:
            c.execute(
                update(table)
                .where(table.c.sqmxh == "MX000001")
                .values(zt="9", gxsj=row(1)["gxsj"].replace(minute=5))
            )
        poller.poll_once()
    revoked = [o for o in gateway.service.search("ServiceRequest", []).resources
               if o["status"] == "revoked"]  # fmt: skip
    assert len(revoked) == 1
    assert revoked[0]["meta"]["versionId"] == "2"
    t = bridge._md.tables["ml_requisitions"]
    with bridge.engine.connect() as c:
        rows = {r.placer_no: r for r in c.execute(select(t))}
    assert set(rows) == {"MX000001", "MX000002"}
    assert rows["MX000001"].status == "revoked"
    assert rows["MX000002"].item_code == "300101"
    assert "李小明" not in str([tuple(r) for r in rows.values()])  # pseudonyms only
    bridge.close()
