"""DictionaryService on a real node: record ids, ownership, versions and the translator cache."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError, NotFound
from medledger.interop.dictionaries import DictionaryService, dictionary_id, mapping_id
from medledger.interop.model import Coded, code_system
from medledger.interop.terminology import (
    DictItem,
    Mapping,
    dictionary_codesystem,
    read_dictionary,
    read_mappings,
)
from medledger.ledger.node import LedgerNode
from medledger.records.guard import SystemGuard
from medledger.records.service import RecordService
from tests.interop.terminology.strategies import dictionaries, mapping_lists

from .conftest import CENTRAL_CSV, MAPPING_CSV, MEMBER_CSV

MEMBER, CENTRAL = "hosp-member-east", "hosp-central"  # 示例区中医院, 示例市第一人民医院
EAST, CITY = code_system(MEMBER), code_system(CENTRAL)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
institutions = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}", fullmatch=True)


def _samples(dicts: DictionaryService) -> None:
    """Store both sample dictionaries and their mapping, as the node."""
    dicts.save_dictionary(MEMBER, read_dictionary(MEMBER_CSV))
    dicts.save_dictionary(CENTRAL, read_dictionary(CENTRAL_CSV))
    dicts.save_mapping(MEMBER, CENTRAL, read_mappings(MAPPING_CSV))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DictionaryService]:
    """One node per module for the property tests (each example writes new versions)."""
    node = LedgerNode.init(tmp_path_factory.mktemp("n") / "d", node=CENTRAL, block_max_wait_ms=0)
    try:
        yield DictionaryService(RecordService.open(node))
    finally:
        node.close()


@given(a=institutions, b=institutions)
def test_record_ids_are_fhir_ids_and_never_collide(a: str, b: str) -> None:
    """Dictionary and mapping ids are valid FHIR ids, distinct for distinct institutions."""
    for rid in (dictionary_id(a), mapping_id(a, b), mapping_id(b, a)):
        assert FHIR_ID.fullmatch(rid), rid
    assert (dictionary_id(a) == dictionary_id(b)) == (a == b)
    assert (mapping_id(a, b) == mapping_id(b, a)) == (a == b)


def test_readable_ids_for_ordinary_institutions() -> None:
    """Ordinary institution ids give readable record ids an engineer can type."""
    assert dictionary_id(MEMBER) == "dict-hosp-member-east"
    assert mapping_id(MEMBER, CENTRAL) == "map-hosp-member-east.hosp-central"
    assert mapping_id("a.b", "c") != mapping_id("a", "b.c")
    long = "h" * 64
    assert len(dictionary_id(long)) == 64
    assert dictionary_id(long) != dictionary_id(long[:-1])
    with pytest.raises(InputError) as caught:
        mapping_id(MEMBER, "bad id")
    assert caught.value.field == "target"


@settings(max_examples=20)
@given(items=dictionaries, pairs=mapping_lists())
def test_saved_items_and_pairs_read_back(
    shared: DictionaryService, items: list[DictItem], pairs: list[Mapping]
) -> None:
    """Whatever is saved is what loads back, and saving it again writes no new version."""
    stored = shared.save_dictionary("hosp-prop", items)
    assert shared.dictionary_items("hosp-prop") == items
    assert shared.save_dictionary("hosp-prop", items).version == stored.version
    shared.save_mapping("hosp-prop-a", "hosp-prop-b", pairs)
    assert shared.mapping_pairs("hosp-prop-a", "hosp-prop-b") == pairs


def test_translator_sees_a_mapping_right_after_its_import(dicts: DictionaryService) -> None:
    """The cached translator is rebuilt once a ConceptMap is written, and only then."""
    before = dicts.translator()
    assert before.lookup(EAST, "JC0101", CITY) == ()
    dicts.save_dictionary(MEMBER, read_dictionary(MEMBER_CSV))
    assert dicts.translator() is before  # a CodeSystem write keeps the cache
    dicts.save_mapping(MEMBER, CENTRAL, read_mappings(MAPPING_CSV))
    after = dicts.translator()
    assert after is not before
    assert after.lookup(EAST, "JC0101", CITY) == (Coded(CITY, "300101", "胸部CT平扫"),)
    assert dicts.translator() is after
    table = "本院代码,对照代码,对照关系\nJC0101,300102,等同\n".encode()
    dicts.save_mapping(MEMBER, CENTRAL, read_mappings(table))
    assert dicts.translator().lookup(EAST, "JC0101", CITY) == (Coded(CITY, "300102"),)


def test_unreadable_conceptmap_does_not_break_the_translator(dicts: DictionaryService) -> None:
    """A ConceptMap written through FHIR that the terminology code cannot read is left out."""
    _samples(dicts)
    odd = {
        "resourceType": "ConceptMap",
        "status": "draft",
        "group": [
            {
                "source": "urn:a",
                "element": [{"code": "x", "target": [{"equivalence": "equivalent"}]}],
            }
        ],
    }
    dicts.service.create("ConceptMap", odd)
    assert dicts.translator().lookup(EAST, "JC0102", CITY) == (Coded(CITY, "300102", "胸部CT增强"),)


def test_records_belong_to_their_institution(dicts: DictionaryService) -> None:
    """The central node stores the member's dictionary and mapping as the member's records."""
    _samples(dicts)
    facts = dicts.service.store.facts
    assert facts("CodeSystem", dictionary_id(MEMBER)).owner == MEMBER
    assert facts("CodeSystem", dictionary_id(CENTRAL)).owner == CENTRAL
    assert facts("ConceptMap", mapping_id(MEMBER, CENTRAL)).owner == MEMBER


def test_reimport_keeps_title_and_counts_versions(dicts: DictionaryService) -> None:
    """A new version keeps the stored title; a changed table is version 2, created False."""
    items = read_dictionary(MEMBER_CSV)
    titled = dictionary_codesystem(MEMBER, items[:3], title="示例区中医院检查检验项目字典")
    dicts.service.update("CodeSystem", dictionary_id(MEMBER), titled, guard=SystemGuard(MEMBER))
    stored = dicts.save_dictionary(MEMBER, items)
    assert (stored.version, stored.created, stored.changed, stored.items) == (2, False, True, 49)
    assert dicts.load_dictionary(MEMBER)["title"] == "示例区中医院检查检验项目字典"
    assert isinstance(stored.ledger_index, int)


def test_mapping_codes_are_checked_against_stored_dictionaries(dicts: DictionaryService) -> None:
    """A source code missing from the member dictionary is refused, naming code and field."""
    _samples(dicts)
    table = "本院代码,对照代码\nJC0101,300101\nXX0001,300102\nXX0002,300102\n".encode()
    with pytest.raises(InputError) as caught:
        dicts.save_mapping(MEMBER, CENTRAL, read_mappings(table))
    assert caught.value.field == "source_code"
    assert caught.value.value == "XX0001"
    assert caught.value.details["missing"] == ["XX0001", "XX0002"]
    assert len(dicts.mapping_pairs(MEMBER, CENTRAL)) == 49  # unchanged


def test_missing_records_are_not_found(dicts: DictionaryService) -> None:
    """Reading a dictionary or mapping never imported is NotFound naming what was asked."""
    with pytest.raises(NotFound) as dictionary:
        dicts.dictionary_items(MEMBER)
    assert dictionary.value.field == "institution"
    assert dictionary.value.value == MEMBER
    with pytest.raises(NotFound) as mapping:
        dicts.suggestions(MEMBER, CENTRAL)
    assert mapping.value.value == MEMBER


def test_suggestions_skip_mapped_and_unmatched_codes(dicts: DictionaryService) -> None:
    """Every member item is covered by the sample mapping, so nothing is left to suggest."""
    _samples(dicts)
    assert dicts.suggestions(MEMBER, CENTRAL) == []
    table = "本院代码,对照代码\nJC0101,300101\n".encode()
    dicts.save_mapping(MEMBER, CENTRAL, read_mappings(table))
    left = dicts.suggestions(MEMBER, CENTRAL, limit=1)
    assert len(left) == 48
    by_code = {s.source.code: s for s in left}
    assert by_code["JC0102"].candidates[0].target.code == "300102"


def test_only_the_two_institutions_of_a_mapping_decide_it(dicts: DictionaryService) -> None:
    """A ConceptMap another institution stored (even under the pair's fixed id, before the
    pair imported theirs) never changes how the member's codes translate; one the target
    institution publishes for its own dictionary is used."""
    from medledger.interop.terminology import concept_map

    other = "hosp-other"
    rogue = concept_map(MEMBER, CENTRAL, [Mapping("JC0101", "胸部CT平扫", "300199", "错误项目")])
    rogue["id"] = mapping_id(MEMBER, CENTRAL)
    dicts.service.update("ConceptMap", rogue["id"], rogue, guard=SystemGuard(other))
    assert dicts.service.store.facts("ConceptMap", rogue["id"]).owner == other
    assert dicts.translator().lookup(EAST, "JC0101", CITY) == ()
    published = concept_map(MEMBER, CENTRAL, [Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT")])
    published["id"] = "central-publishes-east"
    dicts.service.update("ConceptMap", published["id"], published, guard=SystemGuard(CENTRAL))
    assert dicts.translator().lookup(EAST, "JC0101", CITY) == (Coded(CITY, "300101", "胸部CT"),)
