"""The poller on real MariaDB and PostgreSQL views: increments, restarts, ties, late, bad rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from medledger.errors import InputError
from medledger.interop.model import Coded, OrderItem, Patient, Requisition, code_system
from medledger.interop.views.poller import Checkpoint, WatermarkStore
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


def test_first_poll_delivers_the_exact_models(source: Engine, ml_engine: Engine) -> None:
    """Chinese rows of a pinyin view arrive as exact Requisitions, oldest first."""
    t = create_his(source)
    insert_rows(source, t, [row(2, later(5), brxm="王芳", xb="女", brid="B000456"), row(1)])
    sink = Collect()
    report = poller_for(source, ml_engine, sink).poll_once()
    ct = Coded(code_system(MEMBER), "CT001", "胸部CT平扫")
    assert sink.batches[0][0] == [
        Requisition(
            sender=MEMBER, performer=CENTRAL,
            patient=Patient(id="B000123", name="李小明", sex="male", birth_date="1975-03-14"),
            items=(OrderItem(placer="MX000001", code=ct, kind="radiology"),),
            authored="2024-05-06T08:30:00+08:00", control_id="MX000001@2024-05-06T09:00:00",
        ),
        Requisition(
            sender=MEMBER, performer=CENTRAL,
            patient=Patient(id="B000456", name="王芳", sex="female", birth_date="1975-03-14"),
            items=(OrderItem(placer="MX000002", code=ct, kind="radiology"),),
            authored="2024-05-06T08:30:00+08:00", control_id="MX000002@2024-05-06T09:00:05",
        ),
    ]  # fmt: skip
    assert (report.rows, report.delivered, report.more) == (2, 2, False)
    assert report.checkpoint == Checkpoint("member-his-requisitions", later(5), "MX000002")


def test_next_poll_reads_only_new_rows_and_restart_resumes(
    source: Engine, ml_engine: Engine
) -> None:
    """A second poll delivers only new rows; a new poller starts from the stored watermark."""
    t = create_his(source)
    insert_rows(source, t, [row(1), row(2, later(1))])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink, lookback="60s")
    poller.poll_once()
    assert poller.poll_once().rows == 0
    insert_rows(source, t, [row(3, later(2)), row(4, later(3))])
    poller.poll_once()
    assert sink.keys == ["MX000001", "MX000002", "MX000003", "MX000004"]
    restarted = poller_for(source, ml_engine, sink, lookback="60s")
    assert restarted.poll_once().rows == 0  # the lookback window re-read nothing new
    insert_rows(source, t, [row(5, later(4))])
    restarted.poll_once()
    assert sink.keys == ["MX000001", "MX000002", "MX000003", "MX000004", "MX000005"]


def test_equal_watermarks_across_a_batch_boundary(source: Engine, ml_engine: Engine) -> None:
    """Seven rows with one watermark, batch 3: every row once, in key order, then nothing."""
    t = create_his(source)
    insert_rows(source, t, [row(n) for n in (5, 3, 7, 1, 6, 2, 4)])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink, batch=3)
    reports = [poller.poll_once() for _ in range(4)]
    assert [r.rows for r in reports] == [3, 3, 1, 0]
    assert [r.more for r in reports] == [True, True, False, False]
    assert sink.keys == [f"MX{n:06d}" for n in range(1, 8)]


def test_bad_row_is_quarantined_and_does_not_block(source: Engine, ml_engine: Engine) -> None:
    """An unknown sex code is quarantined (also in the checkpoint) and the cursor moves past."""
    t = create_his(source)
    insert_rows(source, t, [row(1), row(2, later(1), xb="X"), row(3, later(2))])
    sink = Collect()
    report = poller_for(source, ml_engine, sink).poll_once()
    assert sink.keys == ["MX000001", "MX000003"]
    (q,) = report.quarantined
    assert (q.row_key, q.column, q.field, q.value) == ("MX000002", "xb", "patient.sex", "X")
    assert sink.batches[0][1].quarantined == report.quarantined
    assert report.checkpoint is not None
    assert report.checkpoint.row_key == "MX000003"
    assert poller_for(source, ml_engine, sink).poll_once().rows == 0


def test_late_row_within_lookback_is_delivered_once(source: Engine, ml_engine: Engine) -> None:
    """A row committed late with an older watermark is caught by the window, exactly once."""
    t = create_his(source)
    insert_rows(source, t, [row(1), row(2, later(30))])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink, lookback="60s")
    poller.poll_once()
    insert_rows(source, t, [row(3, later(10))])  # committed after the cursor reached +30 s
    report = poller.poll_once()
    assert (report.rows, report.late) == (1, 1)
    assert report.checkpoint is not None
    assert report.checkpoint.watermark == later(30)
    assert poller.poll_once().rows == 0
    assert poller_for(source, ml_engine, sink, lookback="60s").poll_once().rows == 0
    assert sink.keys == ["MX000001", "MX000002", "MX000003"]


def test_late_row_outside_lookback_is_missed(source: Engine, ml_engine: Engine) -> None:
    """The documented limit: a row older than cursor − lookback is not seen."""
    t = create_his(source)
    insert_rows(source, t, [row(1, later(100))])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink, lookback="60s")
    poller.poll_once()
    insert_rows(source, t, [row(2, later(10))])
    assert poller.poll_once().rows == 0


def test_late_row_with_equal_watermark_and_lower_key(source: Engine, ml_engine: Engine) -> None:
    """lookback 0 still catches a late row of the cursor's own watermark whose key sorts lower."""
    t = create_his(source)
    insert_rows(source, t, [row(5)])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink)
    poller.poll_once()
    insert_rows(source, t, [row(2)])
    assert poller.poll_once().late == 1
    assert poller.poll_once().rows == 0
    assert sink.keys == ["MX000005", "MX000002"]


