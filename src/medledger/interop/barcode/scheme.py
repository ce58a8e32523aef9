"""Specimen barcode schemes (送检条码): a fixed-length template, allocation and parsing.

A scheme is a ``template`` plus an institution code map, loaded from a dict or a YAML fragment::

    template: "{inst}{yy}{mm}{dd}{seq:05d}{check}"   # the default: 14 digits
    numeric: true                                      # digits only (the default)
    institutions:                                      # institution id -> code
      hosp-central: "11"
      hosp-member-east: "12"

Template fields (each a Python format field, surrounded by optional literal characters):

- ``{inst}`` the institution's code from ``institutions`` (all codes have the same length);
- ``{yyyy}`` or ``{yy}`` (2000–2099), ``{mm}``, ``{dd}``: the allocation day;
- ``{seq:0Nd}`` the per-institution, per-day sequence, zero-padded to exactly N digits
  (1 ≤ N ≤ 12); sequences start at 1, and number 10**N − 1 is the last one of a day;
- ``{check}`` (optional, last): one Luhn (mod 10) check digit over every character before it,
  computed as for a payment card number (the rightmost payload digit is doubled). Luhn
  catches every single-digit error and most adjacent transpositions; it needs digits, so a
  scheme with ``{check}`` must consist of digits only.

``inst``, a full date and ``seq`` are required, so two barcodes can only be equal if the same
institution allocated the same sequence number on the same day: uniqueness across the hospital
group follows from the code map having no duplicate codes. Every character must be printable
ASCII without space (``!``–``~``), which every Code 128 scanner reads back unchanged; with
``numeric`` (the default, since many LIS scanners and 瑞美-style LIS expect numeric barcodes)
only digits are allowed. The length is fixed, so parsing is positional.

This module is pure; :func:`medledger.interop.barcode.sequences.allocate` takes the next
sequence number from a counter in the database and formats it with :func:`format_barcode`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from medledger.errors import InputError

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_LENGTH",
    "BarcodeParts",
    "BarcodeScheme",
    "format_barcode",
    "luhn_digit",
    "parse",
    "scheme_from_mapping",
    "scheme_from_yaml",
]

DEFAULT_TEMPLATE = "{inst}{yy}{mm}{dd}{seq:05d}{check}"
MAX_LENGTH = 40  # longer Code 128 symbols do not fit a specimen tube label
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))
_DIGITS = frozenset(string.digits)
_WIDTHS = {"yyyy": 4, "yy": 2, "mm": 2, "dd": 2, "check": 1}
_REQUIRED = ("inst", "mm", "dd", "seq")
_KEYS = frozenset({"template", "institutions", "numeric"})


@dataclass(frozen=True)
class _Part:
    """One fixed-width piece of the template: a literal or a field."""

    kind: str  # "lit", "inst", "yyyy", "yy", "mm", "dd", "seq", "check"
    width: int
    text: str = ""  # the literal's characters


@dataclass(frozen=True)
class BarcodeParts:
    """What a barcode value says: who allocated it, on which day, and its sequence number."""

    institution: str  # institution id
    inst_code: str
    day: date
    seq: int


@dataclass(frozen=True)
class BarcodeScheme:
    """A validated barcode scheme; construction raises :class:`InputError` if it is unusable."""

    template: str = DEFAULT_TEMPLATE
    institutions: Mapping[str, str] = field(default_factory=dict)
    numeric: bool = True
    _parts: tuple[_Part, ...] = field(init=False, repr=False, compare=False)
    _by_code: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = _check_institutions(self.institutions, self.numeric)
        width = len(next(iter(codes)))
        parts = _parse_template(self.template, width)
        has_check = parts[-1].kind == "check"
        for part in parts:
            if part.kind == "lit":
                _check_chars(part.text, "template", self.template, self.numeric or has_check)
        if has_check:
            _check_chars("".join(codes), "institutions", dict(self.institutions), True)
        length = sum(p.width for p in parts)
        if length > MAX_LENGTH:
            raise InputError(
                f"barcode template produces {length} characters, more than {MAX_LENGTH}",
                field="template",
                value=self.template,
                expected=f"at most {MAX_LENGTH} characters",
            )
        object.__setattr__(self, "institutions", dict(self.institutions))
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_by_code", codes)

    @property
    def length(self) -> int:
        """The number of characters of every barcode of this scheme."""
        return sum(p.width for p in self._parts)

    @property
    def max_seq(self) -> int:
        """The last sequence number a day can have."""
        return int(10 ** next(p.width for p in self._parts if p.kind == "seq")) - 1

    def code_of(self, institution: str) -> str:
        """Return the code of ``institution``; InputError if it has none."""
        code = self.institutions.get(institution)
        if code is None:
            raise InputError(
                "institution has no barcode code",
                field="institution",
                value=institution,
                expected="one of " + ", ".join(sorted(self.institutions)),
            )
        return code

    @property
    def has_check(self) -> bool:
        """Whether the last character is a Luhn check digit."""
        return self._parts[-1].kind == "check"


def scheme_from_mapping(data: Mapping[str, Any]) -> BarcodeScheme:
    """Load a scheme from a mapping with ``institutions`` and optional ``template``, ``numeric``."""
    keys = "institutions, numeric, template"
    _require(isinstance(data, Mapping), "barcode", type(data).__name__, "a mapping of " + keys)
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    _require(not unknown, "barcode", unknown[:1], "only the keys " + keys)
    template = data.get("template", DEFAULT_TEMPLATE)
    numeric = data.get("numeric", True)
    _require(isinstance(template, str), "template", template, "text such as " + DEFAULT_TEMPLATE)
    _require(isinstance(numeric, bool), "numeric", numeric, "true or false")
    institutions: Any = data.get("institutions")  # checked by BarcodeScheme
    return BarcodeScheme(template=template, institutions=institutions, numeric=numeric)


def _require(ok: bool, field: str, value: Any, expected: str) -> None:
    if not ok:
        raise InputError(
            f"barcode scheme {field} is unusable: expected {expected}",
            field=field,
            value=value,
            expected=expected,
        )


def scheme_from_yaml(text: str) -> BarcodeScheme:
    """Load a scheme from a YAML fragment (see the module docstring for its keys)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"barcode scheme is not valid YAML: {type(exc).__name__}",
            field="barcode",
            value=text,
            expected="a YAML mapping",
        ) from exc
    return scheme_from_mapping(data)


