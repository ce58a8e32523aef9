"""Outbound bridge tables: requisitions for the LIS to download, results for the HIS to read.

Some systems read rather than receive: a LIS (瑞美 and the like) downloads 送检条码 information
from a table or view, and many HIS read results the same way. :class:`ExposedTables` keeps these
tables in a bridge database of the integrator's choice (PostgreSQL or MariaDB/MySQL):

- ``ml_requisitions``: one row per order item, key (sender_institution, placer_no);
- ``ml_results``: one row per report, key (sender_institution, filler_no);
- ``ml_result_items``: one row per observation, key (sender_institution, filler_no, seq);
- ``ml_result_history``: append-only, one row per distinct state of a report (JSON snapshot).

Writes are upserts by business key and idempotent: the same content written again changes
nothing, not even ``updated_at``. Nothing is ever deleted: a recall sets ``entered-in-error``
(and keeps the reason), an observation missing from a corrected report becomes
``entered-in-error``, and every state a report passed through stays in ``ml_result_history``.
Date-time columns hold naive local time (UTC+8), as hospital systems expect; ``updated_at``
lets a reader poll increments. ``item_code`` is the performer's code when ``translate`` gives
one (the terminology map), else the sender's.

Patients appear by pseudonym only. ``expose_patient_name=True`` adds ``patient_name`` (and the
view column ``brxm``) for a hospital whose LIS must print names on labels: that puts personal
health information into the bridge database, which then needs the same protection as the HIS
(等保 level 3 access control and audit). Turning the flag off again clears stored names.

The view ``v_ml_songjian`` (送检条码信息) gives the LIS pinyin column names; :func:`view_ddl`
returns its statements for PostgreSQL, MariaDB/MySQL and SQLite, each column commented in
Chinese (on PostgreSQL also as ``COMMENT ON COLUMN``; MariaDB cannot comment view columns, so
there the comments sit on the table columns and in the DDL text).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, MetaData, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from medledger.errors import EnvironmentFailure, InputError, NotFound, StorageError, WriteConflict
from medledger.interop.model import Coded, Requisition, Result, ResultItem
from medledger.interop.views.config import ExposedConfig, redact_url
from medledger.interop.views.mapping import LOCAL_TZ, parse_fhir_datetime

__all__ = ["SONGJIAN_COLUMNS", "ExposedTables", "tables", "view_ddl"]

EIE = "entered-in-error"
_DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# v_ml_songjian: (view column, table column, comment). brxm comes last so that adding it is a
# compatible CREATE OR REPLACE on PostgreSQL.
SONGJIAN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tmh", "barcode", "条码号"), ("sqdh", "placer_no", "申请单号"),
    ("sjjg", "sender_institution", "送检机构"), ("zxjg", "performer_institution", "执行机构"),
    ("brbm", "patient_pseudonym", "病人编码（假名）"), ("xmdm", "item_code", "项目代码"),
    ("xmmc", "item_name", "项目名称"), ("jclb", "kind", "检查类别"),
    ("bblx", "specimen_type", "标本类型"), ("cjsj", "collected_at", "采集时间"),
    ("sqsj", "ordered_at", "申请时间"), ("zt", "status", "状态"),
    ("gxsj", "updated_at", "更新时间"),
)  # fmt: skip
_NAME_COLUMN = ("brxm", "patient_name", "病人姓名")


S, T = sa.String, sa.Text
# Table → (comment, columns (name, type, comment), unique business key, indexed column groups).
_TABLES: dict[str, tuple[str, tuple[tuple[str, Any, str], ...], tuple[str, ...], tuple[Any, ...]]]
_TABLES = {
    "ml_requisitions": ("申请单（MedLedger）", (
        ("barcode", S(64), "条码号"), ("placer_no", S(64), "申请单号"),
        ("sender_institution", S(128), "送检机构"), ("performer_institution", S(128), "执行机构"),
        ("patient_pseudonym", S(128), "病人编码（假名）"), ("patient_name", S(64), "病人姓名"),
        ("item_code", S(64), "项目代码（执行方）"), ("item_name", S(256), "项目名称"),
        ("kind", S(16), "检查类别"), ("specimen_type", S(64), "标本类型"),
        ("collected_at", _DT, "采集时间"), ("ordered_at", _DT, "申请时间"),
        ("status", S(24), "状态"), ("updated_at", _DT, "更新时间"),
        ("fhir_ref", S(256), "FHIR 引用"),
    ), ("sender_institution", "placer_no"), (("barcode",), ("updated_at",))),
    "ml_results": ("检验检查报告（MedLedger）", (
        ("sender_institution", S(128), "执行机构"), ("filler_no", S(64), "报告单号"),
        ("placer_no", S(64), "申请单号"), ("item_code", S(64), "项目代码"),
        ("item_name", S(256), "项目名称"), ("status", S(24), "状态"),
        ("issued_at", _DT, "报告时间"), ("conclusion", T(), "结论"),
        ("result_ref", S(256), "FHIR 报告引用"), ("reason", T(), "召回/更正原因"),
        ("updated_at", _DT, "更新时间"),
    ), ("sender_institution", "filler_no"), (("updated_at",),)),
    "ml_result_items": ("报告明细（MedLedger）", (
        ("sender_institution", S(128), "执行机构"), ("filler_no", S(64), "报告单号"),
        ("seq", sa.Integer(), "序号"), ("code", S(64), "项目代码"), ("name", S(256), "项目名称"),
        ("value", S(512), "结果"), ("unit", S(64), "单位"), ("reference_range", S(128), "参考范围"),
        ("flag", S(8), "异常标志"), ("status", S(24), "状态"), ("updated_at", _DT, "更新时间"),
    ), ("sender_institution", "filler_no", "seq"), ()),
    "ml_result_history": ("报告历史（只追加）", (
        ("sender_institution", S(128), "执行机构"), ("filler_no", S(64), "报告单号"),
        ("status", S(24), "状态"), ("reason", T(), "召回/更正原因"),
        ("content_hash", S(64), "内容摘要（SHA-256）"), ("snapshot", T(), "报告快照（JSON）"),
        ("recorded_at", _DT, "记录时间"),
    ), (), (("sender_institution", "filler_no"),)),
}  # fmt: skip
_NULLABLE = frozenset(
    {"barcode", "performer_institution", "patient_name", "item_name", "specimen_type",
     "collected_at", "fhir_ref", "placer_no", "conclusion", "result_ref", "reason", "name",
     "value", "unit", "reference_range", "flag"}
)  # fmt: skip


def tables(expose_patient_name: bool = False) -> MetaData:
    """Return the bridge tables' metadata (``patient_name`` only when names are exposed)."""
    md = MetaData()
    for name, (comment, specs, key, indexes) in _TABLES.items():
        nullable = _NULLABLE - {"placer_no"} if name == "ml_requisitions" else _NULLABLE
        cols = [
            sa.Column(n, t, nullable=n in nullable, comment=c)
            for n, t, c in specs
            if n != "patient_name" or expose_patient_name
        ]
        extra: list[Any] = [sa.UniqueConstraint(*key, name=f"ux_{name}_key")] if key else []
        extra += [sa.Index(f"ix_{name}_{'_'.join(i)}", *i) for i in indexes]
        pk = sa.Column("id", _ID, primary_key=True, autoincrement=True)
        Table(name, md, pk, *cols, *extra, comment=comment, mysql_charset="utf8mb4")
    return md


