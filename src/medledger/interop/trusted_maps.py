"""Which stored ConceptMaps translation may use.

A ConceptMap must be readable by the terminology code, and each of its groups must map from or
to the dictionary of the institution that owns the ConceptMap record: an institution publishes
mappings of its own dictionary, and no third institution can change how two others translate.
"""

from __future__ import annotations

import logging
from typing import Any

from medledger.errors import InputError
from medledger.interop.model import code_system
from medledger.interop.terminology.conceptmap import entries_of
from medledger.records.service import RecordService

__all__ = ["may_map", "readable", "usable"]

log = logging.getLogger(__name__)
CONCEPTMAP = "ConceptMap"


def usable(service: RecordService, maps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ConceptMaps translation may use: readable, and only their groups that map from
    or to the dictionary of the institution owning the record. An institution can thus
    publish mappings of its own dictionary, never change how two others translate (a map
    created under another pair's fixed id before that pair imported its own)."""
    owners = service.store.facts_many(CONCEPTMAP, [str(m.get("id")) for m in maps])
    out = []
    for cm in readable(maps):
        facts = owners.get(str(cm.get("id")))
        owner = facts.owner if facts is not None else ""
        groups = [g for g in cm.get("group", []) if may_map(g, owner)]
        if len(groups) != len(cm.get("group", [])):
            log.warning(
                "ConceptMap/%s: %d group(s) left out of translation: they map between "
                "dictionaries of institutions other than its owner",
                cm.get("id"),
                len(cm.get("group", [])) - len(groups),
            )
        if groups:
            out.append({**cm, "group": groups})
    return out


def readable(maps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ConceptMaps the terminology code can read; others are logged (by id) and skipped."""
    out = []
    for cm in maps:
        try:
            entries_of(cm)
        except InputError as exc:
            log.warning("ConceptMap/%s left out of translation: %s", cm.get("id"), exc.field)
            continue
        out.append(cm)
    return out


def may_map(group: Any, owner: str) -> bool:
    """Whether the owner of a ConceptMap may publish this group: it maps from or to the
    owner's dictionary, or between systems that are no institution's dictionary."""
    if not isinstance(group, dict):
        return False
    prefix = code_system("")
    ends = [str(group.get(k) or "") for k in ("source", "target")]
    dictionaries = [e.removeprefix(prefix) for e in ends if e.startswith(prefix)]
    return not dictionaries or owner in dictionaries
