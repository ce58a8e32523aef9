"""ConceptMap/$translate (FHIR R4) and the gateway's one-lookup Translator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from medledger.errors import InputError
from medledger.interop.model import Coded, code_system
from medledger.interop.terminology import (
    Mapping,
    Translator,
    concept_map,
    concept_map_url,
    translate,
)

from .conftest import CENTRAL, DATA, MEMBER, validate_parameters
from .strategies import mapping_lists

EAST, CITY = code_system(MEMBER), code_system(CENTRAL)
URL = concept_map_url(MEMBER, CENTRAL)
FHIR_101 = json.loads((DATA / "fhir_r4_conceptmap_101.json").read_text(encoding="utf-8"))
ADDRESS_USE = "http://hl7.org/fhir/address-use"
V3_ADDRESS_USE = "http://terminology.hl7.org/CodeSystem/v3-AddressUse"


def _param(params: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The parameters of a Parameters resource with this name."""
    return [p for p in params["parameter"] if p["name"] == name]


def _matches(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each match parameter as a dict of its parts by name."""
    return [{part["name"]: part for part in m["part"]} for m in _param(params, "match")]


@pytest.fixture
def east_to_city(known_pairs: list[Mapping]) -> dict[str, Any]:
    """The confirmed member → central ConceptMap."""
    return concept_map(MEMBER, CENTRAL, known_pairs)


def test_golden_fhir_example_equivalent_code() -> None:
    """FHIR R4 example ConceptMap 101: address-use 'home' translates to v3 'H', equivalent."""
    params = translate([FHIR_101], system=ADDRESS_USE, code="home", target_system=V3_ADDRESS_USE)
    validate_parameters(params)
    assert params["parameter"][0] == {"name": "result", "valueBoolean": True}
    assert not _param(params, "message")
    (match,) = _matches(params)
    assert match["equivalence"]["valueCode"] == "equivalent"
    assert match["concept"]["valueCoding"] == {
        "system": V3_ADDRESS_USE,
        "code": "H",
        "display": "home address",
    }
    assert match["source"]["valueUri"] == "http://hl7.org/fhir/ConceptMap/101"


def test_golden_fhir_example_disjoint_code_is_not_a_translation() -> None:
    """'old' maps to BAD as disjoint: R4 says result is false but the match is still listed."""
    params = translate([FHIR_101], system=ADDRESS_USE, code="old")
    validate_parameters(params)
    assert _param(params, "result")[0]["valueBoolean"] is False
    assert "old" in _param(params, "message")[0]["valueString"]
    (match,) = _matches(params)
    assert match["equivalence"]["valueCode"] == "disjoint"
    assert match["concept"]["valueCoding"]["code"] == "BAD"


def test_member_code_translates_to_central_code(east_to_city: dict[str, Any]) -> None:
    """The member's 胸部CT平扫 JC0101 translates to the central hospital's 300101."""
    params = translate([east_to_city], system=EAST, code="JC0101", target_system=CITY)
    validate_parameters(params)
    assert _param(params, "result")[0]["valueBoolean"] is True
    (match,) = _matches(params)
    assert match["concept"]["valueCoding"] == {
        "system": CITY,
        "code": "300101",
        "display": "胸部CT平扫",
    }
    assert match["source"]["valueUri"] == URL


def test_missing_code_says_which_code_system_and_target(east_to_city: dict[str, Any]) -> None:
    """An unknown code gives result false and a message naming code, system and target."""
    params = translate([east_to_city], system=EAST, code="JC7777", target_system=CITY)
    validate_parameters(params)
    assert _param(params, "result")[0]["valueBoolean"] is False
    message = _param(params, "message")[0]["valueString"]
    assert "JC7777" in message
    assert EAST in message
    assert CITY in message
    assert not _matches(params)


def test_unmatched_code_is_reported_with_its_map(east_to_city: dict[str, Any]) -> None:
    """A code marked unmatched gives result false, says so, and lists the unmatched match."""
    params = translate([east_to_city], system=EAST, code="JY0099", target_system=CITY)
    validate_parameters(params)
    assert _param(params, "result")[0]["valueBoolean"] is False
    message = _param(params, "message")[0]["valueString"]
    assert "JY0099" in message
    assert "unmatched" in message
    assert URL in message
    (match,) = _matches(params)
    assert match["equivalence"]["valueCode"] == "unmatched"
    assert "concept" not in match


def test_other_target_system_has_no_mapping(east_to_city: dict[str, Any]) -> None:
    """A mapping to the central hospital is no mapping to another institution's dictionary."""
    other = code_system("hosp-member-west")
    params = translate([east_to_city], system=EAST, code="JC0101", target_system=other)
    assert _param(params, "result")[0]["valueBoolean"] is False
    assert other in _param(params, "message")[0]["valueString"]


def test_reverse_finds_sources_and_inverts_equivalence() -> None:
    """reverse=true lists the source codes mapped to a target; wider reads back as narrower."""
    pairs = [
        Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫"),
        Mapping("JC0109", "胸部CT", "300101", "胸部CT平扫", "wider"),
    ]
    cm = concept_map(MEMBER, CENTRAL, pairs)
    params = translate([cm], system=CITY, code="300101", reverse=True)
    validate_parameters(params)
    assert _param(params, "result")[0]["valueBoolean"] is True
    found = {
        m["concept"]["valueCoding"]["code"]: m["equivalence"]["valueCode"] for m in _matches(params)
    }
    assert found == {"JC0101": "equivalent", "JC0109": "narrower"}
    none = translate([cm], system=CITY, code="300999", reverse=True)
    assert _param(none, "result")[0]["valueBoolean"] is False
    assert "300999" in _param(none, "message")[0]["valueString"]


def test_lookup_returns_usable_targets_only(east_to_city: dict[str, Any]) -> None:
    """The hot-path lookup gives Coded targets, nothing for unmatched or unknown codes."""
    translator = Translator([east_to_city, FHIR_101])
    assert translator.lookup(EAST, "JC0203", CITY) == (Coded(CITY, "300221", "膝关节MR平扫(左)"),)
    assert translator.lookup(EAST, "JY0099", CITY) == ()
    assert translator.lookup(EAST, "JC7777", CITY) == ()
    assert translator.lookup(ADDRESS_USE, "old", V3_ADDRESS_USE) == ()
    assert translator.lookup(ADDRESS_USE, "work", V3_ADDRESS_USE)[0].code == "WP"
    inexact = translator.matches(EAST, "JY0013", CITY)
    assert [(m.equivalence, m.comment) for m in inexact] == [
        ("inexact", "本院电解质为钾钠氯三项，总院另含钙")
    ]


@settings(max_examples=40)
@given(mapping_lists())
def test_lookup_agrees_with_translate(pairs: list[Mapping]) -> None:
    """For every source code the fast lookup gives exactly the concepts $translate accepts."""
    cm = concept_map(MEMBER, CENTRAL, pairs)
    translator = Translator([cm])
    for code in {p.source_code for p in pairs}:
        params = translate([cm], system=EAST, code=code, target_system=CITY)
        validate_parameters(params)
        usable = [
            Coded(
                CITY,
                m["concept"]["valueCoding"]["code"],
                m["concept"]["valueCoding"].get("display"),
            )
            for m in _matches(params)
            if m["equivalence"]["valueCode"] not in ("unmatched", "disjoint")
        ]
        assert list(translator.lookup(EAST, code, CITY)) == usable
        assert _param(params, "result")[0]["valueBoolean"] is bool(usable)


def test_bad_conceptmap_and_bad_arguments_are_input_errors(east_to_city: dict[str, Any]) -> None:
    """A broken map names its position and path; an empty code or system is refused."""
    broken = {"resourceType": "ConceptMap", "group": [{"source": EAST, "element": []}]}
    with pytest.raises(InputError) as caught:
        Translator([east_to_city, broken])
    assert caught.value.field == "ConceptMap.group[0].target"
    assert caught.value.message.startswith("conceptmaps[1]:")
    with pytest.raises(InputError) as caught:
        translate([east_to_city], system=EAST, code="")
    assert caught.value.field == "code"
    with pytest.raises(InputError) as caught:
        translate([east_to_city], system="", code="JC0101")
    assert caught.value.field == "system"
