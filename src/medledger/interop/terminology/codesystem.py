"""Item dictionaries (基础字典) as FHIR R4 CodeSystem resources, one per institution.

A :class:`DictItem` is one exam or lab item of an institution's own dictionary (e.g. the
member hospital's 胸部CT平扫 ``JC0101``). :func:`dictionary_codesystem` turns a dictionary into
a CodeSystem whose url is :func:`medledger.interop.model.code_system` of the institution, and
:func:`items_of` reads one back (``items_of(dictionary_codesystem(i, items)) == items``).

Concept properties declared in ``CodeSystem.property``: ``kind`` (one of
:data:`medledger.interop.model.KINDS`), ``active`` (boolean), ``pinyin`` (拼音简码), ``loinc``
(a LOINC Coding) and ``national`` (国家/医保项目编码). Aliases (别名) are designations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from medledger.errors import InputError
from medledger.interop.model import KINDS, Kind, code_system
from medledger.interop.terminology._checks import (
    check_code,
    check_instance,
    check_optional_text,
    check_resource,
    check_text,
    get_list,
    get_str,
    need_str,
    put_texts,
)

__all__ = [
    "LOINC_SYSTEM",
    "SYNONYM_USE",
    "DictItem",
    "check_institution",
    "check_name",
    "default_name",
    "dictionary_codesystem",
    "items_of",
]

LOINC_SYSTEM = "http://loinc.org"
SYNONYM_USE: dict[str, str] = {
    "system": "http://snomed.info/sct",
    "code": "900000000000013009",
    "display": "Synonym",
}
"""The designation use of an alias (别名): SNOMED CT "synonym", as FHIR R4 suggests."""

_LOINC = re.compile(r"\d{1,7}-\d")
_INSTITUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}")
_NAME = re.compile(r"[A-Z][A-Za-z0-9_]{0,254}")
_ALIAS_SEPARATORS = ("|", "｜")
_PROPERTIES: list[dict[str, str]] = [
    {
        "code": "kind",
        "description": "类别: lab radiology ultrasound endoscopy pathology",
        "type": "code",
    },
    {
        "code": "active",
        "description": "是否启用 (false: 停用, kept for old orders)",
        "type": "boolean",
    },
    {"code": "pinyin", "description": "拼音简码", "type": "string"},
    {"code": "loinc", "description": "LOINC code of the item", "type": "Coding"},
    {"code": "national", "description": "国家/医保项目编码", "type": "string"},
]


@dataclass(frozen=True)
class DictItem:
    """One item of an institution's dictionary. Invalid values raise InputError naming the field.

    ``aliases`` may not contain ``|`` (the alias separator of CSV and XLSX tables).
    """

    code: str
    display: str
    kind: Kind | None = None
    pinyin: str | None = None
    aliases: tuple[str, ...] = ()
    active: bool = True
    loinc: str | None = None
    national_code: str | None = None

    def __post_init__(self) -> None:
        """Check every field, so that no invalid item exists anywhere."""
        check_code(self.code, "code")
        check_text(self.display, "display")
        if self.kind is not None and self.kind not in KINDS:
            raise InputError(
                f"kind: unknown item kind {self.kind!r}",
                field="kind",
                value=self.kind,
                expected="one of " + ", ".join(KINDS),
            )
        if self.pinyin is not None:
            check_code(self.pinyin, "pinyin")
        if not isinstance(self.aliases, tuple):
            object.__setattr__(self, "aliases", tuple(self.aliases))
        for index, alias in enumerate(self.aliases):
            check_text(alias, f"aliases[{index}]", "alias")
            if any(sep in alias for sep in _ALIAS_SEPARATORS):
                raise InputError(
                    f"aliases[{index}]: an alias may not contain '|'",
                    field=f"aliases[{index}]",
                    value=alias,
                    expected="an alias without '|'",
                )
        if len(set(self.aliases)) != len(self.aliases):
            raise InputError(
                "aliases: an alias is listed twice",
                field="aliases",
                value=list(self.aliases),
                expected="distinct aliases",
            )
        if not isinstance(self.active, bool):
            raise InputError(
                "active: expected true or false",
                field="active",
                value=self.active,
                expected="a boolean",
            )
        if self.loinc is not None and not (
            isinstance(self.loinc, str) and _LOINC.fullmatch(self.loinc)
        ):
            raise InputError(
                f"loinc: {self.loinc!r} is not a LOINC code",
                field="loinc",
                value=self.loinc,
                expected="a LOINC code like 58410-2",
            )
        if self.national_code is not None:
            check_code(self.national_code, "national_code")


def check_institution(value: object, field: str = "institution") -> str:
    """Return ``value`` if it is an institution id usable in urls (e.g. ``hosp-central``)."""
    if not isinstance(value, str) or not _INSTITUTION.fullmatch(value):
        raise InputError(
            f"{field}: {value!r} is not an institution id",
            field=field,
            value=value,
            expected="letters, digits, '-' and '.', at most 64",
        )
    return value


def default_name(prefix: str, *institutions: str) -> str:
    """Derive a FHIR computer-friendly name from words of ids, e.g. ``DictHospMemberEast``."""
    words = [w for inst in institutions for w in re.split(r"[^A-Za-z0-9]+", inst) if w]
    return prefix + "".join(w[:1].upper() + w[1:] for w in words)


def check_name(value: str | None, default: str) -> str:
    """Return the resource ``name`` (``default`` if None): a FHIR computer-friendly name."""
    name = default if value is None else value
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"name: {name!r} is not a computer-friendly name",
            field="name",
            value=name,
            expected="a letter A-Z then letters, digits or _",
        )
    return name


def _concept(item: DictItem) -> dict[str, Any]:
    """Render one item as a CodeSystem concept."""
    concept: dict[str, Any] = {"code": item.code, "display": item.display}
    if item.aliases:
        concept["designation"] = [
            {"language": "zh-CN", "use": dict(SYNONYM_USE), "value": a} for a in item.aliases
        ]
    props: list[dict[str, Any]] = []
    if item.kind is not None:
        props.append({"code": "kind", "valueCode": item.kind})
    props.append({"code": "active", "valueBoolean": item.active})
    if item.pinyin is not None:
        props.append({"code": "pinyin", "valueString": item.pinyin})
    if item.loinc is not None:
        props.append({"code": "loinc", "valueCoding": {"system": LOINC_SYSTEM, "code": item.loinc}})
    if item.national_code is not None:
        props.append({"code": "national", "valueString": item.national_code})
    concept["property"] = props
    return concept


def dictionary_codesystem(
    institution: str,
    items: Iterable[DictItem],
    *,
    name: str | None = None,
    title: str | None = None,
    version: str | None = None,
    publisher: str | None = None,
) -> dict[str, Any]:
    """Build the CodeSystem of one institution's dictionary (content ``complete``).

    ``name`` defaults to ``Dict`` + the camel-cased institution id. Raise InputError naming the
    code if two items share a code.
    """
    check_institution(institution)
    concepts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        check_instance(item, DictItem, f"items[{index}]")
        _add_once(seen, item.code, f"items[{index}]", f"items[{index}].code")
        concepts.append(_concept(item))
    cs: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": code_system(institution),
        "name": check_name(name, default_name("Dict", institution)),
        "status": "active",
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "property": [dict(p) for p in _PROPERTIES],
    }
    put_texts(cs, version=version, title=title, publisher=publisher)
    if concepts:
        cs["concept"] = concepts
    return cs


def _walk(concepts: list[dict[str, Any]], where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield every concept with its FHIRPath, children (a hierarchy) after their parent."""
    for index, concept in enumerate(concepts):
        path = f"{where}[{index}]"
        yield concept, path
        yield from _walk(get_list(concept, "concept", path), f"{path}.concept")


