"""Import and export dictionaries and mappings as CSV or XLSX, with Chinese or English headers.

Dictionary columns: ``code,display,kind,pinyin,aliases,active,loinc,national_code`` or
``项目代码,项目名称,类别,拼音码,别名,是否启用,LOINC,国家编码`` (only code and name are
required; common variants such as 编码, 名称, 项目类别, 医保编码 are recognised too; columns
nobody knows, e.g. 单价, are ignored). Mapping columns:
``source_code,source_display,target_code,target_display,equivalence,comment`` or
``本院代码,本院名称,对照代码,对照名称,对照关系,备注``.

Values may be written in either language (类别 放射 or ``radiology``; 对照关系 等同 or
``equivalent``; 是否启用 是/否). Several aliases share one cell, separated by ``|``. A mapping
row without a target code and without a relation is "not mapped yet" and is skipped; only
``unmatched`` (无对照) records that a code has no counterpart.

Import is all or nothing: any bad cell raises one InputError whose field reads e.g.
``row 7, column 项目代码`` and whose ``problems`` detail lists up to 20 problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, TypeVar, cast

from medledger.errors import InputError
from medledger.interop.model import KINDS, Kind
from medledger.interop.terminology._rows import Format, read_rows, write_rows
from medledger.interop.terminology._table import (
    Cells,
    Columns,
    Language,
    Problems,
    build,
    find_columns,
    header_row,
    row_cells,
    word,
    yes_no,
)
from medledger.interop.terminology.codesystem import DictItem
from medledger.interop.terminology.conceptmap import EQUIVALENCES, Equivalence, Mapping

__all__ = [
    "DICTIONARY_COLUMNS",
    "MAPPING_COLUMNS",
    "Language",
    "read_dictionary",
    "read_mappings",
    "write_dictionary",
    "write_mappings",
]

DICTIONARY_COLUMNS: Columns = {
    "code": ("code", "项目代码", ("代码", "编码", "项目编码", "项目编号", "item_code")),
    "display": ("display", "项目名称", ("名称", "name", "item_name", "项目")),
    "kind": ("kind", "类别", ("项目类别", "类型", "分类", "category")),
    "pinyin": ("pinyin", "拼音码", ("拼音", "拼音简码", "助记码", "pym")),
    "aliases": ("aliases", "别名", ("alias", "同义词")),
    "active": ("active", "是否启用", ("启用", "状态", "是否有效", "enabled")),
    "loinc": ("loinc", "LOINC", ("loinc_code", "LOINC码", "LOINC编码")),
    "national_code": ("national_code", "国家编码", ("医保编码", "国家医保编码", "医保项目编码")),
}
MAPPING_COLUMNS: Columns = {
    "source_code": ("source_code", "本院代码", ("本院项目代码", "源代码", "本院编码")),
    "source_display": ("source_display", "本院名称", ("本院项目名称", "源名称")),
    "target_code": ("target_code", "对照代码", ("对照项目代码", "目标代码", "对照编码")),
    "target_display": ("target_display", "对照名称", ("对照项目名称", "目标名称")),
    "equivalence": ("equivalence", "对照关系", ("关系", "对应关系", "relationship")),
    "comment": ("comment", "备注", ("说明", "note", "remark")),
}

_KIND_ZH = {"lab": "检验", "radiology": "放射", "ultrasound": "超声", "endoscopy": "内镜",
            "pathology": "病理"}  # fmt: skip
_KIND_WORDS = {**{k: k for k in KINDS}, **{v: k for k, v in _KIND_ZH.items()},
               "化验": "lab", "影像": "radiology", "内窥镜": "endoscopy"}  # fmt: skip
_KINDS_EXPECTED = "检验, 放射, 超声, 内镜, 病理 or " + ", ".join(KINDS)
_EQUIV_ZH = {"relatedto": "相关", "equivalent": "等同", "equal": "相等", "wider": "更宽",
             "subsumes": "包含", "narrower": "更窄", "specializes": "被包含",
             "inexact": "近似", "unmatched": "无对照", "disjoint": "不相交"}  # fmt: skip
_EQUIV_WORDS = {**{e: e for e in EQUIVALENCES}, **{v: k for k, v in _EQUIV_ZH.items()},
                "等价": "equivalent", "一致": "equivalent", "相同": "equivalent",
                "不完全一致": "inexact", "无匹配": "unmatched"}  # fmt: skip
_EQUIV_EXPECTED = "等同, 更宽, 更窄, 近似, 无对照 … or " + ", ".join(EQUIVALENCES)
_T = TypeVar("_T")


def _text(cells: Cells, key: str) -> str:
    """The text of a cell, empty when the table has no such column."""
    return cells[key][0] if key in cells else ""


def _item(cells: Cells) -> DictItem:
    """Read one dictionary row as a DictItem."""
    kind = cast(Kind | None, word(cells, "kind", _KIND_WORDS, _KINDS_EXPECTED))
    active = yes_no(cells, "active")
    raw = _text(cells, "aliases").replace("｜", "|").split("|")
    aliases = tuple(a.strip() for a in raw if a.strip())
    return build(
        lambda: DictItem(
            code=_text(cells, "code"),
            display=_text(cells, "display"),
            kind=kind,
            pinyin=_text(cells, "pinyin") or None,
            aliases=aliases,
            active=active,
            loinc=_text(cells, "loinc") or None,
            national_code=_text(cells, "national_code") or None,
        ),
        cells,
    )


def read_dictionary(
    data: bytes, *, format: Format | None = None, encoding: str | None = None
) -> list[DictItem]:
    """Read a dictionary table (CSV or XLSX, detected); raise one InputError for any bad row.

    ``encoding`` forces a CSV encoding instead of detecting it.
    """
    problems = Problems()
    items: list[DictItem] = []
    first_row: dict[str, int] = {}
    columns, required = DICTIONARY_COLUMNS, ("code", "display")
    rows = _parse_rows(data, format, encoding, columns, required, "dictionary", _item, problems)
    for number, cells, item in rows:
        if item.code in first_row:
            where = cells["code"][1]
            problems.add(
                InputError(
                    f"{where}: code {item.code!r} is already on row {first_row[item.code]}",
                    field=where,
                    value=item.code,
                    expected="each code once in a dictionary",
                )
            )
            continue
        first_row[item.code] = number
        items.append(item)
    problems.raise_any()
    return items


def _parse_rows(
    data: bytes,
    format: Format | None,
    encoding: str | None,
    columns: Columns,
    required: tuple[str, ...],
    kind: str,
    parse: Callable[[Cells], _T],
    problems: Problems,
) -> Iterator[tuple[int, Cells, _T]]:
    """Read a table and yield (row number, cells, parsed value) for each good row after the
    header, in order; the problems of bad rows go to ``problems`` as they are met."""
    rows = read_rows(data, format=format, encoding=encoding)
    found, names = find_columns(rows, columns, required, kind)
    for row in rows[1:]:
        try:
            cells = row_cells(row, found, names)
            value = parse(cells)
        except InputError as exc:
            problems.add(exc)
            continue
        yield row[0], cells, value


def _mapping(cells: Cells) -> Mapping | None:
    """Read one mapping row; None for a row not mapped yet."""
    if not _text(cells, "target_code") and not _text(cells, "equivalence"):
        return None  # not mapped yet
    found = word(cells, "equivalence", _EQUIV_WORDS, _EQUIV_EXPECTED) or "equivalent"
    equivalence = cast(Equivalence, found)
    return build(
        lambda: Mapping(
            source_code=_text(cells, "source_code"),
            source_display=_text(cells, "source_display") or None,
            target_code=_text(cells, "target_code") or None,
            target_display=_text(cells, "target_display") or None,
            equivalence=equivalence,
            comment=_text(cells, "comment") or None,
        ),
        cells,
    )


def _conflict(
    pair: Mapping, name: str | None, seen: set[str | None]
) -> tuple[str, str, str] | None:
    """Say what is wrong with ``pair`` given the code's name and targets so far, if anything."""
    code = pair.source_code
    if pair.source_display not in (None, name):
        return (
            "source_display",
            f"{code!r} is also named {name!r}",
            f"one name for {code!r} on every row",
        )
    if pair.target_code in seen:
        return ("target_code", f"{code!r} → {pair.target_code!r} is listed twice", "each pair once")
    if seen and (pair.target_code is None or None in seen):
        return (
            "equivalence",
            f"{code!r} is marked unmatched and also mapped",
            "either target codes or one unmatched row per code",
        )
    return None


