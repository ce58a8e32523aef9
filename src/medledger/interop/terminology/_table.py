"""The machinery of table import shared by dictionaries and mappings: headers, cells, problems.

A table's columns are found by their header text in either language; each cell is addressed as
``row 7, column 项目代码`` (the header as the file writes it), and every problem of an import
is collected so that one InputError reports them all and nothing is imported.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from medledger.errors import InputError
from medledger.interop.terminology._rows import Row

__all__ = [
    "Cells",
    "Columns",
    "Language",
    "Problems",
    "build",
    "find_columns",
    "fold",
    "header_row",
    "row_cells",
    "word",
    "yes_no",
]

Language = Literal["zh", "en"]
Columns = dict[str, tuple[str, str, tuple[str, ...]]]
"""Canonical key → (English header, Chinese header, other accepted spellings)."""
Cells = dict[str, tuple[str, str]]
"""Canonical key → (cell text, ``row n, column name``)."""

_MAX_PROBLEMS = 20
_T = TypeVar("_T")
_TRUE = frozenset({"1", "是", "y", "yes", "true", "t", "启用", "有效", "在用", "active"})
_FALSE = frozenset({"0", "否", "n", "no", "false", "f", "停用", "无效", "作废", "inactive"})


def fold(text: str) -> str:
    """Fold a header or value for lookup: width, case, spaces, ``_`` and ``-`` do not matter."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not c.isspace() and c not in "_-")


class Problems:
    """Collect the problems of an import, to raise them together (all or nothing)."""

    def __init__(self) -> None:
        """Start with no problems."""
        self.items: list[dict[str, Any]] = []
        self.first: InputError | None = None

    def add(self, error: InputError) -> None:
        """Record one problem (the first 20 are listed)."""
        self.first = self.first or error
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(
                {"field": error.field, "value": error.value, "message": error.message}
            )

    def raise_any(self) -> None:
        """Raise one InputError for all problems recorded, if any: the first names the field."""
        first = self.first
        if first is None:
            return
        more = f" (and {len(self.items) - 1} more problems)" if len(self.items) > 1 else ""
        raise InputError(
            first.message + more,
            field=first.field,
            value=first.value,
            expected=first.expected,
            problems=self.items,
        )


def find_columns(
    rows: list[Row], columns: Columns, required: tuple[str, ...], kind: str
) -> tuple[dict[str, int], list[str]]:
    """Find the columns of the header row (the first row): {key: index} and the header texts.

    Columns nobody knows are ignored; a known column twice or a required column missing is an
    InputError.
    """
    if not rows:
        raise InputError(
            f"header: the {kind} table is empty",
            field="header",
            value=None,
            expected="a header row, then one row per entry",
        )
    spellings = {fold(n): key for key, (en, zh, more) in columns.items() for n in (en, zh, *more)}
    number, names = rows[0]
    found: dict[str, int] = {}
    for index, name in enumerate(names):
        key = spellings.get(fold(name)) if name else None
        if key is None:
            continue
        if key in found:
            where = f"row {number}, column {name}"
            raise InputError(
                f"{where}: the column is given twice", field=where, value=name,
                expected="each column once",
            )  # fmt: skip
        found[key] = index
    for key in required:
        if key not in found:
            en, zh, _ = columns[key]
            raise InputError(
                f"header: the {kind} table has no column {en} / {zh}",
                field="header",
                value=names,
                expected=f"a column {en} or {zh}",
            )
    return found, names


def row_cells(row: Row, found: dict[str, int], names: list[str]) -> Cells:
    """Return the cells of one row by key; non-empty cells beyond the header are an error."""
    number, cells = row
    if len(cells) > len(names) and any(cells[len(names) :]):
        where = f"row {number}"
        raise InputError(
            f"{where}: {len(cells)} cells but the header has {len(names)} columns",
            field=where,
            value=cells,
            expected="no more cells than header columns (is a comma missing its quotes?)",
        )
    return {
        key: (cells[index] if index < len(cells) else "", f"row {number}, column {names[index]}")
        for key, index in found.items()
    }


def word(cells: Cells, key: str, words: dict[str, str], expected: str) -> str | None:
    """Read a cell holding one of a fixed set of words (either language); None if blank."""
    text, where = cells.get(key, ("", ""))
    if not text:
        return None
    value = words.get(fold(text))
    if value is None:
        raise InputError(
            f"{where}: {text!r} is not recognised", field=where, value=text, expected=expected
        )
    return value


def yes_no(cells: Cells, key: str) -> bool:
    """Read a yes/no cell; blank means yes (an item is active unless it says otherwise)."""
    text, where = cells.get(key, ("", ""))
    folded = fold(text)
    if not folded or folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise InputError(
        f"{where}: {text!r} is not yes or no",
        field=where,
        value=text,
        expected="是/否, 启用/停用, 1/0 or true/false",
    )


def build(make: Callable[[], _T], cells: Cells) -> _T:
    """Run a constructor, naming the row and column in any InputError it raises."""
    try:
        return make()
    except InputError as exc:
        base = (exc.field or "").split("[", 1)[0]
        where = cells[base][1] if base in cells else next(iter(cells.values()))[1]
        text = exc.message.split(": ", 1)[-1]
        raise InputError(
            f"{where}: {text}", field=where, value=exc.value, expected=exc.expected
        ) from None


def header_row(columns: Columns, language: Language) -> list[str]:
    """Return the header row of an export in ``language`` (``zh`` or ``en``)."""
    if language not in ("zh", "en"):
        raise InputError(
            f"language: unknown header language {language!r}",
            field="language",
            value=language,
            expected="zh or en",
        )
    return [zh if language == "zh" else en for en, zh, _ in columns.values()]