def view_ddl(dialect: str, *, expose_patient_name: bool = False) -> list[str]:
    """Return the statements that (re)create ``v_ml_songjian`` on ``postgresql``, ``mysql``
    (MariaDB too) or ``sqlite``: the LIS's view of requisitions that carry a barcode."""
    engines = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
    if dialect not in engines:
        raise InputError(
            "no view DDL for this database", field="dialect", value=dialect,
            expected="postgresql, mysql, mariadb or sqlite",
        )  # fmt: skip
    made = {"postgresql": postgresql.dialect, "mysql": mysql.dialect, "sqlite": sqlite.dialect}
    q = made[engines[dialect]]().identifier_preparer.quote
    cols = SONGJIAN_COLUMNS + ((_NAME_COLUMN,) if expose_patient_name else ())
    body = "\n".join(
        f"  {q(src)} AS {q(alias)}{',' if i < len(cols) - 1 else ''}  -- {note}"
        for i, (alias, src, note) in enumerate(cols)
    )
    select = f"SELECT\n{body}\nFROM {q('ml_requisitions')}\nWHERE {q('barcode')} IS NOT NULL"
    view = q("v_ml_songjian")
    if engines[dialect] == "sqlite":
        return [f"DROP VIEW IF EXISTS {view}", f"CREATE VIEW {view} AS\n{select}"]
    out = [f"CREATE OR REPLACE VIEW {view} AS\n{select}"]
    if engines[dialect] == "postgresql":
        out.append(f"COMMENT ON VIEW {view} IS '送检条码信息（MedLedger）'")
        out += [f"COMMENT ON COLUMN {view}.{q(alias)} IS '{note}'" for alias, _, note in cols]
    return out


