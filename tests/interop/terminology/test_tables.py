"""CSV and XLSX import and export of dictionaries and mappings."""

from __future__ import annotations

import io
import re
import zipfile

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.terminology import (
    DictItem,
    Mapping,
    read_dictionary,
    read_mappings,
    write_dictionary,
    write_mappings,
)

from .conftest import DATA
from .strategies import dictionaries, mapping_lists


def _xlsx(rows: list[list[object]]) -> bytes:
    """A workbook made the way a person makes one in Excel: typed cells, no help from us."""
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_member_dictionary_in_gb18030_is_detected(member_items: list[DictItem]) -> None:
    """The member's GB18030 CSV reads without naming its encoding; unknown columns are ignored."""
    raw = (DATA / "member_east.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert len(member_items) == 49
    assert member_items[0] == DictItem("JC0101", "胸部CT平扫", "radiology", pinyin="XBCTPS")
    assert {i.code: i.kind for i in member_items}["BL0003"] is None


def test_central_dictionary_in_utf8_with_bom(central_items: list[DictItem]) -> None:
    """The central UTF-8 BOM CSV reads with aliases, the inactive item and LOINC codes."""
    assert len(central_items) == 67
    by_code = {i.code: i for i in central_items}
    assert by_code["300199"].active is False
    assert by_code["300131"].aliases == ("冠脉CTA",)
    assert by_code["400101"].loinc == "58410-2"
    assert by_code["310121"].kind == "ultrasound"


def test_known_mapping_file(known_pairs: list[Mapping]) -> None:
    """The mapping table reads Chinese relations: 等同, 近似 with its comment, 无对照."""
    assert len(known_pairs) == 49
    by_code = {p.source_code: p for p in known_pairs}
    assert by_code["JC0101"] == Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫")
    assert by_code["JY0013"].equivalence == "inexact"
    assert by_code["JY0013"].comment == "本院电解质为钾钠氯三项，总院另含钙"
    assert by_code["JY0099"] == Mapping(
        "JY0099", "微量元素五项", None, None, "unmatched", "总院未开展"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"code,display,kind\nJY0001,\xe8\xa1\x80\xe5\xb8\xb8\xe8\xa7\x84,lab\n",
        "项目代码,项目名称,类别\r\nJY0001,血常规,检验\r\n".encode("gb18030"),
        "\ufeff编码,名称,项目类别\nJY0001,血常规,检验\n".encode(),
        "Item Code\tName\tCategory\r\nJY0001\t血常规\tlab\r\n".encode("utf-16"),
        "ＣＯＤＥ , 项目名称 ,类别\n\n JY0001 , 血常规 ,检验\n".encode(),
    ],
    ids=["english-utf8", "chinese-gb18030", "variants-bom", "utf16-tabs", "fullwidth-spaces"],
)
def test_header_and_encoding_variants(data: bytes) -> None:
    """English or Chinese headers (and common variants), UTF-8, GB18030 and UTF-16 all read."""
    assert read_dictionary(data) == [DictItem("JY0001", "血常规", "lab")]


def test_xlsx_typed_cells_and_row_numbers() -> None:
    """Numbers, booleans and blank rows of a real workbook read as text, rows as Excel counts."""
    data = _xlsx(
        [
            ["项目代码", "项目名称", "类别", "是否启用", "单价"],
            [300101, "胸部CT平扫", "放射", True, 260.0],
            [None, None, None, None, None],
            ["00123", "血常规", "检验", "否", 20],
        ]
    )
    assert read_dictionary(data) == [
        DictItem("300101", "胸部CT平扫", "radiology"),
        DictItem("00123", "血常规", "lab", active=False),
    ]
    bad = _xlsx(
        [["项目代码", "项目名称", "类别"], ["1", "胸部CT平扫", "放射"], [], ["2", "血常规", "化学"]]
    )
    with pytest.raises(InputError) as caught:
        read_dictionary(bad)
    assert caught.value.field == "row 4, column 类别"
    assert caught.value.value == "化学"


def test_bad_rows_are_named_and_nothing_is_imported() -> None:
    """Every bad cell is reported by row and column, and the import yields nothing at all."""
    text = (
        "项目代码,项目名称,类别,是否启用\n"
        "JC0101,胸部CT平扫,放射,是\n"
        "JC0102,,放射,是\n"
        "JC0101,胸部CT增强,放射,是\n"
        "JC0103,头颅CT,放射,也许\n"
    )
    with pytest.raises(InputError) as caught:
        read_dictionary(text.encode())
    error = caught.value
    assert error.field == "row 3, column 项目名称"
    assert [p["field"] for p in error.details["problems"]] == [
        "row 3, column 项目名称",
        "row 4, column 项目代码",
        "row 5, column 是否启用",
    ]
    assert "row 2" in error.details["problems"][1]["message"]
    assert "(and 2 more problems)" in error.message


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "header"),
        (b"display,kind\nX,lab\n", "header"),
        (b"code,code,display\n1,2,X\n", "row 1, column code"),
        (b"code,display\nJY1,a,b\n", "row 2"),
        (b"code,display\nJY1,\xff\xfe\xfa\n", "row 2"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "file"),
        (b"PK\x03\x04 not really a workbook", "file"),
        (b'code,display\nJY1,"unterminated\n', "row 2"),
    ],
    ids=["empty", "no-code", "twice", "extra-cell", "bad-bytes", "xls", "bad-zip", "csv-quote"],
)
def test_unreadable_tables_name_the_problem(data: bytes, field: str) -> None:
    """Empty files, missing columns, extra cells, bad bytes and non-tables are input errors."""
    with pytest.raises(InputError) as caught:
        read_dictionary(data)
    assert caught.value.field == field
    assert caught.value.expected


