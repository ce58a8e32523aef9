"""Specimen labels (送检条码标签): Code 128 bars plus the text a lab technician needs.

python-barcode encodes the value (Code 128 code sets, check symbol, stop pattern) and lays the
bars out through a writer whose callbacks collect them; this module places them on a label
together with the human-readable value, the patient's *pseudonym* (never the name), the item
names, the institution name and the collection time.

Geometry: one unit is one Code 128 module, 0.3 mm in SVG (``width``/``height`` are given in mm
and the ``viewBox`` in modules) and 4 pixels in PNG (300 dpi, so 0.34 mm). The quiet zone
either side of the bars is 10 modules, as Code 128 requires.

Chinese text: SVG emits ``<text>`` elements whose ``font-family`` lists common CJK fonts
(:data:`CJK_FONT_FAMILY`), so the viewer or printer driver picks one it has. PNG needs a font
file: :func:`find_cjk_font` asks ``fc-list :lang=zh`` for one; without it, text is drawn with
python-barcode's bundled DejaVu Sans Mono, and any text line that font cannot render (a glyph
that would come out as the "missing glyph" box) is left off rather than printed as boxes —
the item names then shrink to the renderable ones followed by ``+N`` for those left off.
Text too wide for the label is shortened with "…".
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import barcode as barcode_package  # type: ignore[import-untyped]
from barcode import Code128
from barcode.errors import BarcodeError  # type: ignore[import-untyped]
from barcode.writer import BaseWriter  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from medledger.errors import InputError
from medledger.interop.barcode.scheme import MAX_LENGTH

__all__ = [
    "CJK_FONT_FAMILY",
    "LabelFormat",
    "bar_runs",
    "find_cjk_font",
    "render_label",
]

LabelFormat = Literal["svg", "png"]
CJK_FONT_FAMILY = (
    "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', "
    "'PingFang SC', SimHei, SimSun, sans-serif"
)
MONO_FONT_FAMILY = "'DejaVu Sans Mono', Consolas, 'Courier New', monospace"

MODULE_MM = 0.3
MODULE_PX = 4
DPI = 300
QUIET = 10  # modules of quiet zone either side (Code 128 asks for at least 10)
MIN_WIDTH = 167  # modules: a 50 mm label
BAR_HEIGHT = 34  # modules: about 10 mm
_PREFERRED_FONTS = ("notosanscjk", "sourcehansans", "wqy", "msyh", "simhei", "droidsansfallback")
_BUNDLED_FONT = os.path.join(
    os.path.dirname(barcode_package.__file__), "fonts", "DejaVuSansMono.ttf"
)
_MISSING = "\U0010fffd"  # a private-use code point no font maps: it renders as .notdef


@dataclass(frozen=True)
class _Line:
    """One line of label text, in label units (modules)."""

    text: str
    y: float  # baseline
    size: float
    mono: bool = False
    bold: bool = False


@dataclass(frozen=True)
class _Layout:
    """Where everything goes: text lines, the bars' top edge and the label's height."""

    lines: tuple[_Line, ...]
    bar_top: float
    height: float


class _BarCollector(BaseWriter):  # type: ignore[misc]
    """A python-barcode writer that records the dark bars as (start, width) in modules."""

    def __init__(self) -> None:
        super().__init__(None, self._paint, None, self._finish)
        self.bars: list[tuple[int, int]] = []

    def _paint(self, xpos: float, _ypos: float, width: float, color: Any) -> None:
        if color == self.foreground:
            self.bars.append((round(xpos), round(width)))

    def _finish(self) -> list[tuple[int, int]]:
        return list(self.bars)


def bar_runs(barcode: str) -> list[tuple[int, int]]:
    """Return the Code 128 dark bars of ``barcode`` as ``(start, width)`` in modules.

    The first bar starts at module 0; quiet zones are not included.
    """
    _check_barcode(barcode)
    writer = _BarCollector()
    try:
        bars = Code128(barcode, writer=writer).render(
            {"module_width": 1, "quiet_zone": 0, "write_text": False, "text": ""}
        )
    except BarcodeError as exc:
        raise InputError(
            f"cannot encode barcode as Code 128: {type(exc).__name__}",
            field="barcode",
            value=barcode,
            expected="printable ASCII",
        ) from exc
    return [(int(start), int(width)) for start, width in bars]


@cache
def find_cjk_font() -> str | None:
    """Return the path of a font that renders Chinese (via ``fc-list :lang=zh``), or None."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = [ln.strip().rstrip(":").strip() for ln in out.splitlines() if ln.strip()]
    paths = [p for p in paths if os.path.isfile(p)]

    def rank(path: str) -> tuple[int, str]:
        name = os.path.basename(path).lower().replace("-", "").replace("_", "")
        hits = [i for i, pref in enumerate(_PREFERRED_FONTS) if pref in name]
        return (hits[0] if hits else len(_PREFERRED_FONTS), path)

    return min(paths, key=rank) if paths else None


