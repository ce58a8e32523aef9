"""FHIR search: index extraction per type, date-range semantics, and search parsing."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError, MedLedgerError, UnknownResourceType
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.records.fhir_shape import model_info, resource_model
from medledger.records.search_dates import date_range, range_matches
from medledger.records.search_index import normalize_reference
from medledger.records.search_params import (
    SEARCH_PARAMS,
    DateCriterion,
    DateValue,
    IndexValue,
    ReferenceCriterion,
    SearchQuery,
    StringCriterion,
    TokenCriterion,
    TokenValue,
    extract_index,
    parse_search,
)
from medledger.samples.fhir import clinical_set
from tests.records.search_golden import D22, GOLDEN, LOINC, SID


def _as_tuples(values: list[IndexValue]) -> set[tuple[Any, ...]]:
    return {(v.param, v.kind, v.system, v.value, v.low, v.high) for v in values}


@pytest.mark.parametrize(
    ("resource", "expected"), [pytest.param(r, e, id=r["resourceType"]) for r, e in GOLDEN]
)
def test_extraction_golden(resource: dict[str, Any], expected: set[tuple[Any, ...]]) -> None:
    """Each type yields exactly the index entries its R4 search parameters define."""
    found = extract_index(resource)
    assert len(found) == len(set(found))
    assert _as_tuples(found) == expected


def test_golden_cases_cover_every_type() -> None:
    """There is a golden extraction case for each of the 15 clinical types."""
    # Subscription's case is in tests/interop/subscriptions/test_check.py.
    assert {r["resourceType"] for r, _ in GOLDEN} == set(SUPPORTED_TYPES) - {"Subscription"}


def test_search_param_paths_exist_in_the_models() -> None:
    """Every path of every parameter names real elements of the R4B model."""
    assert set(SEARCH_PARAMS) == set(SUPPORTED_TYPES)
    for rtype, table in SEARCH_PARAMS.items():
        for pdef in table.values():
            for path in pdef.paths:
                model = resource_model(rtype)
                for name in path.split("."):
                    assert model is not None, (rtype, path)
                    info = model_info(model)
                    if name.endswith("[x]"):
                        assert any(e.choice == name[:-3] for e in info.elements.values()), path
                        model = None
                    else:
                        model = info.elements[name].model


def test_generated_samples_index_without_surprises() -> None:
    """Realistic resources index their patient, and lab results their LOINC code."""
    for resource in clinical_set(5):
        entries = extract_index(resource)
        params = {e.param for e in entries}
        assert params <= set(SEARCH_PARAMS[resource["resourceType"]])
        if resource["resourceType"] == "Observation":
            assert "patient" in params
            assert any(e.param == "code" and e.system == LOINC for e in entries)


def test_local_time_zone_is_configurable() -> None:
    """A date without offset is a local day: China by default, UTC when asked."""
    resource = {"resourceType": "Consent", "dateTime": "2026-11-22"}
    (china,) = extract_index(resource)
    (utc,) = extract_index(resource, local_tz=UTC)
    assert (china.low, china.high) == D22
    assert (utc.low, utc.high) == ("2026-11-22T00:00:00.000000Z", "2026-11-23T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026", ("2025-12-31T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z")),
        ("2026-11", ("2026-10-31T16:00:00.000000Z", "2026-11-30T16:00:00.000000Z")),
        ("2026-12", ("2026-11-30T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z")),
        ("2028-02-29", ("2028-02-28T16:00:00.000000Z", "2028-02-29T16:00:00.000000Z")),
        ("2026-11-22", D22),
        ("2026-11-22T10:00:00Z", ("2026-11-22T10:00:00.000000Z", "2026-11-22T10:00:01.000000Z")),
        (
            "2026-11-22T10:00:00.25-05:00",
            ("2026-11-22T15:00:00.250000Z", "2026-11-22T15:00:00.260000Z"),
        ),
        ("2016-12-31T23:59:60Z", ("2016-12-31T23:59:59.999999Z", "2017-01-01T00:00:00.000000Z")),
        ("9999-12", ("9999-11-30T16:00:00.000000Z", None)),
        ("0001", (None, "0001-12-31T16:00:00.000000Z")),
        ("2026-02-30", None),
        ("2026-1", None),
        ("2026-11-22T10:00:00", None),
        ("2026-11-22T10:00Z", None),
        ("2026-11-22T10:00:00+15:00", None),
        ("yesterday", None),
    ],
)
def test_stored_dates_become_half_open_utc_ranges(
    text: str, expected: tuple[str | None, str | None] | None
) -> None:
    """Partial dates cover their whole span; malformed ones cover nothing."""
    assert date_range(text) == expected


def test_search_dates_may_omit_seconds_and_offset() -> None:
    """In a search, 10:00 means the local minute 10:00."""
    assert date_range("2026-11-22T10:00", search=True) == (
        "2026-11-22T02:00:00.000000Z",
        "2026-11-22T02:01:00.000000Z",
    )


IN_DAY = ("2026-11-22T02:00:00.000000Z", "2026-11-22T02:00:01.000000Z")
DAY_BEFORE = ("2026-11-20T16:00:00.000000Z", "2026-11-21T16:00:00.000000Z")
DAY_AFTER = ("2026-11-22T16:00:00.000000Z", "2026-11-23T16:00:00.000000Z")
STRADDLES_START = ("2026-11-21T12:00:00.000000Z", "2026-11-22T04:00:00.000000Z")
OPEN_END = ("2026-11-22T04:00:00.000000Z", None)
OPEN_START = (None, "2026-11-21T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("prefix", "target", "expected"),
    [
        ("eq", IN_DAY, True),
        ("eq", D22, True),
        ("eq", DAY_AFTER, False),
        ("eq", STRADDLES_START, False),
        ("ne", STRADDLES_START, True),
        ("ne", IN_DAY, False),
        ("gt", DAY_AFTER, True),
        ("gt", IN_DAY, False),
        ("gt", OPEN_END, True),
        ("lt", DAY_BEFORE, True),
        ("lt", STRADDLES_START, True),
        ("lt", IN_DAY, False),
        ("lt", OPEN_START, True),
        ("ge", IN_DAY, True),
        ("ge", DAY_AFTER, True),
        ("ge", DAY_BEFORE, False),
        ("le", IN_DAY, True),
        ("le", DAY_BEFORE, True),
        ("le", DAY_AFTER, False),
        ("sa", DAY_AFTER, True),
        ("sa", OPEN_END, False),
        ("eb", DAY_BEFORE, True),
        ("eb", OPEN_START, True),
        ("eb", STRADDLES_START, False),
    ],
)
def test_date_prefix_semantics(
    prefix: str, target: tuple[str | None, str | None], expected: bool
) -> None:
    """Prefixes compare the stored range with the searched day as R4 defines."""
    assert range_matches(prefix, D22, target) is expected
    value = DateValue(prefix, D22[0], D22[1], "2026-11-22")
    assert value.matches(*target) is expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p1", "Patient/p1"),
        ("https://fhir.example.org/r4/Patient/p1", "Patient/p1"),
        ("Patient/p1/_history/7", "Patient/p1"),
        (
            "urn:uuid:0f9b8a8e-0000-4000-8000-000000000001",
            "urn:uuid:0f9b8a8e-0000-4000-8000-000000000001",
        ),
        ("urn:oid:1.2.156.1", "urn:oid:1.2.156.1"),
        ("#wado", None),
        ("Patient?identifier=MZ1", None),
        ("p1", None),
        ("Patient/p 1", None),
    ],
)
def test_reference_normalisation(reference: str, expected: str | None) -> None:
    """Literal references become Type/id; URNs stay; the rest is not searchable."""
    assert normalize_reference(reference) == expected


def test_parse_search_happy_path() -> None:
    """Tokens, references, dates, OR by comma, AND by repetition, and result parameters."""
    query = parse_search(
        "Observation",
        [
            ("patient", "p1"),
            ("code", f"{LOINC}|718-7,|L001,6690-2,{SID}/item|"),
            ("date", "ge2026-11"),
            ("date", "lt2026-11-23T08:00"),
            ("status", "final,amended"),
            ("_count", "50"),
            ("_sort", "-_lastUpdated"),
            ("_total", "accurate"),
            ("_page_token", "eyJrIjoxfQ=="),
            ("_format", "json"),
            ("_pretty", "true"),
        ],
    )
    assert query == SearchQuery(
        resource_type="Observation",
        criteria=(
            ReferenceCriterion("patient", ("Patient/p1",)),
            TokenCriterion(
                "code",
                (
                    TokenValue(LOINC, "718-7"),
                    TokenValue("", "L001"),
                    TokenValue(None, "6690-2"),
                    TokenValue(f"{SID}/item", None),
                ),
            ),
            DateCriterion(
                "date",
                (
                    DateValue(
                        "ge",
                        "2026-10-31T16:00:00.000000Z",
                        "2026-11-30T16:00:00.000000Z",
                        "2026-11",
                    ),
                ),
            ),
            DateCriterion(
                "date",
                (
                    DateValue(
                        "lt",
                        "2026-11-23T00:00:00.000000Z",
                        "2026-11-23T00:01:00.000000Z",
                        "2026-11-23T08:00",
                    ),
                ),
            ),
            TokenCriterion("status", (TokenValue(None, "final"), TokenValue(None, "amended"))),
        ),
        count=50,
        sort="-_lastUpdated",
        total="accurate",
        page_token="eyJrIjoxfQ==",
    )


def test_unencoded_plus_of_an_offset_is_read_back() -> None:
    """date=ge2026-11-22T10:00:00+08:00 sent without %2B still means +08:00."""
    (crit,) = parse_search("Observation", [("date", "ge2026-11-22T10:00:00 08:00")]).criteria
    assert crit == DateCriterion(
        "date",
        (
            DateValue(
                "ge",
                "2026-11-22T02:00:00.000000Z",
                "2026-11-22T02:00:01.000000Z",
                "2026-11-22T10:00:00+08:00",
            ),
        ),
    )


def test_parse_search_defaults() -> None:
    """With no parameters: 20 per page, store order, no total, first page."""
    assert parse_search("Patient", []) == SearchQuery("Patient", (), 20, None, "none", None)


def test_reference_forms() -> None:
    """An id alone expands to every allowed target type; a type modifier narrows it."""
    (crit,) = parse_search("Observation", [("subject", "p1")]).criteria
    assert crit == ReferenceCriterion(
        "subject", ("Patient/p1", "Group/p1", "Device/p1", "Location/p1")
    )
    (crit,) = parse_search("Observation", [("subject:Patient", "p1")]).criteria
    assert crit == ReferenceCriterion("subject", ("Patient/p1",))
    (crit,) = parse_search(
        "DiagnosticReport", [("specimen", "https://x.example.org/fhir/Specimen/s1,urn:uuid:abc")]
    ).criteria
    assert crit == ReferenceCriterion("specimen", ("Specimen/s1", "urn:uuid:abc"))


def test_string_and_escapes() -> None:
    """:exact is kept; backslash escapes a comma or a pipe inside a value."""
    query = parse_search(
        "Patient", [("name", "张三"), ("family:exact", "欧阳"), ("identifier", r"a\|b|c\,d")]
    )
    assert query.criteria == (
        StringCriterion("name", ("张三",)),
        StringCriterion("family", ("欧阳",), exact=True),
        TokenCriterion("identifier", (TokenValue("a|b", "c,d"),)),
    )


def test_query_matches_generated_data() -> None:
    """A parsed query selects exactly the hemoglobin result of the patient."""
    resources = clinical_set(11)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    query = parse_search(
        "Observation",
        [
            ("patient", patient["id"]),
            ("code", f"{LOINC}|718-7"),
            ("date", "ge2026-11-01"),
            ("date", "lt2026-12"),
        ],
    )
    hits = [r for r in resources if r["resourceType"] == "Observation" and query.matches(r)]
    assert [h["code"]["coding"][0]["code"] for h in hits] == ["718-7"]
    name = patient["name"][0]["text"]
    assert parse_search("Patient", [("name", name[:1])]).matches(patient)
    assert not parse_search("Patient", [("name:exact", name[:1] + "x")]).matches(patient)


@pytest.mark.parametrize(
    ("rtype", "params", "field", "text"),
    [
        ("Observation", [("colour", "red")], "colour", "supported: _id, _lastUpdated, based-on"),
        (
            "Patient",
            [("subject", "p1")],
            "subject",
            "unknown search parameter 'subject' for Patient",
        ),
        ("Observation", [("_include", "Observation:subject")], "_include", "not supported"),
        ("Observation", [("_offset", "20")], "_offset", "_page_token"),
        ("Observation", [("subject.name", "张")], "subject.name", "chained search"),
        ("Observation", [("code:text", "血")], "code:text", "modifier ':text'"),
        ("Observation", [("date:missing", "true")], "date:missing", "modifier ':missing'"),
        ("Patient", [("name:contains", "三")], "name:contains", "supported: :exact"),
        ("Observation", [("subject:Organization", "o1")], "subject:Organization", "modifier"),
        ("Observation", [("date", "ap2026-11")], "date", "prefix 'ap'"),
        ("Observation", [("date", "2026-13")], "date", "not a FHIR date"),
        ("Observation", [("date", "ge")], "date", "not a FHIR date"),
        ("Observation", [("code", "a,,b")], "code", "empty value"),
        ("Observation", [("code", "|")], "code", "neither system nor code"),
        ("Observation", [("_id", "a b")], "_id", "not a resource id"),
        (
            "Observation",
            [("subject", "Organization/o1")],
            "subject",
            "cannot point to Organization",
        ),
        ("Observation", [("subject", "Patient?identifier=1")], "subject", "not a reference"),
        ("Observation", [("_count", "0")], "_count", "1 to 1000"),
        ("Observation", [("_count", "1001")], "_count", "1 to 1000"),
        ("Observation", [("_count", "ten")], "_count", "1 to 1000"),
        ("Observation", [("_count", "5"), ("_count", "6")], "_count", "only once"),
        ("Observation", [("_sort", "date")], "_sort", "only _lastUpdated"),
        ("Observation", [("_total", "estimate")], "_total", "accurate or none"),
        ("Observation", [("_page_token", "a b")], "_page_token", "not a token"),
        ("Observation", [("_format", "xml")], "_format", "JSON only"),
        ("Observation", [("code", ",".join(["x"] * 101))], "code", "at most 100"),
    ],
)
def test_parse_search_errors_name_the_parameter(
    rtype: str, params: list[tuple[str, str]], field: str, text: str
) -> None:
    """Every refusal is an InputError naming the parameter, with a clear message."""
    with pytest.raises(InputError) as caught:
        parse_search(rtype, params)
    assert caught.value.field == field
    assert text in caught.value.message


def test_unknown_type_is_refused() -> None:
    """Searching a type this server does not serve names the type."""
    with pytest.raises(UnknownResourceType, match="Medication"):
        parse_search("Medication", [])


NAMES = st.one_of(
    st.sampled_from(sorted({n for t in SEARCH_PARAMS.values() for n in t} | {"_count", "_sort"})),
    st.text(max_size=12),
).flatmap(lambda n: st.sampled_from([n, f"{n}:exact", f"{n}:Patient", f"{n}:x"]))


@settings(max_examples=300)
@given(
    st.sampled_from([*SUPPORTED_TYPES, "Bundle"]),
    st.lists(st.tuples(NAMES, st.text(max_size=40)), max_size=5),
)
def test_arbitrary_queries_raise_only_our_errors(rtype: str, params: list[tuple[str, str]]) -> None:
    """Any query string parses or raises a MedLedgerError, nothing else."""
    try:
        query = parse_search(rtype, params)
    except MedLedgerError:
        return
    assert len(query.criteria) <= len(params)
