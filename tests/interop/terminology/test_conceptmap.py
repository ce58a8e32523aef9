"""Dictionary mappings as FHIR R4 ConceptMap resources."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from medledger.errors import InputError, NotFound
from medledger.interop.model import code_system
from medledger.interop.terminology import (
    Mapping,
    concept_map,
    concept_map_url,
    pairs_of,
    with_mapping,
    without_mapping,
)
from medledger.records.fhir_model import validate_resource

from .conftest import CENTRAL, MEMBER
from .strategies import mapping_lists

CT = Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫")
CT_LOW = Mapping("JC0101", "胸部CT平扫", "300103", "胸部CT平扫(低剂量)", "wider")
ELYTE = Mapping(
    "JY0013", "电解质", "400291", "电解质四项(钾钠氯钙)", "inexact", "本院为钾钠氯三项，总院另含钙"
)
BMD = Mapping("JC0999", "骨密度测定", equivalence="unmatched", comment="总院无此项目")


def test_conceptmap_is_valid_fhir_between_the_two_dictionaries() -> None:
    """The map is valid R4 with one group from the member's CodeSystem to the central one."""
    cm = concept_map(MEMBER, CENTRAL, [CT, CT_LOW, ELYTE, BMD], title="区中医院→市一院 项目对照")
    assert validate_resource(cm, expected_type="ConceptMap") is cm
    assert cm["url"] == concept_map_url(MEMBER, CENTRAL)
    assert cm["name"] == "MapHospMemberEastToHospCentral"
    (group,) = cm["group"]
    assert (group["source"], group["target"]) == (code_system(MEMBER), code_system(CENTRAL))
    first = group["element"][0]
    assert first["code"] == "JC0101"
    assert [(t["code"], t["equivalence"]) for t in first["target"]] == [
        ("300101", "equivalent"),
        ("300103", "wider"),
    ]
    assert group["element"][2]["target"] == [
        {"equivalence": "unmatched", "comment": "总院无此项目"}
    ]


def test_pairs_round_trip() -> None:
    """pairs_of gives back the pairs the map was built from."""
    pairs = [CT, CT_LOW, ELYTE, BMD]
    assert pairs_of(concept_map(MEMBER, CENTRAL, pairs)) == pairs


@settings(max_examples=60)
@given(mapping_lists())
def test_any_grouped_pairs_round_trip_and_validate(pairs: list[Mapping]) -> None:
    """Every valid list of grouped pairs survives ConceptMap and back and is valid FHIR."""
    cm = concept_map(MEMBER, CENTRAL, pairs)
    validate_resource(cm, expected_type="ConceptMap")
    assert pairs_of(cm) == pairs


def test_pairs_come_back_grouped_by_source_code() -> None:
    """Interleaved pairs come back grouped under their source code, first appearance first."""
    cm = concept_map(MEMBER, CENTRAL, [CT, ELYTE, CT_LOW])
    assert pairs_of(cm) == [CT, CT_LOW, ELYTE]


def test_with_mapping_returns_a_new_map_and_leaves_the_old_one() -> None:
    """Adding a pair builds a new dict; the original (the stored version) is unchanged."""
    cm = concept_map(MEMBER, CENTRAL, [CT])
    cm["id"] = "map-east-central"
    before = copy.deepcopy(cm)
    added = with_mapping(cm, ELYTE)
    assert cm == before
    assert added is not cm
    assert added["id"] == "map-east-central"
    assert pairs_of(added) == [CT, ELYTE]
    validate_resource(added, expected_type="ConceptMap")


