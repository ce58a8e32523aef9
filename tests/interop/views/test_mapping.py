"""Row → model mapping: exact objects, value maps, dates, grouping, and quarantine reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError
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
from medledger.interop.views.config import parse_config
from medledger.interop.views.mapping import (
    LOCAL_TZ,
    RowMapper,
    fhir_date,
    fhir_datetime,
    parse_fhir_datetime,
)
from tests.interop.views._his import CENTRAL, MEMBER, T0, connector, row

DICT = code_system(MEMBER)
URL = "mysql+pymysql://his_reader@127.0.0.1:3306/his"
LI = Patient(id="B000123", name="李小明", sex="male", birth_date="1975-03-14")


def _item(n: int, **over: Any) -> OrderItem:
    return OrderItem(
        placer=f"MX{n:06d}", code=Coded(DICT, "CT001", "胸部CT平扫"), kind="radiology", **over
    )


def test_one_row_becomes_the_exact_requisition() -> None:
    """A HIS row maps field by field, with value maps, UTC+8 times and a versioned control id."""
    models, bad = RowMapper(connector(URL)).map_rows([row(1)])
    assert bad == []
    assert models == [
        Requisition(
            sender=MEMBER,
            performer=CENTRAL,
            patient=LI,
            items=(_item(1),),
            authored="2024-05-06T08:30:00+08:00",
            control_id="MX000001@2024-05-06T09:00:00",
        )
    ]


def test_value_maps_accept_model_values_and_chinese_codes() -> None:
    """男/女/1/2 map through values; a raw value that already is a model value passes."""
    rows = [row(1, xb="女"), row(2, xb="male", zt="9"), row(3, xb=2)]
    models, bad = RowMapper(connector(URL)).map_rows(rows)
    assert bad == []
    assert [m.patient.sex for m in models] == ["female", "male", "female"]  # type: ignore[union-attr]
    assert models[1].items[0].status == "revoked"  # type: ignore[union-attr]


def test_unmapped_enum_value_is_quarantined_and_the_rest_go_on() -> None:
    """An unknown sex code quarantines that row only, naming column, field, value and why."""
    models, bad = RowMapper(connector(URL)).map_rows([row(1), row(2, xb="3"), row(3)])
    assert [m.control_id for m in models] == [
        "MX000001@2024-05-06T09:00:00", "MX000003@2024-05-06T09:00:00",
    ]  # fmt: skip
    assert len(bad) == 1
    q = bad[0]
    assert (q.connector, q.row_key, q.column, q.field, q.value) == (
        "member-his-requisitions", "MX000002", "xb", "patient.sex", "3",
    )  # fmt: skip
    assert "value map" in q.reason
    assert "1" in str(q.expected)
    assert q.to_dict()["row_key"] == "MX000002"


@pytest.mark.parametrize(
    ("over", "field", "column"),
    [
        ({"csrq": "1975-02-30"}, "patient.birth_date", "csrq"),
        ({"sqsj": "yesterday"}, "authored", "sqsj"),
        ({"brid": "  "}, "patient.id", "brid"),
        ({"jcxm_dm": None}, "item.code", "jcxm_dm"),
        ({"jclb": "核医学"}, "item.kind", "jclb"),
        ({"brxm": b"\xff\xfe"}, "patient.name", "brxm"),
    ],
)
def test_bad_values_are_quarantined_with_field_and_column(
    over: dict[str, Any], field: str, column: str
) -> None:
    """Impossible dates, empty required fields, unknown kinds and bad bytes are quarantined."""
    models, bad = RowMapper(connector(URL)).map_rows([row(1, **over)])
    assert models == []
    assert (bad[0].field, bad[0].column, bad[0].row_key) == (field, column, "MX000001")
    assert bad[0].expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (datetime(2024, 5, 6, 8, 30), "2024-05-06T08:30:00+08:00"),
        (datetime(2024, 5, 6, 8, 30, 0, 250000), "2024-05-06T08:30:00.250000+08:00"),
        (datetime(2024, 5, 6, 0, 30, tzinfo=UTC), "2024-05-06T00:30:00+00:00"),
        (date(2024, 5, 6), "2024-05-06"),
        ("2024-05-06 08:30:00", "2024-05-06T08:30:00+08:00"),
        ("20240506083000", "2024-05-06T08:30:00+08:00"),
        ("2024/05/06 08:30", "2024-05-06T08:30:00+08:00"),
        ("2024-05-06T08:30:00+08:00", "2024-05-06T08:30:00+08:00"),
        ("20240506", "2024-05-06"),
        (" 2024-05-06 ", "2024-05-06"),
    ],
)  # fmt: skip
def test_datetime_formats_become_fhir_datetimes(raw: Any, expected: str) -> None:
    """HIS date-time spellings become FHIR dateTimes; naive ones are read as UTC+8."""
    assert fhir_datetime(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (date(1975, 3, 14), "1975-03-14"), (datetime(1975, 3, 14, 0, 0), "1975-03-14"),
        ("19750314", "1975-03-14"), ("1975/03/14", "1975-03-14"), ("1975-03", "1975-03"),
        ("1975", "1975"), (19750314, "1975-03-14"),
    ],
)  # fmt: skip
def test_birth_date_formats(raw: Any, expected: str) -> None:
    """Birth dates in every common HIS spelling become FHIR dates (partial dates kept)."""
    assert fhir_date(raw) == expected


def test_defaults_fill_unmapped_and_blank_columns() -> None:
    """A default applies when the field has no column, and when its column is NULL or blank."""
    cols = {k: v for k, v in connector(URL).columns.items() if k != "item.kind"}
    c = connector(URL, columns={**cols, "item.priority": "jjbz"},
                  defaults={"item.kind": "ultrasound", "item.priority": "routine"})  # fmt: skip
    models, bad = RowMapper(c).map_rows([row(1, jjbz=None), row(2, jjbz="stat")])
    assert bad == []
    items = [m.items[0] for m in models]  # type: ignore[union-attr]
    assert [(i.kind, i.priority) for i in items] == [
        ("ultrasound", "routine"),
        ("ultrasound", "stat"),
    ]


def test_group_by_joins_items_of_one_requisition() -> None:
    """Rows sharing sqdh become one Requisition with one item each, in row order."""
    c = connector(URL, group_by="sqdh")
    rows = [
        row(1, sqdh="SQ1"),
        row(2, sqdh="SQ1", jcxm_dm="US010", jcxm_mc="腹部彩超", jclb="超声",
            gxsj=T0 + timedelta(seconds=1)),
        row(3, sqdh="SQ2", brid="B000456", brxm="王芳", xb="2"),
    ]  # fmt: skip
    models, bad = RowMapper(c).map_rows(rows)
    assert bad == []
    first, second = models
    assert first.control_id == "SQ1@2024-05-06T09:00:01"
    assert first.items == (  # type: ignore[union-attr]
        _item(1),
        OrderItem(placer="MX000002", code=Coded(DICT, "US010", "腹部彩超"), kind="ultrasound"),
    )  # fmt: skip
    assert second.patient == Patient(
        id="B000456", name="王芳", sex="female", birth_date="1975-03-14"
    )


def test_group_rows_naming_another_patient_or_the_same_placer_are_quarantined() -> None:
    """In a group, a row with a different patient id, or a repeated placer, is quarantined."""
    c = connector(URL, group_by="sqdh", columns={**connector(URL).columns, "placer": "sqdh"})
    rows = [row(1, sqdh="SQ1"), row(2, sqdh="SQ1", brid="B999"), row(3, sqdh="SQ1")]
    models, bad = RowMapper(c).map_rows(rows)
    assert len(models) == 1
    assert len(models[0].items) == 1
    assert [(q.row_key, q.field) for q in bad] == [
        ("MX000002", "patient.id"),
        ("MX000003", "placer"),
    ]
    assert bad[0].value is None  # the other patient's id is not echoed


def _results_connector() -> Any:
    doc = {
        "name": "central-lis-results", "kind": "results", "institution": CENTRAL,
        "placer_institution": MEMBER, "url": URL, "view": "v_jybg_mx", "watermark": "shsj",
        "key": "mxid", "group_by": "bgdh",
        "columns": {"filler": "bgdh", "placer": "sqdh", "patient.id": "brid", "code": "zh_dm",
                    "display": "zh_mc", "status": "bgzt", "issued": "shsj", "obs.code": "xm_dm",
                    "obs.display": "xm_mc", "obs.value": "jg", "obs.unit": "dw",
                    "obs.reference_range": "ckfw", "obs.flag": "ycbz"},
        "values": {"status": {"3": "final", "9": "entered-in-error"}},
        "defaults": {"kind": "lab"},
    }  # fmt: skip
    return parse_config({"connectors": [doc]}).connectors[0]


def test_result_rows_group_into_one_report_with_observations() -> None:
    """LIS rows of one 报告单 become one Result; numbers are quantities, the rest text."""
    base = {"bgdh": "JY20240506001", "sqdh": "MX000001", "brid": "B000123", "zh_dm": "BLOOD",
            "zh_mc": "血常规", "bgzt": "3", "shsj": datetime(2024, 5, 6, 10, 15)}  # fmt: skip
    rows = [
        {**base, "mxid": 1, "xm_dm": "HGB", "xm_mc": "血红蛋白", "jg": Decimal("135"),
         "dw": "g/L", "ckfw": "115-150", "ycbz": None},
        {**base, "mxid": 2, "xm_dm": "WBC", "xm_mc": "白细胞计数", "jg": "11.20", "dw": "10^9/L",
         "ckfw": "3.5-9.5", "ycbz": "H"},
        {**base, "mxid": 3, "xm_dm": "ABO", "xm_mc": "血型", "jg": "A型", "dw": None,
         "ckfw": None, "ycbz": None},
    ]  # fmt: skip
    models, bad = RowMapper(_results_connector()).map_rows(rows)
    assert bad == []
    lis = code_system(CENTRAL)
    assert models == [
        Result(
            sender=CENTRAL, placer_institution=MEMBER, patient=Patient(id="B000123"),
            placer="MX000001", filler="JY20240506001", code=Coded(lis, "BLOOD", "血常规"),
            kind="lab", status="final", issued="2024-05-06T10:15:00+08:00",
            control_id="JY20240506001@2024-05-06T10:15:00",
            items=(
                ResultItem(Coded(lis, "HGB", "血红蛋白"),
                           Value("quantity", number="135", unit="g/L"), reference_range="115-150"),
                ResultItem(Coded(lis, "WBC", "白细胞计数"),
                           Value("quantity", number="11.20", unit="10^9/L"),
                           reference_range="3.5-9.5", interpretation="H"),
                ResultItem(Coded(lis, "ABO", "血型"), Value("text", text="A型")),
            ),
        )
    ]  # fmt: skip


def test_extract_raises_input_error_naming_field_and_column() -> None:
    """The single-row API raises InputError (field = model field, column in details)."""
    with pytest.raises(InputError) as err:
        RowMapper(connector(URL)).extract(row(1, sqsj="not a time"))
    assert err.value.field == "authored"
    assert err.value.details["column"] == "sqsj"


def test_parse_fhir_datetime_reads_model_times() -> None:
    """Model dateTimes parse to aware datetimes; a bare date is midnight UTC+8; junk is refused."""
    assert parse_fhir_datetime("2024-05-06T08:30:00+08:00", "f") == datetime(
        2024, 5, 6, 8, 30, tzinfo=LOCAL_TZ
    )
    assert parse_fhir_datetime("2024-05", "f") == datetime(2024, 5, 1, tzinfo=LOCAL_TZ)
    with pytest.raises(InputError) as err:
        parse_fhir_datetime("06/05/2024", "authored")
    assert err.value.field == "authored"


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)))
def test_naive_datetimes_round_trip_through_utc_plus_8(value: datetime) -> None:
    """Any naive DATETIME maps to a +08:00 dateTime that parses back to the same instant."""
    text = fhir_datetime(value)
    assert text.endswith("+08:00")
    assert parse_fhir_datetime(text, "f") == value.replace(tzinfo=LOCAL_TZ)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)))
def test_dates_in_any_spelling_agree(value: date) -> None:
    """A date, its ISO text, its compact text and its slashed text all map to one FHIR date."""
    spellings = [value, value.isoformat(), value.strftime("%Y%m%d"), value.strftime("%Y/%m/%d")]
    assert {fhir_date(s) for s in spellings} == {value.isoformat()}


_junk = st.one_of(
    st.none(), st.text(max_size=12), st.integers(-5, 30), st.binary(max_size=4),
    st.dates(), st.decimals(allow_nan=False, allow_infinity=False, places=2),
)  # fmt: skip


@settings(max_examples=150)
@given(st.lists(st.fixed_dictionaries({k: _junk for k in row(0)}), max_size=6))
def test_every_row_is_mapped_or_quarantined_never_raised(rows: list[dict[str, Any]]) -> None:
    """Whatever a view holds, map_rows never raises and accounts for every row exactly once."""
    for i, r in enumerate(rows):
        r["sqmxh"] = f"K{i}"  # the key column is NOT NULL and unique in a real view
    mapper = RowMapper(connector(URL))
    models, bad = mapper.map_rows(rows)
    placed = [m.control_id.split("@")[0] for m in models]  # type: ignore[union-attr]
    assert sorted(placed + [q.row_key for q in bad]) == sorted(r["sqmxh"] for r in rows)  # type: ignore[type-var]
