"""The poller's edges on real servers: outages, the run loop, the stored cursor, results views."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    select,
    text,
)

from medledger.errors import EnvironmentFailure, InputError, MedLedgerError
from medledger.interop.model import Result, Value
from medledger.interop.views.config import parse_config
from medledger.interop.views.poller import ViewPoller, WatermarkStore
from medledger.store.schema_interop import interop_watermarks
from tests.access._admin_fixtures import migrated_engine
from tests.interop.views._his import (
    CENTRAL,
    MEMBER,
    T0,
    Collect,
    connector,
    create_his,
    insert_rows,
    later,
    poller_for,
    row,
)


def test_unreachable_source_is_an_environment_failure(ml_engine: Engine) -> None:
    """A source that refuses connections raises EnvironmentFailure without the password."""
    url = "mysql+pymysql://his_reader:pw-never-shown@127.0.0.1:1/his"
    poller = ViewPoller(connector(url), ml_engine, Collect())
    with pytest.raises(EnvironmentFailure) as err:
        poller.poll_once()
    assert "pw-never-shown" not in str(err.value.to_dict())
    assert err.value.details["url"] == "mysql+pymysql://his_reader:***@127.0.0.1:1/his"
    poller.close()


def test_run_loop_polls_until_stopped_and_reports_outages(ml_engine: Engine) -> None:
    """run() retries after an outage (reported to on_error) and returns once stopped."""
    poller = ViewPoller(connector("mysql+pymysql://x@127.0.0.1:1/his", interval="10ms"),
                        ml_engine, Collect())  # fmt: skip
    stop, errors = threading.Event(), []

    def on_error(exc: MedLedgerError) -> None:
        errors.append(exc)
        if len(errors) == 2:
            stop.set()

    worker = threading.Thread(target=poller.run, args=(stop,), kwargs={"on_error": on_error})
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert [type(e) for e in errors] == [EnvironmentFailure, EnvironmentFailure]
    poller.close()


def test_run_loop_drains_full_batches(source: Engine, ml_engine: Engine) -> None:
    """run() polls again at once while batches are full and delivers everything."""
    t = create_his(source)
    insert_rows(source, t, [row(n, later(n)) for n in range(1, 8)])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink, batch=2, interval="20ms")
    stop = threading.Event()
    worker = threading.Thread(target=poller.run, args=(stop,))
    worker.start()
    for _ in range(500):
        if len(sink.keys) == 7:
            break
        threading.Event().wait(0.01)
    stop.set()
    worker.join(timeout=30)
    assert sink.keys == [f"MX{n:06d}" for n in range(1, 8)]


def test_stored_cursor_on_both_medledger_backends(
    db_url: str | None, tmp_path: Path, mariadb_url: str
) -> None:
    """The watermark and the seen window persist in interop_watermarks on SQLite and PostgreSQL."""
    source = create_engine(mariadb_url)
    t = create_his(source)
    insert_rows(source, t, [row(1), row(2)])
    with migrated_engine(db_url, tmp_path) as ml:
        sink = Collect()
        ViewPoller(connector(mariadb_url, lookback="60s"), ml, sink, source=source).poll_once()
        with ml.connect() as conn:
            rows = dict(
                conn.execute(
                    select(interop_watermarks.c.connector, interop_watermarks.c.watermark)
                ).all()
            )
        assert rows["member-his-requisitions"] == '"2024-05-06T09:00:00"'
        assert '"MX000001"' in rows["member-his-requisitions#seen"]
        cursor = WatermarkStore(ml).load(connector(mariadb_url, lookback="60s"))
        assert cursor is not None
        assert cursor.row_key == "MX000002"
        assert cursor.seen == {(T0, "MX000001"), (T0, "MX000002")}
        with pytest.raises(InputError) as err:
            WatermarkStore(ml).load(connector(mariadb_url, watermark_type="integer"))
        assert err.value.field == "connectors[0].watermark_type"
    source.dispose()


def test_seen_window_overflow_moves_the_floor(source: Engine, ml_engine: Engine) -> None:
    """Past max_seen pairs the oldest watermarks are forgotten whole, never re-delivered."""
    t = create_his(source)
    insert_rows(source, t, [row(n, later(n // 2)) for n in range(1, 9)])
    sink = Collect()
    c = connector(str(source.url), lookback="60s")
    poller = ViewPoller(c, ml_engine, sink, source=source, max_seen=3)
    poller.poll_once()
    cursor = WatermarkStore(ml_engine).load(c)
    assert cursor is not None
    assert len(cursor.seen) <= 3
    assert cursor.floor is not None
    assert poller.poll_once().rows == 0
    assert ViewPoller(c, ml_engine, sink, source=source, max_seen=3).poll_once().rows == 0
    assert sorted(sink.keys) == [f"MX{n:06d}" for n in range(1, 9)]


def test_schema_qualified_view(mariadb_url: str, ml_engine: Engine) -> None:
    """view: <database>.<view> is read through SQLAlchemy's quoting of both parts."""
    source = create_engine(mariadb_url)
    t = create_his(source)
    insert_rows(source, t, [row(1)])
    schema = source.url.database
    sink = Collect()
    ViewPoller(connector(mariadb_url, view=f"{schema}.v_jc_sqd"), ml_engine, sink,
               source=source).poll_once()  # fmt: skip
    assert sink.keys == ["MX000001"]
    with source.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM v_jc_sqd")).scalar() == 1
    source.dispose()


