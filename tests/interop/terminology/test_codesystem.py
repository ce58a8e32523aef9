"""Item dictionaries as FHIR R4 CodeSystem resources."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from medledger.errors import InputError
from medledger.interop.model import code_system
from medledger.interop.terminology import DictItem, dictionary_codesystem, items_of
from medledger.records.fhir_model import validate_resource

from .conftest import CENTRAL, MEMBER
from .strategies import dictionaries

CT = DictItem("JC0101", "胸部CT平扫", "radiology", pinyin="XBCTPS")
CBC = DictItem(
    "JY0001",
    "血常规",
    "lab",
    aliases=("血细胞分析", "全血细胞计数"),
    loinc="58410-2",
    national_code="250101015",
)
OLD = DictItem("JC0100", "胸部CT平扫(旧)", "radiology", active=False)


def test_codesystem_is_valid_fhir_with_declared_properties() -> None:
    """The dictionary is a complete, active CodeSystem that the records layer accepts."""
    cs = dictionary_codesystem(
        MEMBER, [CT, CBC, OLD], title="示例区中医院 检查检验项目字典", version="2024.1"
    )
    assert validate_resource(cs, expected_type="CodeSystem") is cs
    assert cs["url"] == code_system(MEMBER) == "urn:medledger:dict:hosp-member-east"
    assert (cs["status"], cs["content"], cs["count"]) == ("active", "complete", 3)
    assert cs["name"] == "DictHospMemberEast"
    declared = {p["code"]: p["type"] for p in cs["property"]}
    assert declared == {
        "kind": "code",
        "active": "boolean",
        "pinyin": "string",
        "loinc": "Coding",
        "national": "string",
    }
    used = {p["code"] for c in cs["concept"] for p in c["property"]}
    assert used <= set(declared)


def test_concept_carries_kind_active_aliases_and_codes() -> None:
    """Each concept holds the item's kind, active flag, aliases as synonyms and LOINC."""
    cs = dictionary_codesystem(CENTRAL, [CBC, OLD])
    cbc, old = cs["concept"]
    props = {p["code"]: p for p in cbc["property"]}
    assert props["kind"]["valueCode"] == "lab"
    assert props["active"]["valueBoolean"] is True
    assert props["loinc"]["valueCoding"] == {"system": "http://loinc.org", "code": "58410-2"}
    assert props["national"]["valueString"] == "250101015"
    assert [d["value"] for d in cbc["designation"]] == ["血细胞分析", "全血细胞计数"]
    assert {p["code"]: p for p in old["property"]}["active"]["valueBoolean"] is False


def test_items_round_trip_through_the_codesystem() -> None:
    """items_of gives back exactly the items the CodeSystem was built from."""
    items = [CT, CBC, OLD, DictItem("X1", "未分类项目")]
    assert items_of(dictionary_codesystem(MEMBER, items)) == items


@settings(max_examples=60)
@given(dictionaries)
def test_any_dictionary_round_trips_and_validates(items: list[DictItem]) -> None:
    """Every valid dictionary survives CodeSystem and back, and is valid FHIR."""
    cs = dictionary_codesystem(CENTRAL, items)
    validate_resource(cs, expected_type="CodeSystem")
    assert items_of(cs) == items


def test_duplicate_code_is_named() -> None:
    """Two items with one code are refused, and the error names the code."""
    with pytest.raises(InputError) as caught:
        dictionary_codesystem(MEMBER, [CT, DictItem("JC0101", "胸部CT增强", "radiology")])
    assert caught.value.field == "items[1].code"
    assert caught.value.value == "JC0101"
    assert "JC0101" in caught.value.message


