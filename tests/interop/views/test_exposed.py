"""Bridge tables and the LIS view on real PostgreSQL and MariaDB: idempotent upserts, recalls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import func, inspect, select, text

from medledger.errors import EnvironmentFailure, InputError, NotFound
from medledger.interop.model import (
    Coded,
    OrderItem,
    Patient,
    Requisition,
    Result,
    ResultItem,
    Value,
    code_system,
)
from medledger.interop.views.exposed import SONGJIAN_COLUMNS, ExposedTables, view_ddl
from tests.interop.views._his import CENTRAL, MEMBER

EAST, LIS = code_system(MEMBER), code_system("hosp-central")
PATIENT = Patient(id="B000123", name="李小明", sex="male", birth_date="1975-03-14")
REQ = Requisition(
    sender=MEMBER,
    performer=CENTRAL,
    patient=PATIENT,
    items=(
        OrderItem(placer="MX000001", code=Coded(EAST, "XCG", "血常规"), kind="lab",
                  barcode="2405060001", specimen_type=Coded(EAST, "BLD", "静脉血"),
                  collected="2024-05-06T08:40:00+08:00"),
        OrderItem(placer="MX000002", code=Coded(EAST, "CT001", "胸部CT平扫"), kind="radiology"),
    ),
    authored="2024-05-06T00:30:00Z",
    control_id="SQ1@2024-05-06T09:00:00",
)  # fmt: skip
RESULT = Result(
    sender=CENTRAL, placer_institution=MEMBER, patient=Patient(id="B000123"), placer="MX000001",
    filler="JY20240506001", code=Coded(LIS, "BLOOD", "血常规"), kind="lab", status="final",
    issued="2024-05-06T10:15:00+08:00", conclusion="白细胞偏高",
    items=(
        ResultItem(Coded(LIS, "HGB", "血红蛋白"), Value("quantity", number="135", unit="g/L"),
                   reference_range="115-150"),
        ResultItem(Coded(LIS, "WBC", "白细胞计数"),
                   Value("quantity", number="11.20", unit="10^9/L"),
                   reference_range="3.5-9.5", interpretation="H"),
    ),
)  # fmt: skip


@pytest.fixture(params=["mariadb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def bridge_url(request: pytest.FixtureRequest) -> str:
    """A fresh bridge database on each real server."""
    return str(request.getfixturevalue("mariadb_url" if request.param == "mariadb" else "pg_url"))


def _clock() -> Iterator[datetime]:
    """02:00 UTC (10:00 in UTC+8), one second later at every call."""
    return (datetime(2024, 5, 6, 2, 0, tzinfo=UTC) + timedelta(seconds=n) for n in count())


@pytest.fixture
def bridge(bridge_url: str) -> Iterator[ExposedTables]:
    """The bridge tables, created, with a clock that ticks one second per write."""
    ticks = _clock()
    tables = ExposedTables(bridge_url, clock=lambda: next(ticks))
    try:
        yield tables
    finally:
        tables.close()


def _count(bridge: ExposedTables, table: str) -> int:
    with bridge.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_upsert_twice_leaves_one_row_and_no_new_timestamp(bridge: ExposedTables) -> None:
    """Writing the same requisition twice changes nothing the second time."""
    assert bridge.upsert_requisition(REQ, pseudonym="ps-7f3a") == 2
    with bridge.engine.connect() as conn:
        before = conn.execute(text("SELECT placer_no, updated_at FROM ml_requisitions")).all()
    assert bridge.upsert_requisition(REQ, pseudonym="ps-7f3a") == 0
    with bridge.engine.connect() as conn:
        after = conn.execute(text("SELECT placer_no, updated_at FROM ml_requisitions")).all()
    assert sorted(before) == sorted(after)
    assert _count(bridge, "ml_requisitions") == 2


def test_lis_reads_songjian_through_the_view(bridge: ExposedTables) -> None:
    """v_ml_songjian shows barcode rows with pinyin columns, Chinese text and UTC+8 times."""
    translate = {"XCG": Coded(LIS, "1001", "血常规五分类")}
    bridge.upsert_requisition(
        REQ, pseudonym="ps-7f3a", translate=lambda c: translate.get(c.code),
        fhir_refs={"MX000001": "ServiceRequest/81"},
    )  # fmt: skip
    with bridge.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM v_ml_songjian")).mappings().all()
    assert [dict(r) for r in rows] == [
        {"tmh": "2405060001", "sqdh": "MX000001", "sjjg": MEMBER, "zxjg": CENTRAL,
         "brbm": "ps-7f3a", "xmdm": "1001", "xmmc": "血常规五分类", "jclb": "lab",
         "bblx": "静脉血", "cjsj": datetime(2024, 5, 6, 8, 40), "sqsj": datetime(2024, 5, 6, 8, 30),
         "zt": "active", "gxsj": datetime(2024, 5, 6, 10, 0)},
    ]  # fmt: skip
    assert "brxm" not in rows[0]
    with bridge.engine.connect() as conn:
        ref = conn.execute(
            text("SELECT fhir_ref FROM ml_requisitions WHERE placer_no = 'MX000001'")
        )
        assert ref.scalar_one() == "ServiceRequest/81"


def test_revoked_and_recalled_requisition_items(bridge: ExposedTables) -> None:
    """A revoked item updates status and updated_at; a recall sets entered-in-error."""
    bridge.upsert_requisition(REQ, pseudonym="ps-7f3a")
    revoked = Requisition(**{**REQ.__dict__, "items": (
        OrderItem(**{**REQ.items[0].__dict__, "status": "revoked"}),)})  # fmt: skip
    assert bridge.upsert_requisition(revoked, pseudonym="ps-7f3a") == 1
    assert bridge.recall_requisition(MEMBER, "MX000002") is True
    assert bridge.recall_requisition(MEMBER, "MX000002") is False
    with bridge.engine.connect() as conn:
        got = dict(conn.execute(text("SELECT placer_no, status FROM ml_requisitions")).all())
    assert got == {"MX000001": "revoked", "MX000002": "entered-in-error"}
    with pytest.raises(NotFound):
        bridge.recall_requisition(MEMBER, "MX999999")


def test_result_upsert_is_idempotent_and_recall_keeps_history(bridge: ExposedTables) -> None:
    """Same report twice → one row, one history entry; recall → entered-in-error, two entries."""
    assert bridge.upsert_result(RESULT, result_ref="DiagnosticReport/9/_history/1") is True
    assert bridge.upsert_result(RESULT, result_ref="DiagnosticReport/9/_history/1") is False
    assert (_count(bridge, "ml_results"), _count(bridge, "ml_result_items")) == (1, 2)
    assert _count(bridge, "ml_result_history") == 1
    assert bridge.recall_result(CENTRAL, "JY20240506001", reason="标本溶血，报告召回") is True
    assert bridge.recall_result(CENTRAL, "JY20240506001", reason="标本溶血，报告召回") is False
    with bridge.engine.connect() as conn:
        head = conn.execute(text("SELECT status, reason, conclusion FROM ml_results")).one()
        items = conn.execute(text("SELECT status FROM ml_result_items")).scalars().all()
        history = conn.execute(
            text("SELECT status, snapshot FROM ml_result_history ORDER BY id")
        ).all()
    assert tuple(head) == ("entered-in-error", "标本溶血，报告召回", "白细胞偏高")
    assert items == ["entered-in-error", "entered-in-error"]
    assert [h.status for h in history] == ["final", "entered-in-error"]
    first = json.loads(history[0].snapshot)
    assert first["conclusion"] == "白细胞偏高"
    assert first["status"] == "final"
    assert [(i["code"], i["value"], i["flag"]) for i in first["items"]] == [
        ("HGB", "135", None), ("WBC", "11.20", "H"),
    ]  # fmt: skip


def test_correction_with_fewer_items_withdraws_the_missing_one(bridge: ExposedTables) -> None:
    """A corrected report without WBC keeps the WBC row, now entered-in-error."""
    bridge.upsert_result(RESULT)
    corrected = Result(**{**RESULT.__dict__, "status": "corrected", "items": RESULT.items[:1],
                          "reason": "复核更正"})  # fmt: skip
    assert bridge.upsert_result(corrected) is True
    with bridge.engine.connect() as conn:
        items = dict(conn.execute(text("SELECT code, status FROM ml_result_items")).all())
        head = conn.execute(text("SELECT status, reason FROM ml_results")).one()
    assert items == {"HGB": "final", "WBC": "entered-in-error"}
    assert tuple(head) == ("corrected", "复核更正")
    assert _count(bridge, "ml_result_history") == 2


def test_recall_of_an_unknown_report_is_not_found(bridge: ExposedTables) -> None:
    """Recalling a filler number never written is NotFound naming filler_no."""
    with pytest.raises(NotFound) as err:
        bridge.recall_result(CENTRAL, "JY-NONE", reason="x")
    assert err.value.field == "filler_no"


def test_too_long_value_names_the_column(bridge: ExposedTables) -> None:
    """A barcode longer than its column is refused before any write."""
    long = Requisition(**{**REQ.__dict__, "items": (
        OrderItem(**{**REQ.items[0].__dict__, "barcode": "9" * 80}),)})  # fmt: skip
    with pytest.raises(InputError) as err:
        bridge.upsert_requisition(long, pseudonym="ps")
    assert err.value.field == "ml_requisitions.barcode"
    assert _count(bridge, "ml_requisitions") == 0


def test_patient_names_only_with_the_flag(bridge_url: str) -> None:
    """expose_patient_name adds patient_name and brxm; turning it off clears and hides them."""
    ticks = _clock()
    named = ExposedTables(bridge_url, expose_patient_name=True, clock=lambda: next(ticks))
    named.upsert_requisition(REQ, pseudonym="ps-7f3a")
    with named.engine.connect() as conn:
        row = conn.execute(text("SELECT tmh, brxm FROM v_ml_songjian")).one()
    assert tuple(row) == ("2405060001", "李小明")
    named.close()
    plain = ExposedTables(bridge_url)
    with plain.engine.connect() as conn:
        names = conn.execute(text("SELECT patient_name FROM ml_requisitions")).scalars().all()
        view_cols = [c["name"] for c in inspect(conn).get_columns("v_ml_songjian")]
    assert names == [None, None]
    assert view_cols == [alias for alias, _, _ in SONGJIAN_COLUMNS]
    plain.close()


def test_create_twice_and_chinese_comments(bridge: ExposedTables) -> None:
    """create() (run by the constructor) is repeatable; columns carry Chinese comments."""
    bridge.create()
    with bridge.engine.connect() as conn:
        cols = {c["name"]: c.get("comment") for c in inspect(conn).get_columns("ml_requisitions")}
        assert conn.execute(select(func.count()).select_from(text("v_ml_songjian"))).scalar() == 0
        shown = {c["name"]: c.get("comment") for c in inspect(conn).get_columns("v_ml_songjian")}
    if bridge.engine.dialect.name == "postgresql":  # MariaDB cannot comment view columns
        assert (shown["tmh"], shown["gxsj"]) == ("条码号", "更新时间")
    assert cols["barcode"] == "条码号"
    assert cols["placer_no"] == "申请单号"
    assert "patient_name" not in cols


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "mariadb", "sqlite"])
def test_view_ddl_lists_every_column_with_its_chinese_comment(dialect: str) -> None:
    """The documented DDL selects each view column from its table column, commented in Chinese."""
    statements = view_ddl(dialect)
    create = next(s for s in statements if "CREATE" in s and "VIEW" in s)
    for alias, source, note in SONGJIAN_COLUMNS:
        assert f"{source} AS {alias}" in create
        assert f"-- {note}" in create
    assert create.rstrip().endswith("WHERE barcode IS NOT NULL")
    comments = [s for s in statements if s.startswith("COMMENT ON COLUMN")]
    assert len(comments) == (len(SONGJIAN_COLUMNS) if dialect == "postgresql" else 0)
    assert ("brxm" in "\n".join(view_ddl(dialect, expose_patient_name=True))) is True


def test_unreachable_bridge_is_an_environment_failure() -> None:
    """A bridge database that refuses connections fails with EnvironmentFailure, no password."""
    with pytest.raises(EnvironmentFailure) as err:
        ExposedTables("mysql+pymysql://medledger:bridge-pw@127.0.0.1:1/bridge")
    assert "bridge-pw" not in str(err.value.to_dict())


def test_view_ddl_for_an_unknown_dialect_is_refused() -> None:
    """An unsupported dialect is an InputError naming it."""
    with pytest.raises(InputError) as err:
        view_ddl("oracle")
    assert (err.value.field, err.value.value) == ("dialect", "oracle")
