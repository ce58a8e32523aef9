"""Download parameters, page tokens, label times and row building, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.api.specimens import PARAMS, decode_cursor, encode_cursor, parse_query
from medledger.errors import InputError
from medledger.interop.hl7.fhir_orders import kind_category
from medledger.interop.model import code_system, identifier_system
from medledger.interop.specimens import (
    GROUP_BARCODE,
    STATUSES,
    DownloadItem,
    DownloadRow,
    SpecimenQuery,
    label_time,
    specimen_row,
)
from medledger.records.store import Loaded, Version

INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
IDS = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)
OFFSETS = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _stored(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_the_documented_query_parses() -> None:
    """The example query of the LIS integration guide becomes the expected filters."""
    query = parse_query(
        [("performer", "hosp-central"), ("since", "2026-11-23T08:00:00+08:00"),
         ("status", "active,on-hold"), ("_count", "100")]
    )  # fmt: skip
    assert query == SpecimenQuery(
        "hosp-central", "2026-11-23T00:00:00.000Z", ("active", "on-hold"), 100, None
    )
    assert parse_query([]) == SpecimenQuery()


@given(INSTANTS, IDS)
def test_page_token_round_trips(when: datetime, rid: str) -> None:
    """A page token decodes to the keyset position it was made from, and is URL-safe."""
    token = encode_cursor(_stored(when), rid)
    assert decode_cursor(token) == (_stored(when), rid)
    assert all(c.isalnum() or c in "-_" for c in token)


@given(st.text(max_size=300))
def test_any_other_token_is_an_input_error(token: str) -> None:
    """An arbitrary string is refused as an InputError naming _page_token, never a crash."""
    try:
        ts, rid = decode_cursor(token)
    except InputError as exc:
        refused: InputError | None = exc
    else:  # it happened to be a valid token: then it re-encodes to itself
        refused = None
        assert encode_cursor(ts, rid) == token
    assert refused is None or refused.field == "_page_token"


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from([*PARAMS, "x", "_sort"]), st.text(max_size=40))))
def test_parse_query_refuses_only_with_input_errors(params: list[tuple[str, str]]) -> None:
    """Any parameter list parses or is an InputError naming one of the parameters sent."""
    try:
        query = parse_query(params)
    except InputError as exc:
        refused: InputError | None = exc
    else:
        refused = None
        assert 1 <= query.count <= 1000
        assert all(s in STATUSES for s in query.statuses)
    if refused is not None:
        assert refused.field in {name for name, _ in params}
        assert refused.expected


@given(INSTANTS, OFFSETS)
def test_label_time_is_china_time(when: datetime, offset: timezone) -> None:
    """A dateTime with an offset prints as its China time (UTC+8), to the minute."""
    text = when.astimezone(offset).isoformat()
    china = when.astimezone(timezone(timedelta(hours=8)))
    assert label_time(text) == china.strftime("%Y-%m-%d %H:%M")


def test_label_time_keeps_what_it_cannot_convert() -> None:
    """Dates, partial dates, missing times and unreadable text are printed as given."""
    assert label_time("2026-11-23T00:30:00Z") == "2026-11-23 08:30"
    assert label_time("2026-11-23") == "2026-11-23"
    assert label_time("2026-11") == "2026-11"
    assert label_time("2026-11-23T07:30") == "2026-11-23 07:30"
    assert label_time("not a timeT") == "not a timeT"
    assert label_time(None) is None


def _item(status: str) -> DownloadItem:
    return DownloadItem(
        None, None, "X", None, None, None, "lab", status, None, "", "ServiceRequest/1"
    )


@given(st.lists(st.sampled_from(STATUSES), max_size=6))
def test_row_status_is_the_most_current_item_status(statuses: list[str]) -> None:
    """A row's status is the first of STATUSES any item has (unknown without items)."""
    row = DownloadRow("B", None, "s", None, "p", tuple(_item(s) for s in statuses), None, None,
                      "Specimen/1", "")  # fmt: skip
    assert row.status == next((s for s in STATUSES if s in statuses), "unknown")


SENDER, PERFORMER = "hosp-member-east", "hosp-central"


def _loaded(identifiers: list[dict[str, str]]) -> Loaded:
    version = Version("Specimen", "sp1", 2, "2026-11-23T00:31:00.000Z", False, SENDER,
                      "ab" * 32, "h", "anchored", 7)  # fmt: skip
    requests = [{"reference": "ServiceRequest/b"}, {"reference": "ServiceRequest/a"}]
    resource = {
        "resourceType": "Specimen", "id": "sp1", "identifier": identifiers, "request": requests,
        "collection": {"collectedPeriod": {"start": "2026-11-23T08:30:00+08:00"}},
    }  # fmt: skip
    return Loaded(version, resource, b"")


def _order(rid: str, kind: str, performer: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": rid, "status": "active",
        "meta": {"lastUpdated": f"2026-11-23T00:3{len(rid)}:00.000Z"},
        "identifier": [{"system": identifier_system(SENDER, "placer"), "value": f"P-{rid}"}],
        "category": [kind_category(kind)],
        "code": {"coding": [{"system": code_system(SENDER), "code": code}], "text": "名称"},
        "performer": [{"identifier": {"system": "urn:medledger:institution", "value": performer}}],
        "authoredOn": "2026-11-23T08:05:00+08:00",
    }  # fmt: skip


def test_row_keeps_lab_orders_of_the_performer_in_request_order() -> None:
    """Items follow Specimen.request; imaging orders and other performers' orders are left out."""
    group = {"system": GROUP_BARCODE, "value": "14261123000012"}
    orders = [
        _order("a", "lab", PERFORMER, "A"), _order("b", "pathology", PERFORMER, "B"),
        _order("c", "radiology", PERFORMER, "C"), _order("d", "lab", "hosp-other", "D"),
    ]  # fmt: skip
    row = specimen_row(_loaded([group]), orders, performer=PERFORMER)
    assert row is not None
    assert [(i.code, i.kind, i.placer, i.name) for i in row.items] == [
        ("B", "pathology", "P-b", "名称"), ("A", "lab", "P-a", "名称"),
    ]  # fmt: skip
    assert (row.barcode, row.member_barcode, row.collected) == (
        "14261123000012", None, "2026-11-23T08:30:00+08:00",
    )  # fmt: skip
    assert row.updated == "2026-11-23T00:31:00.000Z"
    everyone = specimen_row(_loaded([group]), orders, performer=None)
    assert everyone is not None
    assert [i.code for i in everyone.items] == ["B", "A", "D"]


@pytest.mark.parametrize("system", [identifier_system(SENDER, "barcode"), "urn:other"])
def test_specimen_without_group_barcode_has_no_row(system: str) -> None:
    """Only the group barcode system counts: a member barcode alone makes no row."""
    assert specimen_row(_loaded([{"system": system, "value": "E1"}]), [], performer=None) is None
