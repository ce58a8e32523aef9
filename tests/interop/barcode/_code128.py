"""A small Code 128 decoder, written from the symbology's width table, to check labels.

It is deliberately independent of python-barcode: it turns bar/space widths (in modules) back
into symbol values, checks the start code, the mod-103 check symbol and the stop pattern, and
decodes code sets A, B and C with their switch and shift codes.
"""

from __future__ import annotations

from collections.abc import Sequence

# Bar/space widths of symbol values 0..105 (six elements, eleven modules each); 106 is STOP.
# fmt: off
WIDTHS = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232",
)
# fmt: on
STOP = "2331112"
START_A, START_B, START_C = 103, 104, 105
_VALUE = {w: v for v, w in enumerate(WIDTHS)}


class DecodeError(Exception):
    """The widths are not a valid Code 128 symbol."""


def decode_widths(widths: Sequence[int]) -> str:
    """Decode alternating bar/space widths (in modules, starting with a bar) into text."""
    elems = "".join(str(w) for w in widths)
    if len(widths) < 6 * 3 + 7 or any(not 1 <= w <= 4 for w in widths):
        raise DecodeError(f"not Code 128 widths: {elems}")
    if elems[-7:] != STOP:
        raise DecodeError("no stop pattern")
    body = elems[:-7]
    if len(body) % 6:
        raise DecodeError("symbols do not divide into six elements")
    try:
        values = [_VALUE[body[i : i + 6]] for i in range(0, len(body), 6)]
    except KeyError as exc:
        raise DecodeError(f"unknown symbol {exc}") from exc
    *data, check = values
    if sum(v * max(i, 1) for i, v in enumerate(data)) % 103 != check:
        raise DecodeError("check symbol does not match")
    return _text(data)


def _text(values: list[int]) -> str:
    start, rest = values[0], values[1:]
    sets = {START_A: "A", START_B: "B", START_C: "C"}
    if start not in sets:
        raise DecodeError(f"no start code: {start}")
    current, out, shift = sets[start], [], False
    for v in rest:
        active = ("B" if current == "A" else "A") if shift else current
        shift = False
        if active == "C":
            if v < 100:
                out.append(f"{v:02d}")
            elif v in (100, 101):
                current = "B" if v == 100 else "A"
            continue
        if v == 98:
            shift = True
        elif v == 99:
            current = "C"
        elif (active, v) in (("A", 100), ("B", 101)):
            current = "B" if active == "A" else "A"
        elif v < 64 or (active == "B" and v < 96):
            out.append(chr(v + 32))
        elif active == "A" and v < 96:
            out.append(chr(v - 64))
        # 96, 97, 102 and FNC4 are function codes: they carry no character here.
    return "".join(out)


def widths_from_runs(runs: Sequence[tuple[float, float]]) -> list[int]:
    """Turn dark bars given as (start, width), in any unit, into bar/space widths in modules."""
    bars = sorted(runs)
    module = min(w for _, w in bars)
    out: list[int] = []
    for i, (x, w) in enumerate(bars):
        if i:
            prev_x, prev_w = bars[i - 1]
            out.append(round((x - prev_x - prev_w) / module))
        out.append(round(w / module))
    return out
