"""Read and write the rows of a CSV or XLSX table, whatever Excel on a Chinese desktop produced.

CSV may be UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text", tab
separated) or GB18030/GBK (what Excel on Chinese Windows saves as "CSV"); the encoding is
detected. UTF-8 is tried before GB18030: a GB18030 file is very rarely valid UTF-8 once it holds
a few Chinese characters, and never when its header row is Chinese.

CSV cells that a spreadsheet would run as a formula (leading ``= + - @``) are written with a
leading apostrophe, and that apostrophe is removed again on reading, so exports cannot inject
formulas and still round-trip. Every failure is an InputError naming the row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
import warnings
import zipfile
from collections.abc import Sequence
from typing import Literal

import openpyxl  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from medledger.errors import InputError

__all__ = ["MAX_BYTES", "MAX_ROWS", "Format", "Row", "read_rows", "write_rows"]

Format = Literal["csv", "xlsx"]
Row = tuple[int, list[str]]
"""A row number (1-based, as a spreadsheet shows it) and its trimmed cells."""

MAX_BYTES = 32 * 1024 * 1024
"""Largest table accepted; a dictionary of 100,000 items is far below it."""
MAX_ROWS = 200_000
"""Most rows accepted in one table."""

_FORMULA_START = frozenset("=+-@")
_ESCAPED_START = _FORMULA_START | {"'"}
_ENCODINGS = ("utf-8-sig", "gb18030")
_ENCODING_EXPECTED = "UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK"
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
    (b"\x84\x31\x95\x33", "gb18030"),
)


def detect_format(data: bytes) -> Format:
    """Tell an XLSX workbook (a zip archive) from CSV text; refuse the legacy binary .xls."""
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            "file: this is a legacy Excel .xls workbook",
            field="file",
            value=data[:8],
            expected="an .xlsx workbook or a CSV file (in Excel: 另存为 .xlsx 或 CSV)",
        )
    return "csv"


def _decode(data: bytes, encoding: str | None) -> str:
    """Decode CSV bytes with ``encoding`` or the detected one; errors name the row."""
    if encoding is None:
        for bom, name in _BOMS:
            if data.startswith(bom):
                encoding = name
                data = data[len(bom) :] if name == "gb18030" else data
                break
    candidates = (encoding,) if encoding is not None else ("utf-8", "gb18030")
    error: UnicodeDecodeError | None = None
    for name in candidates:
        try:
            return data.decode(name)
        except UnicodeDecodeError as exc:
            error = exc  # the last candidate tried reports the place
        except LookupError:
            raise InputError(
                f"encoding: unknown encoding {name!r}",
                field="encoding",
                value=name,
                expected=_ENCODING_EXPECTED,
            ) from None
    assert error is not None
    row = data[: error.start].count(b"\n") + 1
    raise InputError(
        f"row {row}: the file is not text in {' or '.join(candidates)}",
        field=f"row {row}",
        value=data[error.start : error.start + 8],
        expected=_ENCODING_EXPECTED,
    )


def _unescape(cell: str) -> str:
    """Undo :func:`_escape`: drop the apostrophe that guarded a formula-like cell."""
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in _ESCAPED_START else cell


def _check_count(number: int, what: str) -> None:
    """Refuse row ``number`` of a ``what`` (table, sheet) past :data:`MAX_ROWS`."""
    if number > MAX_ROWS:
        raise InputError(
            f"row {number}: the {what} has more than {MAX_ROWS} rows",
            field=f"row {number}",
            value=number,
            expected=f"at most {MAX_ROWS} rows",
        )


def _read_csv(data: bytes, encoding: str | None) -> list[Row]:
    """Read CSV bytes into numbered, trimmed, non-blank rows."""
    text = _decode(data, encoding)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    rows: list[Row] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            _check_count(number, "table")
            cells = [_unescape(cell.strip()) for cell in record]
            if any(cells):
                rows.append((number, cells))
    except csv.Error as exc:
        raise InputError(
            f"row {number + 1}: not valid CSV ({exc})",
            field=f"row {number + 1}",
            value=None,
            expected="comma separated values",
        ) from None
    return rows


def _cell_text(value: object) -> str:
    """Render one XLSX cell value as the text a person sees in Excel."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def _read_xlsx(data: bytes) -> list[Row]:
    """Read the first sheet of an XLSX workbook into numbered, trimmed, non-blank rows."""
    rows: list[Row] = []
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it skips; the values are still read.
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                sheet = book.worksheets[0]
                sheet.reset_dimensions()  # some writers declare a wrong used range: read it all
                for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1):
                    _check_count(number, "sheet")
                    cells = [_cell_text(v) for v in values]
                    if any(cells):
                        rows.append((number, cells))
            finally:
                book.close()
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise InputError(
            f"file: not a readable .xlsx workbook ({exc})",
            field="file",
            value=data[:8],
            expected="an .xlsx workbook",
        ) from None
    except Exception as exc:  # openpyxl raises KeyError, ValueError, XML errors… on bad files
        raise InputError(
            f"file: not a readable .xlsx workbook ({type(exc).__name__})",
            field="file",
            value=data[:8],
            expected="an .xlsx workbook saved by Excel, WPS or LibreOffice",
        ) from None
    return rows