def test_mapping_rows_relations_and_rules() -> None:
    """Rows without target and relation are skipped; names unify; contradictions are named."""
    text = (
        "本院代码,本院名称,对照代码,对照名称,对照关系,备注\n"
        "JC0101,胸部CT平扫,300101,胸部CT平扫,,\n"
        "JC0101,,300103,胸部CT平扫(低剂量),更宽,\n"
        "JC0102,胸部CT增强,,,,\n"
        "JC0999,骨密度测定,,,无对照,\n"
    )
    assert read_mappings(text.encode("gb18030")) == [
        Mapping("JC0101", "胸部CT平扫", "300101", "胸部CT平扫"),
        Mapping("JC0101", "胸部CT平扫", "300103", "胸部CT平扫(低剂量)", "wider"),
        Mapping("JC0999", "骨密度测定", equivalence="unmatched"),
    ]
    bad = (
        "source_code,source_display,target_code,target_display,equivalence,comment\n"
        "JC0101,胸部CT平扫,300101,胸部CT平扫,equivalent,\n"
        "JC0101,胸部CT,300102,胸部CT增强,equivalent,\n"
        "JC0101,胸部CT平扫,300101,胸部CT平扫,equal,\n"
        "JC0999,骨密度测定,,,unmatched,\n"
        "JC0999,骨密度测定,300401,骨密度检测,equivalent,\n"
        "JY0013,电解质,400291,电解质四项,近似,\n"
        "JY0014,心肌酶谱,400301,心肌酶,差不多,\n"
    )
    with pytest.raises(InputError) as caught:
        read_mappings(bad.encode())
    assert [p["field"] for p in caught.value.details["problems"]] == [
        "row 7, column comment",
        "row 8, column equivalence",
        "row 3, column source_display",
        "row 4, column target_code",
        "row 6, column equivalence",
    ]


def test_csv_export_cannot_inject_formulas() -> None:
    """Cells a spreadsheet would run as formulas are escaped in CSV and restored on import."""
    items = [DictItem("=1+1", '=HYPERLINK("http://x")', "lab"), DictItem("A1", "'引号", "lab")]
    data = write_dictionary(items)
    text = data.decode("utf-8-sig")
    assert "'=1+1" in text
    assert "''引号" in text
    assert read_dictionary(data) == items


def test_gb18030_export_reads_back_and_xlsx_keeps_leading_zeros() -> None:
    """A GB18030 export is detected on import; XLSX codes stay text (00123 keeps its zeros)."""
    items = [DictItem("00123", "血常规", "lab", aliases=("血细胞分析", "全血细胞计数"))]
    data = write_dictionary(items, encoding="gb18030")
    assert data.startswith("项目代码".encode("gb18030"))
    assert read_dictionary(data) == items
    book = openpyxl.load_workbook(io.BytesIO(write_dictionary(items, format="xlsx")))
    assert book.active["A2"].value == "00123"
    assert book.active["A1"].value == "项目代码"
    with pytest.raises(InputError) as caught:
        write_dictionary(items, encoding="latin-1")
    assert caught.value.field == "encoding"


_FORMATS = st.sampled_from(
    [
        ("csv", "zh", "utf-8-sig"),
        ("csv", "en", "utf-8-sig"),
        ("csv", "zh", "gb18030"),
        ("xlsx", "zh", "utf-8-sig"),
        ("xlsx", "en", "utf-8-sig"),
    ]
)


@settings(max_examples=40)
@given(dictionaries, _FORMATS)
def test_dictionary_export_round_trips(items: list[DictItem], fmt: tuple[str, str, str]) -> None:
    """import(export(items)) == items for CSV (UTF-8 BOM or GB18030) and XLSX, zh and en."""
    form, language, encoding = fmt
    data = write_dictionary(items, format=form, language=language, encoding=encoding)  # type: ignore[arg-type]
    assert read_dictionary(data) == items


@settings(max_examples=40)
@given(mapping_lists(), _FORMATS)
def test_mapping_export_round_trips(pairs: list[Mapping], fmt: tuple[str, str, str]) -> None:
    """import(export(pairs)) == pairs for CSV (UTF-8 BOM or GB18030) and XLSX, zh and en."""
    form, language, encoding = fmt
    data = write_mappings(pairs, format=form, language=language, encoding=encoding)  # type: ignore[arg-type]
    assert read_mappings(data) == pairs


def test_xlsx_with_a_wrong_declared_range_is_read_whole() -> None:
    """A workbook whose sheet claims the used range is A1:A1 still yields every row."""
    data = _xlsx([["项目代码", "项目名称"], ["JY0001", "血常规"], ["JY0002", "尿常规"]])
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename == "xl/worksheets/sheet1.xml":
                content = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:A1"', content)
                assert b'ref="A1:A1"' in content
            target.writestr(entry, content)
    assert [i.code for i in read_dictionary(out.getvalue())] == ["JY0001", "JY0002"]