def render_label(
    barcode: str,
    *,
    pseudonym: str,
    items: Sequence[str],
    institution_name: str,
    collected: str | None,
    fmt: LabelFormat = "svg",
    font_path: str | None = None,
) -> bytes:
    """Render a specimen label as SVG or PNG bytes.

    ``pseudonym`` is the patient's pseudonym (never the name); ``items`` the item names;
    ``collected`` the collection time as it should be printed. ``font_path`` overrides the
    font PNG text is drawn with (default: :func:`find_cjk_font`, then DejaVu Sans Mono).
    """
    if fmt not in ("svg", "png"):
        raise InputError("unknown label format", field="fmt", value=fmt, expected="svg or png")
    if isinstance(items, str) or not all(isinstance(i, str) for i in items):
        raise InputError(
            "label items must be a list of item names",
            field="items",
            value=items,
            expected="a sequence of strings",
        )
    for name, text in (("pseudonym", pseudonym), ("institution_name", institution_name)):
        if not isinstance(text, str):
            raise InputError(f"label {name} must be text", field=name, value=text, expected="text")
    if collected is not None and not isinstance(collected, str):
        raise InputError(
            "label collected must be text", field="collected", value=collected, expected="text"
        )
    bars = bar_runs(barcode)
    modules = bars[-1][0] + bars[-1][1]
    width = max(MIN_WIDTH, modules + 2 * QUIET)
    texts = [_clean(institution_name), _clean(pseudonym), *(_clean(i) for i in items)]
    when = _clean(collected or "")
    if fmt == "svg":
        return _svg(bars, modules, width, _layout(barcode, texts, when, width, _renders_any))
    font_file = font_path or find_cjk_font() or _BUNDLED_FONT
    try:
        probe = ImageFont.truetype(font_file, 40)
    except OSError as exc:
        raise InputError(
            "cannot load the label font",
            field="font_path",
            value=font_file,
            expected="a TrueType/OpenType font file",
        ) from exc
    layout = _layout(barcode, texts, when, width, lambda s: _renders(probe, s))
    return _png(bars, modules, width, layout, font_file)


def _layout(
    barcode: str, texts: list[str], when: str, width: int, renders: Callable[[str], bool]
) -> _Layout:
    """Place the text lines around the bars (all in modules)."""
    inst, pseudo = texts[0], texts[1]
    items = [i for i in texts[2:] if i]
    room = width - 2 * QUIET
    shown = [i for i in items if renders(i)]
    items_text = "、".join(shown)
    if len(shown) < len(items):
        items_text = (items_text + " " if items_text else "") + f"+{len(items) - len(shown)}"
    lines: list[_Line] = []
    y = 8.0
    if inst and renders(inst):
        y += 9
        lines.append(_Line(_fit(inst, room, 9), y, 9, bold=True))
    y += 3  # the bars go here
    bar_top = y
    y += BAR_HEIGHT + 9
    lines.append(_Line(barcode, y, 9, mono=True))
    for text, size, mono in ((pseudo, 7, True), (items_text, 8, False), (when, 7, True)):
        if text and renders(text):
            y += size + 3
            lines.append(_Line(_fit(text, room, size), y, size, mono=mono))
    return _Layout(tuple(lines), bar_top, y + 8)