def read_rows(
    data: bytes, *, format: Format | None = None, encoding: str | None = None
) -> list[Row]:
    """Return the non-blank rows of a CSV or XLSX table (``format`` None: detect it).

    ``encoding`` forces a CSV encoding instead of detecting it.
    """
    if not isinstance(data, bytes | bytearray):
        raise InputError(
            "file: expected the file's bytes",
            field="file",
            value=type(data).__name__,
            expected="bytes",
        )
    if len(data) > MAX_BYTES:
        raise InputError(
            f"file: {len(data)} bytes is too large",
            field="file",
            value=len(data),
            expected=f"at most {MAX_BYTES} bytes",
        )
    data = bytes(data)
    chosen = detect_format(data) if format is None else format
    if chosen == "xlsx":
        return _read_xlsx(data)
    if chosen == "csv":
        return _read_csv(data, encoding)
    raise InputError(
        f"format: unknown table format {chosen!r}",
        field="format",
        value=chosen,
        expected="csv or xlsx",
    )


def _escape(cell: str) -> str:
    """Guard a cell a spreadsheet would run as a formula with a leading apostrophe."""
    return "'" + cell if cell and cell[0] in _ESCAPED_START else cell


def _width(texts: Sequence[str]) -> float:
    """Column width in Excel units: wide (CJK) characters count twice."""
    longest = max(
        (sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in t) for t in texts),
        default=8,
    )
    return float(min(max(longest + 2, 8), 60))


def write_rows(
    rows: Sequence[Sequence[str]],
    *,
    format: Format = "csv",
    encoding: str = "utf-8-sig",
    sheet: str = "Sheet1",
) -> bytes:
    """Write rows (the header first) as CSV in ``encoding`` (``utf-8-sig`` or ``gb18030``) or XLSX.

    XLSX cells are all text cells, so codes keep their leading zeros and no text becomes a
    formula.
    """
    if format == "csv":
        if encoding not in _ENCODINGS:
            raise InputError(
                f"encoding: cannot write CSV as {encoding!r}",
                field="encoding",
                value=encoding,
                expected=" or ".join(_ENCODINGS),
            )
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow([_escape(cell) for cell in row])
        return out.getvalue().encode(encoding)
    if format != "xlsx":
        raise InputError(
            f"format: unknown table format {format!r}",
            field="format",
            value=format,
            expected="csv or xlsx",
        )
    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet(sheet)
    columns = max((len(r) for r in rows), default=0)
    for col in range(columns):
        texts = [r[col] for r in rows if col < len(r)]
        ws.column_dimensions[get_column_letter(col + 1)].width = _width(texts)
    bold = Font(bold=True)
    for number, row in enumerate(rows):
        cells = []
        for text in row:
            cell = WriteOnlyCell(ws, value=text or None)
            if text:
                cell.data_type = "s"  # never a formula, even for text starting with '='
            if number == 0:
                cell.font = bold
            cells.append(cell)
        ws.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