def test_with_mapping_replaces_the_same_pair_and_resolves_unmatched() -> None:
    """Re-adding a pair updates it; a real target replaces the code's unmatched mark."""
    cm = concept_map(MEMBER, CENTRAL, [CT, BMD])
    updated = with_mapping(cm, Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫", "equal"))
    assert [p.equivalence for p in pairs_of(updated)] == ["equal", "unmatched"]
    resolved = with_mapping(cm, Mapping("JC0999", None, "300401", "骨密度检测"))
    assert pairs_of(resolved)[-1] == Mapping("JC0999", "骨密度测定", "300401", "骨密度检测")
    assert all(p.equivalence != "unmatched" for p in pairs_of(resolved))


def test_marking_a_mapped_code_unmatched_is_refused() -> None:
    """A code with targets cannot also be marked unmatched."""
    cm = concept_map(MEMBER, CENTRAL, [CT])
    with pytest.raises(InputError) as caught:
        with_mapping(cm, Mapping("JC0101", None, equivalence="unmatched"))
    assert caught.value.field == "source_code"
    assert caught.value.value == "JC0101"


def test_without_mapping_removes_one_pair_and_an_emptied_map_stays_valid() -> None:
    """Removing pairs builds new maps; the last removal leaves a valid map with no group."""
    cm = concept_map(MEMBER, CENTRAL, [CT, BMD])
    one = without_mapping(cm, "JC0101", "300101")
    assert pairs_of(one) == [BMD]
    none = without_mapping(one, "JC0999", None)
    assert "group" not in none
    validate_resource(none, expected_type="ConceptMap")
    assert pairs_of(none) == []
    again = with_mapping(none, CT)
    assert again["group"][0]["source"] == code_system(MEMBER)
    assert pairs_of(cm) == [CT, BMD]


def test_removing_a_missing_pair_is_not_found() -> None:
    """Removing a pair the map does not hold raises NotFound naming the code."""
    cm = concept_map(MEMBER, CENTRAL, [CT])
    with pytest.raises(NotFound) as caught:
        without_mapping(cm, "JC0101", "300102")
    assert caught.value.value == "JC0101"


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([CT, CT], "pairs[1].target_code"),
        ([BMD, Mapping("JC0999", "骨密度测定", "300401")], "pairs[1].equivalence"),
        ([CT, Mapping("JC0101", "胸部CT", "300103")], "pairs[1].source_display"),
        (["JC0101"], "pairs[0]"),
    ],
)
def test_inconsistent_pairs_are_refused(pairs: list[Mapping], field: str) -> None:
    """Repeated pairs, unmatched-and-mapped codes and two names for one code are refused."""
    with pytest.raises(InputError) as caught:
        concept_map(MEMBER, CENTRAL, pairs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"source_code": "JC0101"}, "target_code"),
        ({"source_code": "JC0101", "target_code": "300101", "equivalence": "unmatched"},
         "target_code"),
        ({"source_code": "JC0101", "target_code": "300101", "equivalence": "narrower"},
         "comment"),
        ({"source_code": "JC0101", "target_code": "300101", "equivalence": "same"},
         "equivalence"),
        ({"source_code": "", "target_code": "300101"}, "source_code"),
    ],
)  # fmt: skip
def test_invalid_mapping_names_field(kwargs: dict[str, str], field: str) -> None:
    """A mapping breaking R4's rules (cmd-1 comments, unmatched has no target) names the field."""
    with pytest.raises(InputError) as caught:
        Mapping(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_pairs_of_names_the_path_of_a_bad_element() -> None:
    """An unreadable element of a stored map is reported with its FHIRPath."""
    cm = concept_map(MEMBER, CENTRAL, [CT, ELYTE])
    cm["group"][0]["element"][1]["target"][0]["equivalence"] = "same"
    with pytest.raises(InputError) as caught:
        pairs_of(cm)
    assert caught.value.field == "ConceptMap.group[0].element[1].target[0].equivalence"
    assert caught.value.value == "same"
    del cm["group"][0]["target"]
    with pytest.raises(InputError) as caught:
        pairs_of(cm)
    assert caught.value.field == "ConceptMap.group[0].target"


def test_pairs_of_refuses_groups_between_different_systems() -> None:
    """pairs_of reads one dictionary pair; a map mixing systems is refused."""
    cm = concept_map(MEMBER, CENTRAL, [CT])
    other = copy.deepcopy(cm["group"][0])
    other["target"] = "http://loinc.org"
    cm["group"].append(other)
    with pytest.raises(InputError) as caught:
        pairs_of(cm)
    assert caught.value.field == "ConceptMap.group.source"


@settings(max_examples=40)
@given(mapping_lists())
def test_removing_then_adding_a_pair_restores_the_map(pairs: list[Mapping]) -> None:
    """For every pair: without_mapping drops exactly it, with_mapping brings it back."""
    cm = concept_map(MEMBER, CENTRAL, pairs)
    for pair in pairs:
        smaller = without_mapping(cm, pair.source_code, pair.target_code)
        assert pairs_of(smaller) == [p for p in pairs if p != pair]
        assert set(pairs_of(with_mapping(smaller, pair))) == set(pairs)