def read_mappings(
    data: bytes, *, format: Format | None = None, encoding: str | None = None
) -> list[Mapping]:
    """Read a mapping table (CSV or XLSX, detected); raise one InputError for any bad row.

    Rows of one source code must agree on its name (a blank name takes the others'); a pair may
    appear once, and an ``unmatched`` code may have no other row.
    """
    problems = Problems()
    rows = _parse_rows(
        data, format, encoding, MAPPING_COLUMNS, ("source_code",), "mapping", _mapping, problems
    )
    pairs = [(pair, cells) for _, cells, pair in rows if pair is not None]
    name_of: dict[str, str] = {}
    for pair, _ in pairs:
        if pair.source_display is not None:
            name_of.setdefault(pair.source_code, pair.source_display)
    out: list[Mapping] = []
    targets: dict[str, set[str | None]] = {}
    for pair, cells in pairs:
        name = name_of.get(pair.source_code)
        seen = targets.setdefault(pair.source_code, set())
        problem = _conflict(pair, name, seen)
        if problem is not None:
            column, text, expected = problem
            value, where = cells.get(column, cells["source_code"])
            problems.add(
                InputError(f"{where}: {text}", field=where, value=value, expected=expected)
            )
            continue
        seen.add(pair.target_code)
        out.append(replace(pair, source_display=name))
    problems.raise_any()
    return out