def test_sink_failure_keeps_the_cursor_and_redelivers(source: Engine, ml_engine: Engine) -> None:
    """If the sink raises, no watermark is saved and the same batch comes again (same ids)."""
    t = create_his(source)
    insert_rows(source, t, [row(1), row(2, later(1))])
    sink = Collect()
    sink.fail_next = True
    with pytest.raises(RuntimeError):
        poller_for(source, ml_engine, sink).poll_once()
    assert WatermarkStore(ml_engine).load(connector(str(source.url))) is None
    poller_for(source, ml_engine, sink).poll_once()
    assert sink.ids == ["MX000001@2024-05-06T09:00:00", "MX000002@2024-05-06T09:00:01"]


def test_updated_row_is_a_new_message(source: Engine, ml_engine: Engine) -> None:
    """A HIS update that moves gxsj (申请撤销, zt 0→9) is read again with a new control id."""
    t = create_his(source)
    insert_rows(source, t, [row(1)])
    sink = Collect()
    poller = poller_for(source, ml_engine, sink)
    poller.poll_once()
    with source.begin() as conn:
        conn.execute(update(t).where(t.c.sqmxh == "MX000001").values(zt="9", gxsj=later(60)))
    poller.poll_once()
    assert sink.ids == ["MX000001@2024-05-06T09:00:00", "MX000001@2024-05-06T09:01:00"]
    assert sink.batches[1][0][0].items[0].status == "revoked"  # type: ignore[union-attr]


def test_grouped_rows_form_one_requisition(source: Engine, ml_engine: Engine) -> None:
    """group_by sqdh: two item rows of one 申请单 arrive as one Requisition with two items."""
    t = create_his(source)
    insert_rows(source, t, [row(1, sqdh="SQ1"), row(2, sqdh="SQ1", jcxm_dm="CT002",
                                                    jcxm_mc="头颅CT平扫")])  # fmt: skip
    sink = Collect()
    poller_for(source, ml_engine, sink, group_by="sqdh").poll_once()
    (req,) = sink.batches[0][0]
    assert req.control_id == "SQ1@2024-05-06T09:00:00"
    assert [(i.placer, i.code.code) for i in req.items] == [  # type: ignore[union-attr]
        ("MX000001", "CT001"), ("MX000002", "CT002"),
    ]  # fmt: skip


@pytest.mark.parametrize("wm_type", ["integer", "date"])
def test_integer_and_date_watermarks(source: Engine, ml_engine: Engine, wm_type: str) -> None:
    """Integer and date watermark columns poll incrementally and resume after a restart."""
    t = create_his(source, watermark=wm_type)
    marks = (
        [100, 101, 102]
        if wm_type == "integer"
        else [T0.date() + timedelta(days=d) for d in range(3)]
    )
    insert_rows(source, t, [row(1, marks[0]), row(2, marks[1])])
    sink = Collect()
    lookback: Any = 5 if wm_type == "integer" else "1s"
    over = {"watermark_type": wm_type, "lookback": lookback}
    poller_for(source, ml_engine, sink, **over).poll_once()
    insert_rows(source, t, [row(3, marks[2])])
    poller_for(source, ml_engine, sink, **over).poll_once()
    assert sink.keys == ["MX000001", "MX000002", "MX000003"]
    assert sink.ids[2] == f"MX000003@{marks[2]}"  # 102, or 2024-05-08 (ISO date)


def test_rows_with_null_watermark_are_not_read(source: Engine, ml_engine: Engine) -> None:
    """A row whose watermark is NULL is invisible (documented), the others flow."""
    t = create_his(source)
    insert_rows(source, t, [row(1, None), row(2)])
    sink = Collect()
    poller_for(source, ml_engine, sink).poll_once()
    assert sink.keys == ["MX000002"]


def test_missing_column_names_the_config_key(source: Engine, ml_engine: Engine) -> None:
    """A mapped column the view lacks is an InputError naming connectors[0].columns.<field>."""
    create_his(source)
    cols = {**connector("sqlite://").columns, "requester": "sqys"}
    with pytest.raises(InputError) as err:
        poller_for(source, ml_engine, Collect(), columns=cols).poll_once()
    assert (err.value.field, err.value.value) == ("connectors[0].columns.requester", "sqys")


def test_missing_view_names_the_view(source: Engine, ml_engine: Engine) -> None:
    """A view that does not exist is an InputError naming connectors[0].view."""
    with pytest.raises(InputError) as err:
        poller_for(source, ml_engine, Collect(), view="v_not_there").poll_once()
    assert (err.value.field, err.value.value) == ("connectors[0].view", "v_not_there")


def test_watermark_type_mismatch_is_reported(source: Engine, ml_engine: Engine) -> None:
    """Declaring an integer watermark over a DATETIME column is refused, naming watermark_type."""
    t = create_his(source)
    insert_rows(source, t, [row(1)])
    with pytest.raises(InputError) as err:
        poller_for(source, ml_engine, Collect(), watermark_type="integer").poll_once()
    assert err.value.field == "connectors[0].watermark_type"


def test_column_names_match_case_insensitively(source: Engine, ml_engine: Engine) -> None:
    """Upper-case column names in the configuration find the view's lower-case columns."""
    t = create_his(source)
    insert_rows(source, t, [row(1)])
    cols = {k: v.upper() for k, v in connector("sqlite://").columns.items()}
    sink = Collect()
    poller_for(source, ml_engine, sink, columns=cols, key="SQMXH", watermark="GXSJ").poll_once()
    assert sink.keys == ["MX000001"]