def test_source_url_without_an_installed_driver_is_an_input_error(ml_engine: Engine) -> None:
    """A URL naming a driver that is not installed is refused at construction, redacted."""
    with pytest.raises(InputError) as err:
        ViewPoller(connector("mssql+nosuchdriver://u:pw-hidden@h/his"), ml_engine, Collect())
    assert err.value.field == "connectors[0].url"
    assert "pw-hidden" not in str(err.value.to_dict())


def test_results_view_groups_observations_by_report(source: Engine, ml_engine: Engine) -> None:
    """A LIS 报告明细 view (NUMERIC results, 审核时间 watermark): one Result per 报告单."""
    lis = Table(
        "jybg_mx", MetaData(),
        Column("mxid", Integer, primary_key=True), Column("bgdh", String(32)),
        Column("sqdh", String(32)), Column("brid", String(32)), Column("zh_dm", String(16)),
        Column("zh_mc", String(64)), Column("bgzt", String(2)), Column("shsj", DateTime()),
        Column("xm_dm", String(16)), Column("xm_mc", String(64)), Column("jg", Numeric(10, 2)),
        Column("dw", String(16)), Column("ckfw", String(32)), Column("ycbz", String(4)),
    )  # fmt: skip
    with source.begin() as conn:
        lis.create(conn)
        conn.execute(text("CREATE VIEW v_jybg_mx AS SELECT * FROM jybg_mx"))
    head = {"bgdh": "JY001", "sqdh": "MX000001", "brid": "B000123", "zh_dm": "BLOOD",
            "zh_mc": "血常规", "bgzt": "3", "shsj": later(600)}  # fmt: skip
    insert_rows(source, lis, [
        {**head, "mxid": 1, "xm_dm": "HGB", "xm_mc": "血红蛋白", "jg": Decimal("135.00"),
         "dw": "g/L", "ckfw": "115-150", "ycbz": None},
        {**head, "mxid": 2, "xm_dm": "WBC", "xm_mc": "白细胞计数", "jg": Decimal("11.20"),
         "dw": "10^9/L", "ckfw": "3.5-9.5", "ycbz": "H"},
    ])  # fmt: skip
    doc = {
        "name": "central-lis-results", "kind": "results", "institution": CENTRAL,
        "placer_institution": MEMBER, "url": str(source.url), "view": "v_jybg_mx",
        "watermark": "shsj", "key": "mxid", "group_by": "bgdh",
        "columns": {"filler": "bgdh", "placer": "sqdh", "patient.id": "brid", "code": "zh_dm",
                    "display": "zh_mc", "status": "bgzt", "issued": "shsj", "obs.code": "xm_dm",
                    "obs.display": "xm_mc", "obs.value": "jg", "obs.unit": "dw",
                    "obs.reference_range": "ckfw", "obs.flag": "ycbz"},
        "values": {"status": {"3": "final"}}, "defaults": {"kind": "lab"},
    }  # fmt: skip
    c = parse_config({"connectors": [doc]}).connectors[0]
    sink = Collect()
    ViewPoller(c, ml_engine, sink, source=source).poll_once()
    (result,) = sink.batches[0][0]
    assert isinstance(result, Result)
    assert (result.filler, result.placer, result.status, result.issued) == (
        "JY001", "MX000001", "final", "2024-05-06T09:10:00+08:00",
    )  # fmt: skip
    assert [(i.code.code, i.value, i.interpretation) for i in result.items] == [
        ("HGB", Value("quantity", number="135.00", unit="g/L"), None),
        ("WBC", Value("quantity", number="11.20", unit="10^9/L"), "H"),
    ]
    assert result.control_id == "JY001@2024-05-06T09:10:00"