def test_items_of_refuses_duplicate_codes() -> None:
    """A CodeSystem whose concepts repeat a code is refused with the concept's path."""
    cs = dictionary_codesystem(MEMBER, [CT, CBC])
    cs["concept"][1]["code"] = "JC0101"
    with pytest.raises(InputError) as caught:
        items_of(cs)
    assert caught.value.field == "CodeSystem.concept[1].code"
    assert caught.value.value == "JC0101"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"code": "", "display": "血常规"}, "code"),
        ({"code": " JY1", "display": "血常规"}, "code"),
        ({"code": "JY  1", "display": "血常规"}, "code"),
        ({"code": "JY1", "display": ""}, "display"),
        ({"code": "JY1", "display": "血常规\n"}, "display"),
        ({"code": "JY1", "display": "血\x00常规"}, "display"),
        ({"code": "JY1", "display": "血常规", "kind": "xray"}, "kind"),
        ({"code": "JY1", "display": "血常规", "aliases": ("a|b",)}, "aliases[0]"),
        ({"code": "JY1", "display": "血常规", "aliases": ("血象", "血象")}, "aliases"),
        ({"code": "JY1", "display": "血常规", "loinc": "58410"}, "loinc"),
        ({"code": "JY1", "display": "血常规", "active": "yes"}, "active"),
        ({"code": "JY1", "display": "x" * 201}, "display"),
    ],
)
def test_invalid_item_names_field(kwargs: dict[str, object], field: str) -> None:
    """An invalid item is refused with the field, the value and what was expected."""
    with pytest.raises(InputError) as caught:
        DictItem(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert caught.value.expected


def test_foreign_codesystem_hierarchy_and_standard_properties() -> None:
    """A CodeSystem from elsewhere: nested concepts flatten; inactive/status retired count."""
    cs = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/his-dict",
        "status": "active",
        "content": "complete",
        "concept": [
            {
                "code": "FS",
                "display": "放射",
                "concept": [
                    {
                        "code": "FS01",
                        "display": "胸部DR正位",
                        "property": [{"code": "inactive", "valueBoolean": True}],
                    },
                    {
                        "code": "FS02",
                        "display": "腰椎DR正侧位",
                        "property": [{"code": "status", "valueCode": "retired"}],
                    },
                ],
            }
        ],
    }
    validate_resource(cs, expected_type="CodeSystem")
    assert items_of(cs) == [
        DictItem("FS", "放射"),
        DictItem("FS01", "胸部DR正位", active=False),
        DictItem("FS02", "腰椎DR正侧位", active=False),
    ]


def test_items_of_names_the_path_of_a_bad_concept() -> None:
    """A concept without a display or with an unknown kind is refused by its FHIRPath."""
    cs = dictionary_codesystem(MEMBER, [CT, CBC])
    broken = copy.deepcopy(cs)
    del broken["concept"][1]["display"]
    with pytest.raises(InputError) as caught:
        items_of(broken)
    assert caught.value.field == "CodeSystem.concept[1].display"
    broken = copy.deepcopy(cs)
    broken["concept"][0]["property"][0]["valueCode"] = "xray"
    with pytest.raises(InputError) as caught:
        items_of(broken)
    assert caught.value.field == "CodeSystem.concept[0].property[0].valueCode"
    assert caught.value.value == "xray"


def test_items_of_refuses_other_resources_and_bad_names() -> None:
    """Only a CodeSystem is read; a name FHIR would not accept is refused before building."""
    with pytest.raises(InputError) as caught:
        items_of({"resourceType": "ValueSet"})
    assert caught.value.field == "resourceType"
    with pytest.raises(InputError) as caught:
        dictionary_codesystem(MEMBER, [CT], name="项目字典")
    assert caught.value.field == "name"
    with pytest.raises(InputError) as caught:
        dictionary_codesystem("hosp member", [CT])
    assert caught.value.field == "institution"


def test_empty_dictionary_is_valid() -> None:
    """A dictionary without items is a valid CodeSystem with count 0 and no concept array."""
    cs = dictionary_codesystem(MEMBER, [])
    validate_resource(cs, expected_type="CodeSystem")
    assert cs["count"] == 0
    assert "concept" not in cs
    assert items_of(cs) == []
