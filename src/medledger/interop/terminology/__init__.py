"""Item dictionaries (基础字典) and their mappings (项目字典对照) as FHIR R4 terminology.

Each institution's exam and lab items form one CodeSystem (:mod:`.codesystem`); the mapping
from one institution's dictionary to another's is one ConceptMap (:mod:`.conceptmap`).
:mod:`.translate` answers ``ConceptMap/$translate`` and gives the gateway a one-lookup
:class:`Translator`; :mod:`.tables` imports and exports both as CSV or XLSX; :mod:`.suggest`
proposes mappings from normalised names (:mod:`.names`) for a person to confirm.

Everything here is pure: resources are plain dicts, files are bytes, nothing is stored.
"""

from __future__ import annotations

from medledger.interop.terminology.codesystem import DictItem, dictionary_codesystem, items_of
from medledger.interop.terminology.conceptmap import (
    EQUIVALENCES,
    Equivalence,
    Mapping,
    concept_map,
    concept_map_url,
    pairs_of,
    with_mapping,
    without_mapping,
)
from medledger.interop.terminology.names import ItemName, analyse, normalize
from medledger.interop.terminology.suggest import Candidate, Suggestion, compare, suggest
from medledger.interop.terminology.tables import (
    read_dictionary,
    read_mappings,
    write_dictionary,
    write_mappings,
)
from medledger.interop.terminology.translate import Match, Translator, translate

__all__ = [
    "EQUIVALENCES",
    "Candidate",
    "DictItem",
    "Equivalence",
    "ItemName",
    "Mapping",
    "Match",
    "Suggestion",
    "Translator",
    "analyse",
    "compare",
    "concept_map",
    "concept_map_url",
    "dictionary_codesystem",
    "items_of",
    "normalize",
    "pairs_of",
    "read_dictionary",
    "read_mappings",
    "suggest",
    "translate",
    "with_mapping",
    "without_mapping",
    "write_dictionary",
    "write_mappings",
]