def _item(concept: dict[str, Any], path: str) -> DictItem:
    """Read one concept as a DictItem; errors name the concept's FHIRPath."""
    code = check_code(concept.get("code"), f"{path}.code")
    display = check_text(concept.get("display"), f"{path}.display")
    fields: dict[str, Any] = {}
    for index, prop in enumerate(get_list(concept, "property", path)):
        where = f"{path}.property[{index}]"
        key = need_str(prop, "code", where)
        if key == "kind":
            kind = prop.get("valueCode")
            if kind not in KINDS:
                raise InputError(
                    f"{where}.valueCode: unknown item kind {kind!r}",
                    field=f"{where}.valueCode",
                    value=kind,
                    expected="one of " + ", ".join(KINDS),
                )
            fields["kind"] = cast(Kind, kind)
        elif key in ("active", "inactive"):
            flag = prop.get("valueBoolean")
            if not isinstance(flag, bool):
                raise InputError(
                    f"{where}.valueBoolean: expected true or false",
                    field=f"{where}.valueBoolean",
                    value=flag,
                    expected="a boolean",
                )
            fields["active"] = flag if key == "active" else not flag
        elif key == "status" and prop.get("valueCode") in ("retired", "deprecated"):
            fields["active"] = False
        elif key == "pinyin":
            fields["pinyin"] = get_str(prop, "valueString", where)
        elif key == "national":
            fields["national_code"] = get_str(prop, "valueString", where)
        elif key == "loinc":
            coding = prop.get("valueCoding")
            fields["loinc"] = coding.get("code") if isinstance(coding, dict) else None
    aliases = []
    for index, designation in enumerate(get_list(concept, "designation", path)):
        use = designation.get("use")
        if use is None or (isinstance(use, dict) and use.get("code") == SYNONYM_USE["code"]):
            where = f"{path}.designation[{index}].value"
            alias = check_optional_text(designation.get("value"), where, "alias")
            if alias is not None and alias not in aliases:
                aliases.append(alias)
    fields["aliases"] = tuple(aliases)
    try:
        return DictItem(code=code, display=display, **fields)
    except InputError as exc:
        where = f"{path}.{exc.field}"
        raise InputError(
            f"{where}: {exc.message}", field=where, value=exc.value, expected=exc.expected
        ) from None


def items_of(codesystem: dict[str, Any]) -> list[DictItem]:
    """Read the items of a dictionary CodeSystem, in order (a hierarchy is flattened).

    Raise InputError naming the element path for anything unreadable and naming the code if
    two concepts share a code.
    """
    check_resource(codesystem, "CodeSystem")
    items: list[DictItem] = []
    seen: set[str] = set()
    for concept, path in _walk(get_list(codesystem, "concept", "CodeSystem"), "CodeSystem.concept"):
        item = _item(concept, path)
        _add_once(seen, item.code, f"{path}.code", f"{path}.code")
        items.append(item)
    return items


def _add_once(seen: set[str], code: str, where: str, field: str) -> None:
    """Add ``code`` to ``seen``; raise InputError naming ``field`` if it is there already."""
    if code in seen:
        raise InputError(
            f"{where}: code {code!r} appears twice",
            field=field,
            value=code,
            expected="each code once in a dictionary",
        )
    seen.add(code)