def luhn_digit(payload: str) -> str:
    """Return the Luhn (mod 10) check digit for ``payload``, a string of digits."""
    if not payload or not payload.isascii() or not payload.isdigit():
        raise InputError(
            "Luhn check digit needs digits",
            field="payload",
            value=payload,
            expected="one or more ASCII digits",
        )
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:  # the rightmost payload digit is doubled: the check digit goes after it
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def format_barcode(scheme: BarcodeScheme, institution: str, day: date, seq: int) -> str:
    """Return the barcode for an already allocated ``seq`` (1 ≤ seq ≤ ``scheme.max_seq``)."""
    code = scheme.code_of(institution)
    if not 1 <= seq <= scheme.max_seq:
        raise InputError(
            f"barcode sequence {seq} is outside 1..{scheme.max_seq}",
            field="seq",
            value=seq,
            expected=f"1..{scheme.max_seq}",
        )
    if not 2000 <= day.year <= 2099 and any(p.kind == "yy" for p in scheme._parts):
        raise InputError(
            "a two-digit-year barcode needs a day in 2000–2099",
            field="day",
            value=day.isoformat(),
            expected="a date in 2000–2099",
        )
    values = {
        "inst": code,
        "yyyy": f"{day.year:04d}",
        "yy": f"{day.year % 100:02d}",
        "mm": f"{day.month:02d}",
        "dd": f"{day.day:02d}",
    }
    out: list[str] = []
    for part in scheme._parts:
        if part.kind == "lit":
            out.append(part.text)
        elif part.kind == "seq":
            out.append(f"{seq:0{part.width}d}")
        elif part.kind == "check":
            out.append(luhn_digit("".join(out)))
        else:
            out.append(values[part.kind])
    return "".join(out)


def parse(scheme: BarcodeScheme, value: str) -> BarcodeParts:
    """Split a barcode into institution, day and sequence, verifying its check digit."""
    if not isinstance(value, str) or len(value) != scheme.length:
        raise InputError(
            f"barcode must have {scheme.length} characters",
            field="barcode",
            value=value,
            expected=f"{scheme.length} characters of template {scheme.template}",
        )
    pieces: dict[str, str] = {}
    pos = 0
    for part in scheme._parts:
        piece = value[pos : pos + part.width]
        pos += part.width
        if part.kind == "lit":
            if piece != part.text:
                raise _bad(value, scheme, f"{part.text!r} at position {pos - part.width + 1}")
        elif part.kind == "inst":
            if piece not in scheme._by_code:
                raise _bad(value, scheme, "a configured institution code")
        elif not (piece.isascii() and piece.isdigit()):
            raise _bad(value, scheme, f"digits for {{{part.kind}}}")
        pieces[part.kind] = piece
    if scheme.has_check:
        expected = luhn_digit(value[:-1])
        if value[-1] != expected:
            raise InputError(
                f"barcode check digit is {value[-1]!r}, expected {expected!r}",
                field="barcode",
                value=value,
                expected=f"Luhn check digit {expected}",
            )
    year = int(pieces["yyyy"]) if "yyyy" in pieces else 2000 + int(pieces["yy"])
    try:
        day = date(year, int(pieces["mm"]), int(pieces["dd"]))
    except ValueError as exc:
        raise _bad(value, scheme, "a valid calendar date") from exc
    seq = int(pieces["seq"])
    if seq < 1:
        raise _bad(value, scheme, f"a sequence number 1..{scheme.max_seq}")
    code = pieces["inst"]
    return BarcodeParts(institution=scheme._by_code[code], inst_code=code, day=day, seq=seq)


