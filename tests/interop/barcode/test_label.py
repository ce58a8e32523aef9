"""Specimen labels: the bars really encode the barcode (decoded independently), SVG and PNG."""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from datetime import date

import barcode  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medledger.errors import InputError
from medledger.interop.barcode.label import (
    CJK_FONT_FAMILY,
    bar_runs,
    find_cjk_font,
    render_label,
)
from medledger.interop.barcode.scheme import BarcodeScheme, format_barcode
from tests.interop.barcode._code128 import DecodeError, decode_widths, widths_from_runs

SVG = "{http://www.w3.org/2000/svg}"
SCHEME = BarcodeScheme(institutions={"hosp-central": "11", "hosp-member-east": "12"})
VALUE = format_barcode(SCHEME, "hosp-member-east", date(2026, 11, 23), 1234)
PSEUDONYM = "p-7f3a9c2e41b8"
ITEMS = ["血常规", "肝功能", "CRP"]
INSTITUTION = "示例区中医院"
COLLECTED = "2026-11-23 08:30"
PRINTABLE = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=24)


def _svg_label(value: str = VALUE) -> ET.Element:
    data = render_label(
        value,
        pseudonym=PSEUDONYM,
        items=ITEMS,
        institution_name=INSTITUTION,
        collected=COLLECTED,
        fmt="svg",
    )
    return ET.fromstring(data)  # noqa: S314 - our own output, not untrusted input


def _decode_svg(root: ET.Element) -> str:
    """Read the bar rectangles' x and width and decode them as Code 128."""
    bars = [
        (float(r.get("x", "0")), float(r.get("width", "0")))
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "bar"
    ]
    return decode_widths(widths_from_runs(bars))


def _decode_png(data: bytes) -> str:
    """Find the pixel row crossing the most bars and decode its dark runs as Code 128."""
    image = Image.open(io.BytesIO(data)).convert("L")
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    best: list[tuple[float, float]] = []
    for y in range(height):
        runs: list[tuple[float, float]] = []
        x = 0
        while x < width:
            if pixels[x, y] < 128:  # type: ignore[operator]
                start = x
                while x < width and pixels[x, y] < 128:  # type: ignore[operator]
                    x += 1
                runs.append((start, x - start))
            x += 1
        if len(runs) > len(best):
            best = runs
    return decode_widths(widths_from_runs(best))


def test_decoder_rejects_a_corrupted_symbol() -> None:
    """The test decoder is strict: a changed bar width fails the check symbol or the table."""
    widths = widths_from_runs([(float(x), float(w)) for x, w in bar_runs(VALUE)])
    assert decode_widths(widths) == VALUE
    broken = list(widths)
    broken[7], broken[8] = broken[8], broken[7]  # swap a bar and a space inside one symbol
    assert broken != widths
    with pytest.raises(DecodeError):
        decode_widths(broken)


def test_svg_label_encodes_the_barcode() -> None:
    """The SVG parses as XML, its bars decode to the value, and it shows the value as text."""
    root = _svg_label()
    assert root.tag == f"{SVG}svg"
    assert _decode_svg(root) == VALUE
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert VALUE in texts


def test_svg_label_shows_pseudonym_items_institution_and_time() -> None:
    """Text elements carry the pseudonym, the Chinese item names (CJK fonts), the hospital, time."""
    root = _svg_label()
    by_text = {t.text: t for t in root.iter(f"{SVG}text")}
    assert PSEUDONYM in by_text
    assert COLLECTED in by_text
    assert "血常规、肝功能、CRP" in by_text
    assert by_text[INSTITUTION].get("font-family") == CJK_FONT_FAMILY
    assert "Noto Sans CJK SC" in CJK_FONT_FAMILY
    assert root.get("width", "").endswith("mm")


def test_long_texts_are_shortened_not_overflowing() -> None:
    """An over-long item list is cut with an ellipsis; the bars still decode."""
    many = [f"项目{i}号检验" for i in range(30)]
    data = render_label(
        VALUE, pseudonym=PSEUDONYM, items=many, institution_name=INSTITUTION, collected=None
    )
    root = ET.fromstring(data)  # noqa: S314 - our own output, not untrusted input
    item_line = next(t.text for t in root.iter(f"{SVG}text") if (t.text or "").startswith("项目"))
    assert item_line is not None
    assert item_line.endswith("…")
    assert len(item_line) < 40
    assert _decode_svg(root) == VALUE


@settings(max_examples=60)
@given(value=PRINTABLE)
def test_any_printable_value_round_trips_through_svg(value: str) -> None:
    """For any printable-ASCII value, the SVG bars decode back to exactly that value."""
    assert _decode_svg(_svg_label(value)) == value


def test_png_label_encodes_the_barcode_and_has_label_size() -> None:
    """The PNG opens with Pillow, is 300 dpi and label-sized, and its bars decode to the value."""
    data = render_label(
        VALUE,
        pseudonym=PSEUDONYM,
        items=ITEMS,
        institution_name=INSTITUTION,
        collected=COLLECTED,
        fmt="png",
    )
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    width, height = image.size
    assert 600 <= width <= 900  # 50 mm and more at 300 dpi
    assert 250 <= height <= 600  # about 20–50 mm
    dpi = image.info.get("dpi")
    assert dpi is not None
    assert round(dpi[0]) == 300
    assert _decode_png(data) == VALUE


def test_png_without_cjk_font_still_renders() -> None:
    """With a Latin-only font, Chinese lines are left off but the label and bars are intact."""
    latin = os.path.join(os.path.dirname(barcode.__file__ or ""), "fonts", "DejaVuSansMono.ttf")
    only_cjk = render_label(VALUE, pseudonym=PSEUDONYM, items=["血常规"],
                            institution_name=INSTITUTION, collected=COLLECTED, fmt="png",
                            font_path=latin)  # fmt: skip
    assert _decode_png(only_cjk) == VALUE
    latin_items = render_label(VALUE, pseudonym=PSEUDONYM, items=["CRP"],
                               institution_name=INSTITUTION, collected=COLLECTED, fmt="png",
                               font_path=latin)  # fmt: skip
    assert only_cjk != latin_items  # "+1" is drawn where the Chinese name could not be


def test_find_cjk_font_returns_a_font_file_or_none() -> None:
    """find_cjk_font gives an existing file (from fc-list :lang=zh) or None on this machine."""
    path = find_cjk_font()
    assert path is None or os.path.isfile(path)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"barcode": "12 34"}, "barcode"),
        ({"barcode": ""}, "barcode"),
        ({"barcode": "条码"}, "barcode"),
        ({"barcode": "1" * 41}, "barcode"),
        ({"fmt": "pdf"}, "fmt"),
        ({"items": "血常规"}, "items"),
        ({"items": [1, 2]}, "items"),
        ({"pseudonym": None}, "pseudonym"),
        ({"font_path": "/nonexistent/font.ttf", "fmt": "png"}, "font_path"),
    ],
)
def test_bad_label_input_is_an_input_error(kwargs: dict[str, object], field: str) -> None:
    """Unprintable barcodes, unknown formats and malformed texts raise InputError with the field."""
    args: dict[str, object] = {
        "barcode": VALUE,
        "pseudonym": PSEUDONYM,
        "items": ITEMS,
        "institution_name": INSTITUTION,
        "collected": COLLECTED,
        "fmt": "svg",
        **kwargs,
    }
    barcode = args.pop("barcode")
    with pytest.raises(InputError) as info:
        render_label(barcode, **args)  # type: ignore[arg-type]
    assert info.value.field == field