def _svg(bars: list[tuple[int, int]], modules: int, width: int, layout: _Layout) -> bytes:
    """Draw the label as an SVG document (units: modules; size: mm)."""
    bar_top, texts, height = layout.bar_top, layout.lines, layout.height
    left = (width - modules) // 2  # bars on the module grid, as in PNG
    ns = "http://www.w3.org/2000/svg"
    ET.register_namespace("", ns)
    root = ET.Element(
        f"{{{ns}}}svg",
        {
            "version": "1.1",
            "width": f"{width * MODULE_MM:.2f}mm",
            "height": f"{height * MODULE_MM:.2f}mm",
            "viewBox": f"0 0 {width} {height:g}",
        },
    )
    ET.SubElement(
        root, f"{{{ns}}}rect", {"class": "background", "x": "0", "y": "0", "width": str(width),
                                "height": f"{height:g}", "fill": "white"},
    )  # fmt: skip
    group = ET.SubElement(root, f"{{{ns}}}g", {"id": "bars", "fill": "black"})
    for start, w in bars:
        ET.SubElement(
            group, f"{{{ns}}}rect", {"class": "bar", "x": f"{left + start:g}", "y": f"{bar_top:g}",
                                     "width": str(w), "height": str(BAR_HEIGHT)},
        )  # fmt: skip
    for line in texts:
        attrs = {
            "x": f"{width / 2:g}",
            "y": f"{line.y:g}",
            "font-size": f"{line.size:g}",
            "font-family": MONO_FONT_FAMILY if line.mono else CJK_FONT_FAMILY,
            "text-anchor": "middle",
            "fill": "black",
        }
        if line.bold:
            attrs["font-weight"] = "bold"
        ET.SubElement(root, f"{{{ns}}}text", attrs).text = line.text
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _png(
    bars: list[tuple[int, int]], modules: int, width: int, layout: _Layout, font_file: str
) -> bytes:
    """Draw the label as a 300 dpi greyscale PNG, each module exactly MODULE_PX pixels wide."""
    bar_top, texts, height = layout.bar_top, layout.lines, layout.height
    image = Image.new("L", (width * MODULE_PX, round(height * MODULE_PX)), 255)
    draw = ImageDraw.Draw(image)
    left = (width - modules) // 2
    top = round(bar_top * MODULE_PX)
    for start, w in bars:
        x0 = (left + start) * MODULE_PX
        draw.rectangle((x0, top, x0 + w * MODULE_PX - 1, top + BAR_HEIGHT * MODULE_PX - 1), fill=0)
    for line in texts:
        font = ImageFont.truetype(font_file, round(line.size * MODULE_PX))
        draw.text(
            (width * MODULE_PX / 2, line.y * MODULE_PX), line.text, font=font, fill=0, anchor="ms"
        )
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def _renders_any(_text: str) -> bool:
    """In SVG every line is emitted: the viewer chooses a font from the family list."""
    return True


def _renders(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """Whether ``font`` has a glyph for every character of ``text`` (else it draws boxes)."""
    missing = font.getmask(_MISSING)
    reference = (missing.size, bytes(missing))
    for ch in set(text):
        if ch.isspace():
            continue
        mask = font.getmask(ch)
        if (mask.size, bytes(mask)) == reference:
            return False
    return True


def _fit(text: str, room: float, size: float) -> str:
    """Shorten ``text`` with "…" so that it fits ``room`` units at font ``size`` (estimated)."""

    def em(ch: str) -> float:
        return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.62

    budget = room / size
    if sum(em(c) for c in text) <= budget:
        return text
    out, used = [], em("…")
    for ch in text:
        used += em(ch)
        if used > budget:
            break
        out.append(ch)
    return "".join(out) + "…"


def _clean(text: str) -> str:
    """Drop control characters (XML cannot carry most of them; a label should not either)."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text).strip()


def _check_barcode(barcode: str) -> None:
    ok = isinstance(barcode, str) and 0 < len(barcode) <= MAX_LENGTH
    if not ok or any(not 0x21 <= ord(c) <= 0x7E for c in barcode):
        raise InputError(
            "barcode cannot be printed as Code 128",
            field="barcode",
            value=barcode,
            expected=f"1 to {MAX_LENGTH} printable ASCII characters without space",
        )
