"""A HIS-like source schema for the view tests: pinyin columns, Chinese values, a view over it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    insert,
    text,
)

from medledger.interop.views.config import ConnectorConfig, parse_config
from medledger.interop.views.mapping import Model
from medledger.interop.views.poller import Checkpoint, ViewPoller

T0 = datetime(2024, 5, 6, 9, 0, 0)  # naive: 更新时间 as the HIS stores it (UTC+8)
MEMBER, CENTRAL = "hosp-member-east", "hosp-central"


def his_table(name: str = "jc_sqd", *, watermark: str = "datetime") -> Table:
    """The 检查申请明细 table: one row per requested item, ``sqmxh`` unique."""
    wm_type: Any = {"datetime": DateTime(), "date": Date(), "integer": BigInteger()}[watermark]
    return Table(
        name,
        MetaData(),
        Column("sqmxh", String(32), primary_key=True, comment="申请明细号"),
        Column("sqdh", String(32), nullable=False, comment="申请单号"),
        Column("brid", String(32), comment="病人ID"),
        Column("brxm", String(64), comment="病人姓名"),
        Column("xb", String(4), comment="性别"),
        Column("csrq", String(16), comment="出生日期"),
        Column("jcxm_dm", String(32), comment="检查项目代码"),
        Column("jcxm_mc", String(128), comment="检查项目名称"),
        Column("jclb", String(16), comment="检查类别"),
        Column("sqsj", DateTime(), comment="申请时间"),
        Column("zt", String(4), comment="状态"),
        Column("gxsj", wm_type, nullable=True, comment="更新时间"),
        mysql_charset="utf8mb4",
    )


def create_his(engine: Engine, table: str = "jc_sqd", view: str = "v_jc_sqd", **kw: Any) -> Table:
    """Create the table and a view over it (the HIS exposes views, not tables)."""
    t = his_table(table, **kw)
    with engine.begin() as conn:
        t.create(conn)
        q = conn.dialect.identifier_preparer.quote
        conn.execute(text(f"CREATE VIEW {q(view)} AS SELECT * FROM {q(table)}"))
    return t


def row(n: int, gxsj: Any = T0, **over: Any) -> dict[str, Any]:
    """A realistic row: a chest CT for 李小明 (fictitious), numbered ``n``."""
    base: dict[str, Any] = {
        "sqmxh": f"MX{n:06d}",
        "sqdh": f"SQ{n:06d}",
        "brid": "B000123",
        "brxm": "李小明",
        "xb": "1",
        "csrq": "1975-03-14",
        "jcxm_dm": "CT001",
        "jcxm_mc": "胸部CT平扫",
        "jclb": "放射",
        "sqsj": datetime(2024, 5, 6, 8, 30),
        "zt": "0",
        "gxsj": gxsj,
    }
    base.update(over)
    return base


def insert_rows(engine: Engine, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert rows in one transaction."""
    with engine.begin() as conn:
        conn.execute(insert(table), [dict(r) for r in rows])


def connector(url: str, view: str = "v_jc_sqd", **over: Any) -> ConnectorConfig:
    """The member HIS requisitions connector of the brief, pointed at ``url``."""
    doc: dict[str, Any] = {
        "name": "member-his-requisitions",
        "kind": "requisitions",
        "institution": MEMBER,
        "performer": CENTRAL,
        "url": url,
        "view": view,
        "watermark": "gxsj",
        "key": "sqmxh",
        "batch": 500,
        "interval": "5s",
        "columns": {
            "placer": "sqmxh",
            "patient.id": "brid",
            "patient.name": "brxm",
            "patient.sex": "xb",
            "patient.birth_date": "csrq",
            "item.code": "jcxm_dm",
            "item.display": "jcxm_mc",
            "item.kind": "jclb",
            "authored": "sqsj",
            "status": "zt",
        },
        "values": {
            "patient.sex": {"1": "male", "2": "female", "男": "male", "女": "female"},
            "item.kind": {"放射": "radiology", "超声": "ultrasound", "检验": "lab"},
            "status": {"0": "active", "9": "revoked"},
        },
    }
    doc.update(over)
    return parse_config({"connectors": [doc]}).connectors[0]


def later(seconds: int) -> datetime:
    """``T0`` plus whole seconds (MariaDB DATETIME keeps no fraction)."""
    return T0 + timedelta(seconds=seconds)


class Collect:
    """A sink that keeps every batch, and can be told to fail once (a crash before commit)."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Model], Checkpoint]] = []
        self.fail_next = False

    def __call__(self, models: Sequence[Model], checkpoint: Checkpoint) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("store unavailable")
        self.batches.append((list(models), checkpoint))

    @property
    def ids(self) -> list[str]:
        """The control ids delivered, in order (row key @ watermark)."""
        return [str(m.control_id) for models, _ in self.batches for m in models]

    @property
    def keys(self) -> list[str]:
        """The row keys delivered, in order."""
        return [i.split("@")[0] for i in self.ids]


def poller_for(source: Engine, ml: Engine, sink: Collect, **over: Any) -> ViewPoller:
    """A poller of the test view on ``source``, storing its cursor in ``ml``."""
    return ViewPoller(connector(str(source.url), **over), ml, sink, source=source)