def write_dictionary(
    items: Iterable[DictItem],
    *,
    format: Format = "csv",
    language: Language = "zh",
    encoding: str = "utf-8-sig",
) -> bytes:
    """Write a dictionary table: CSV (UTF-8 with BOM, or ``gb18030``) or XLSX."""
    zh = language == "zh"

    def fields(item: DictItem) -> list[Any]:
        kind = "" if item.kind is None else (_KIND_ZH[item.kind] if zh else item.kind)
        active = ("是" if zh else "true") if item.active else ("否" if zh else "false")
        return [item.code, item.display, kind, item.pinyin, "|".join(item.aliases), active,
                item.loinc, item.national_code]  # fmt: skip

    sheet = "项目字典" if zh else "dictionary"
    return _write_table(DICTIONARY_COLUMNS, items, fields, format, language, encoding, sheet)


def write_mappings(
    mappings: Iterable[Mapping],
    *,
    format: Format = "csv",
    language: Language = "zh",
    encoding: str = "utf-8-sig",
) -> bytes:
    """Write a mapping table: CSV (UTF-8 with BOM, or ``gb18030``) or XLSX."""
    zh = language == "zh"

    def fields(pair: Mapping) -> list[Any]:
        relation = _EQUIV_ZH[pair.equivalence] if zh else pair.equivalence
        return [pair.source_code, pair.source_display, pair.target_code, pair.target_display,
                relation, pair.comment]  # fmt: skip

    sheet = "字典对照" if zh else "mapping"
    return _write_table(MAPPING_COLUMNS, mappings, fields, format, language, encoding, sheet)


def _write_table(
    columns: Columns,
    values: Iterable[_T],
    fields: Callable[[_T], list[Any]],
    format: Format,
    language: Language,
    encoding: str,
    sheet: str,
) -> bytes:
    """Write the header row in ``language``, then one row of ``fields(value)`` per value
    (None as an empty cell)."""
    rows: list[list[str]] = [header_row(columns, language)]
    rows += [[f or "" for f in fields(value)] for value in values]
    return write_rows(rows, format=format, encoding=encoding, sheet=sheet)