def _bad(value: str, scheme: BarcodeScheme, wanted: str) -> InputError:
    return InputError(
        f"barcode does not match template {scheme.template}: expected {wanted}",
        field="barcode",
        value=value,
        expected=wanted,
    )


def _check_chars(text: str, where: str, value: Any, digits: bool) -> None:
    allowed = _DIGITS if digits else _PRINTABLE
    bad = next((ch for ch in text if ch not in allowed), None)
    if bad is not None:
        raise InputError(
            f"barcode {where} contains {bad!r}, which the scheme cannot use",
            field=where,
            value=value,
            expected="digits only" if digits else "printable ASCII without space (! to ~)",
        )


def _check_institutions(institutions: Mapping[str, str], numeric: bool) -> dict[str, str]:
    """Validate the code map and return it inverted (code → institution id)."""
    if not isinstance(institutions, Mapping) or not institutions:
        raise InputError(
            "barcode scheme needs at least one institution code",
            field="institutions",
            value=institutions,
            expected='a mapping such as {"hosp-member-east": "12"}',
        )
    by_code: dict[str, str] = {}
    for inst, code in institutions.items():
        if not isinstance(inst, str) or not inst or not isinstance(code, str) or not code:
            raise InputError(
                "barcode institution ids and codes must be non-empty text",
                field=f"institutions.{inst}",
                value=code,
                expected='a non-empty code in quotes, e.g. "12"',
            )
        _check_chars(code, f"institutions.{inst}", code, numeric)
        if code in by_code:
            raise InputError(
                f"barcode code {code!r} is given to two institutions",
                field=f"institutions.{inst}",
                value=code,
                expected=f"a code not already used by {by_code[code]}",
            )
        by_code[code] = inst
    widths = {len(c) for c in by_code}
    if len(widths) != 1:
        raise InputError(
            "barcode institution codes must all have the same length",
            field="institutions",
            value=dict(institutions),
            expected=f"codes of one length, not {sorted(widths)}",
        )
    return by_code


def _parse_template(template: str, inst_width: int) -> tuple[_Part, ...]:
    """Split ``template`` into fixed-width parts, checking its fields (see module docstring)."""
    try:
        items = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _template_error(template, f"balanced braces ({exc})") from exc
    parts: list[_Part] = []
    seen: set[str] = set()
    for literal, name, spec, conversion in items:
        if literal:
            parts.append(_Part("lit", len(literal), literal))
        if name is None:
            continue
        if conversion is not None or name in seen:
            raise _template_error(template, f"{{{name}}} once, without !conversion")
        seen.add(name)
        if name == "inst" and not spec:
            parts.append(_Part("inst", inst_width))
        elif name == "seq":
            width = _seq_width(spec or "")
            if width is None:
                raise _template_error(template, "{seq:0Nd} with a fixed width N of 1 to 12")
            parts.append(_Part("seq", width))
        elif name in _WIDTHS and spec in ("", f"0{_WIDTHS[name]}d"):
            parts.append(_Part(name, _WIDTHS[name]))
        else:
            raise _template_error(
                template, "fields {inst}, {yyyy} or {yy}, {mm}, {dd}, {seq:0Nd}, {check}"
            )
    missing = [f for f in _REQUIRED if f not in seen]
    if ("yy" in seen) == ("yyyy" in seen):
        missing.append("yy or yyyy")
    if missing:
        raise _template_error(template, "inst, a full date and seq; missing " + ", ".join(missing))
    if "check" in seen and parts[-1].kind != "check":
        raise _template_error(template, "{check} as the last character")
    return tuple(parts)


def _seq_width(spec: str) -> int | None:
    digits = spec[1:-1]
    if len(spec) < 3 or spec[0] != "0" or spec[-1] != "d" or not digits.isdigit():
        return None
    width = int(digits)
    return width if 1 <= width <= 12 else None


def _template_error(template: str, wanted: str) -> InputError:
    return InputError(
        f"barcode template is unusable: expected {wanted}",
        field="template",
        value=template,
        expected=wanted,
    )