class ExposedTables:
    """The bridge database: create its tables and view, upsert requisitions and results."""

    def __init__(
        self, url: str, *, expose_patient_name: bool = False, create: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:  # fmt: skip
        """Open the bridge database and, unless ``create=False``, run :meth:`create`."""
        try:
            parsed = sa.make_url(url)
            if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
            self._engine = sa.create_engine(parsed, pool_pre_ping=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise InputError(
                f"cannot use the bridge database URL ({type(exc).__name__})", field="exposed.url",
                value=redact_url(url), expected="a SQLAlchemy URL with an installed driver",
            ) from exc  # fmt: skip
        self._names, self._md = expose_patient_name, tables(expose_patient_name)
        self._clock = clock or (lambda: datetime.now(UTC))
        if create:
            try:
                self.create()
            except BaseException:
                self._engine.dispose()
                raise

    @classmethod
    def from_config(cls, config: ExposedConfig) -> ExposedTables:
        """Open the bridge database an ``exposed:`` configuration names."""
        return cls(config.url, expose_patient_name=config.expose_patient_name)

    @property
    def engine(self) -> Engine:
        """The bridge database engine (for readers and tests)."""
        return self._engine

    def close(self) -> None:
        """Release the bridge database's connections."""
        self._engine.dispose()

    def create(self) -> None:
        """Create the tables (if absent) and (re)create ``v_ml_songjian``; add or clear
        ``patient_name`` to follow ``expose_patient_name``."""
        t = self._md.tables["ml_requisitions"]
        dialect = self._engine.dialect.name
        with self._write() as conn:
            self._md.create_all(conn, checkfirst=True)
            insp = sa.inspect(conn)
            has_name = "patient_name" in {c["name"] for c in insp.get_columns(t.name)}
            q = conn.dialect.identifier_preparer.quote
            if self._names and not has_name:
                spec = sa.schema.CreateColumn(t.c.patient_name).compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {q(t.name)} ADD COLUMN {spec}"))
                if dialect == "postgresql":
                    note = f"COMMENT ON COLUMN {q(t.name)}.patient_name IS '病人姓名'"
                    conn.execute(sa.text(note))
            if not self._names and has_name:
                named: sa.ColumnClause[Any] = sa.column("patient_name")
                conn.execute(sa.update(sa.table(t.name, named)).values(patient_name=None))
            views = insp.get_view_names()
            shown = (
                [c["name"] for c in insp.get_columns("v_ml_songjian")]
                if "v_ml_songjian" in views
                else []
            )
            if dialect == "postgresql" and "brxm" in shown and not self._names:
                conn.execute(sa.text("DROP VIEW v_ml_songjian"))  # OR REPLACE cannot drop columns
            for statement in view_ddl(dialect, expose_patient_name=self._names):
                conn.execute(sa.text(statement))

    def upsert_requisition(
        self,
        req: Requisition,
        *,
        pseudonym: str,
        translate: Callable[[Coded], Coded | None] | None = None,
        fhir_refs: Mapping[str, str] | None = None,
    ) -> int:
        """Write one row per item of ``req`` (``fhir_refs`` maps placer → ServiceRequest ref);
        return how many rows were inserted or changed."""
        t = self._md.tables["ml_requisitions"]
        rows = []
        for item in req.items:
            code = (translate(item.code) if translate else None) or item.code
            specimen = item.specimen_type
            row = {
                "barcode": item.barcode, "placer_no": item.placer, "sender_institution": req.sender,
                "performer_institution": req.performer, "patient_pseudonym": pseudonym,
                "item_code": code.code, "item_name": code.display or item.code.display,
                "kind": item.kind,
                "specimen_type": specimen and (specimen.display or specimen.code),
                "collected_at": _local(item.collected, "collected"),
                "ordered_at": _local(req.authored, "authored"), "status": item.status,
                "fhir_ref": (fhir_refs or {}).get(item.placer),
            }  # fmt: skip
            if self._names:
                row["patient_name"] = req.patient.name
            rows.append(_checked(t, row))
        with self._write() as conn:
            return sum(self._upsert(conn, t, ("sender_institution", "placer_no"), r) for r in rows)

    def recall_requisition(self, sender: str, placer: str) -> bool:
        """Mark one item ``entered-in-error``; return whether it changed."""
        t = self._md.tables["ml_requisitions"]
        key = {"sender_institution": sender, "placer_no": placer}
        with self._write() as conn:
            row = self._current(conn, t, key)
            if row is None:
                raise NotFound("no such requisition item", field="placer_no", value=placer,
                               expected="a placer number already written")  # fmt: skip
            return self._upsert(conn, t, tuple(key), {**row, "status": EIE})

    def upsert_result(self, result: Result, *, result_ref: str | None = None) -> bool:
        """Write a report and its observations; return whether anything changed. Observations
        no longer in the report become ``entered-in-error``; every new state goes to history."""
        key = {"sender_institution": result.sender, "filler_no": result.filler}
        head = {
            **key, "placer_no": result.placer, "item_code": result.code.code,
            "item_name": result.code.display, "status": result.status,
            "issued_at": _local(result.issued, "issued"), "conclusion": result.conclusion,
            "result_ref": result_ref, "reason": result.reason,
        }  # fmt: skip
        items = [{**key, **_item(i + 1, it)} for i, it in enumerate(result.items)]
        return self._write_result(key, head, items, result.reason)

    def recall_result(self, sender: str, filler: str, *, reason: str) -> bool:
        """Recall a report (报告召回): it and its observations become ``entered-in-error``."""
        key = {"sender_institution": sender, "filler_no": filler}
        with self._write() as conn:
            head = self._current(conn, self._md.tables["ml_results"], key)
        if head is None:
            raise NotFound("no such report", field="filler_no", value=filler,
                           expected="a filler number already written")  # fmt: skip
        return self._write_result(key, {**head, "status": EIE, "reason": reason}, None, reason)

    def _write_result(
        self, key: dict[str, Any], head: dict[str, Any], items: list[dict[str, Any]] | None,
        reason: str | None,
    ) -> bool:  # fmt: skip
        results, lines = self._md.tables["ml_results"], self._md.tables["ml_result_items"]
        history, head = self._md.tables["ml_result_history"], _checked(results, head)
        mine = sa.and_(*(lines.c[k] == v for k, v in key.items()))
        with self._write() as conn:
            changed = self._upsert(conn, results, tuple(key), head)
            old = {r["seq"]: dict(r) for r in conn.execute(sa.select(lines).where(mine)).mappings()}
            news = {i["seq"]: _checked(lines, i) for i in items or ()}
            for seq, row in old.items():  # a recall or a shorter correction withdraws them
                if seq not in news or items is None:
                    news[seq] = {k: v for k, v in row.items() if k not in ("id", "updated_at")}
                    news[seq]["status"] = EIE
            for row in news.values():
                changed |= self._upsert(conn, lines, (*key, "seq"), row)
            if not changed:
                return False
            rows = conn.execute(sa.select(lines).where(mine).order_by(lines.c.seq)).mappings()
            drop = ("id", "updated_at", "sender_institution", "filler_no")
            snap = {**head, "items": [{k: v for k, v in r.items() if k not in drop} for r in rows]}
            text = json.dumps(snap, ensure_ascii=False, sort_keys=True, default=str)
            digest = hashlib.sha256(text.encode()).hexdigest()
            ours = (history.c[k] == v for k, v in key.items())
            newest = sa.select(history.c.content_hash).where(*ours).order_by(history.c.id.desc())
            last = conn.execute(newest.limit(1)).scalar()
            if last != digest:
                conn.execute(sa.insert(history).values(
                    **key, status=head["status"], reason=reason, content_hash=digest,
                    snapshot=text, recorded_at=self._now(),
                ))  # fmt: skip
        return True

    def _upsert(
        self, conn: Connection, t: Table, keys: tuple[str, ...], row: dict[str, Any]
    ) -> bool:
        current = self._current(conn, t, {k: row[k] for k in keys}, lock=True)
        if current is not None and all(current.get(k) == v for k, v in row.items()):
            return False
        values = {**row, "updated_at": self._now()}
        if current is None:
            conn.execute(sa.insert(t).values(values))
        else:
            conn.execute(sa.update(t).where(*(t.c[k] == row[k] for k in keys)).values(values))
        return True

    def _current(
        self, conn: Connection, t: Table, key: Mapping[str, Any], *, lock: bool = False
    ) -> dict[str, Any] | None:
        query = sa.select(t).where(*(t.c[k] == v for k, v in key.items()))
        found = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if found is None:
            return None
        return {k: v for k, v in found.items() if k not in ("id", "updated_at")}

    def _now(self) -> datetime:
        return self._clock().astimezone(LOCAL_TZ).replace(tzinfo=None)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise _translated(exc) from exc


def _translated(exc: sa_exc.SQLAlchemyError) -> Exception:
    """A bridge database error as ours: a lost race or deadlock is a WriteConflict (retry)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or (getattr(orig, "args", None) or [None])[0]
    if isinstance(exc, sa_exc.IntegrityError) or code in ("40001", "40P01", 1205, 1213):
        return WriteConflict("a concurrent writer got there first; retry", error=str(code))
    if isinstance(exc, sa_exc.OperationalError):
        return EnvironmentFailure(
            "the bridge database cannot be reached", error=type(orig).__name__
        )
    return StorageError("the bridge database refused a write", error=type(exc).__name__)


def _item(seq: int, it: ResultItem) -> dict[str, Any]:
    v = it.value
    text = None if v is None else v.number or v.text or (v.code and (v.code.display or v.code.code))
    return {
        "seq": seq, "code": it.code.code, "name": it.code.display, "value": text,
        "unit": v.unit if v else None, "reference_range": it.reference_range,
        "flag": it.interpretation, "status": it.status,
    }  # fmt: skip


def _local(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    return parse_fhir_datetime(text, field).astimezone(LOCAL_TZ).replace(tzinfo=None)


def _checked(t: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Refuse a value longer than its column (MariaDB would fail the whole transaction)."""
    for name, value in row.items():
        length = getattr(t.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise InputError(
                f"value too long for {t.name}.{name}", field=f"{t.name}.{name}",
                value=value[:40] + "…", expected=f"at most {length} characters",
            )  # fmt: skip
    return row
