"""Barcode schemes: load-time validation, formatting, parsing and the Luhn check digit."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.barcode.scheme import (
    DEFAULT_TEMPLATE,
    BarcodeScheme,
    format_barcode,
    luhn_digit,
    parse,
    scheme_from_mapping,
    scheme_from_yaml,
)

CODES = {"hosp-central": "11", "hosp-member-east": "12"}
DEFAULT = BarcodeScheme(institutions=CODES)

YAML = """
template: "{inst}{yy}{mm}{dd}{seq:05d}{check}"
numeric: true
institutions:
  hosp-central: "11"        # 示例市第一人民医院
  hosp-member-east: "12"    # 示例区中医院
"""


def _luhn_valid(number: str) -> bool:
    """Textbook Luhn validation (double every second digit from the right), for cross-checks."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def test_luhn_golden_vectors() -> None:
    """Luhn check digits match published examples (Wikipedia's 7992739871-3, an Amex test card)."""
    assert luhn_digit("7992739871") == "3"
    assert luhn_digit("37828224631000") == "5"  # 378282246310005
    assert luhn_digit("453957876362148") == "6"  # 4539578763621486


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_digit_makes_a_valid_number(payload: str) -> None:
    """Appending luhn_digit always yields a number that textbook Luhn validation accepts."""
    assert _luhn_valid(payload + luhn_digit(payload))


def test_default_scheme_is_14_digits_from_yaml() -> None:
    """The documented YAML loads to the default scheme: 14 digits, Luhn-checked, 99999 a day."""
    scheme = scheme_from_yaml(YAML)
    assert scheme == DEFAULT
    assert scheme.template == DEFAULT_TEMPLATE
    assert (scheme.length, scheme.max_seq, scheme.has_check) == (14, 99999, True)
    value = format_barcode(scheme, "hosp-member-east", date(2026, 11, 23), 1)
    assert value == "12261123000014"
    assert value.isdigit()
    assert _luhn_valid(value)


@given(
    inst=st.sampled_from(sorted(CODES)),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    seq=st.integers(min_value=1, max_value=99999),
)
def test_format_parse_round_trip(inst: str, day: date, seq: int) -> None:
    """parse(format(inst, day, seq)) gives back exactly inst, day and seq."""
    value = format_barcode(DEFAULT, inst, day, seq)
    assert len(value) == 14
    parts = parse(DEFAULT, value)
    assert (parts.institution, parts.inst_code, parts.day, parts.seq) == (
        inst,
        CODES[inst],
        day,
        seq,
    )


@given(
    seq=st.integers(min_value=1, max_value=99999),
    pos=st.integers(min_value=0, max_value=13),
    delta=st.integers(min_value=1, max_value=9),
)
def test_single_digit_errors_are_caught(seq: int, pos: int, delta: int) -> None:
    """Changing any one digit of a valid barcode makes parse raise InputError naming the value."""
    value = format_barcode(DEFAULT, "hosp-central", date(2026, 11, 23), seq)
    wrong = value[:pos] + str((int(value[pos]) + delta) % 10) + value[pos + 1 :]
    with pytest.raises(InputError) as info:
        parse(DEFAULT, wrong)
    assert info.value.field == "barcode"
    assert info.value.value == wrong


def test_wrong_check_digit_names_expected_digit() -> None:
    """A wrong check digit is reported with the digit that was expected."""
    good = format_barcode(DEFAULT, "hosp-member-east", date(2026, 11, 23), 42)
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(InputError) as info:
        parse(DEFAULT, bad)
    assert info.value.expected == f"Luhn check digit {good[-1]}"
    assert info.value.value == bad


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("1226112300001", "14 characters"),  # one short
        ("99261123000014", "institution code"),  # unknown institution
        ("1226112300001X", "digits"),
    ],
)
def test_parse_rejects_malformed_values(value: str, wanted: str) -> None:
    """parse names what it expected: the length, a configured institution code, digits."""
    with pytest.raises(InputError, match=wanted) as info:
        parse(DEFAULT, value)
    assert info.value.field == "barcode"


def test_parse_rejects_impossible_date_and_zero_sequence() -> None:
    """A check-valid barcode with month 13 or sequence 0 is still rejected."""
    for payload in ("12261323" + "00001", "12261123" + "00000"):
        value = payload + luhn_digit(payload)
        with pytest.raises(InputError) as info:
            parse(DEFAULT, value)
        assert info.value.value == value


def test_alphanumeric_scheme_with_literals() -> None:
    """A non-numeric scheme with literal separators and a 4-digit year round-trips."""
    scheme = scheme_from_mapping(
        {
            "template": "S{inst}-{yyyy}{mm}{dd}-{seq:04d}",
            "numeric": False,
            "institutions": {"hosp-central": "CT", "hosp-member-east": "EA"},
        }
    )
    value = format_barcode(scheme, "hosp-member-east", date(2026, 1, 5), 7)
    assert value == "SEA-20260105-0007"
    assert parse(scheme, value).day == date(2026, 1, 5)
    with pytest.raises(InputError, match="'-' at position 4"):
        parse(scheme, "SEA_20260105-0007")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"institutions": {"a": "11", "b": "11"}}, "institutions.b"),  # duplicate code
        ({"institutions": {"a": "1", "b": "22"}}, "institutions"),  # unequal lengths
        ({"institutions": {}}, "institutions"),
        ({"institutions": {"a": "1A"}}, "institutions.a"),  # numeric scheme, letter in code
        ({"institutions": {"a": 12}}, "institutions.a"),  # a YAML number, not a string
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}"}, "template"),  # no seq
        ({"institutions": CODES, "template": "{inst}{mm}{dd}{seq:05d}"}, "template"),  # no year
        ({"institutions": CODES, "template": "{inst}{yy}{yyyy}{mm}{dd}{seq:05d}"}, "template"),
        ({"institutions": CODES, "template": "{yy}{mm}{dd}{seq:05d}"}, "template"),  # no inst
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}{seq}"}, "template"),  # no width
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}{seq:5d}"}, "template"),
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}{check}{seq:05d}"}, "template"),
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}{seq:05d}{name}"}, "template"),
        ({"institutions": CODES, "template": "{inst}{yy}{mm}{dd}{seq:05d"}, "template"),
        ({"institutions": CODES, "template": "A{inst}{yy}{mm}{dd}{seq:05d}"}, "template"),
        (
            {"institutions": CODES, "template": "{inst} {yy}{mm}{dd}{seq:05d}", "numeric": False},
            "template",
        ),
        (
            {"institutions": CODES, "template": "{inst}标{yy}{mm}{dd}{seq:05d}", "numeric": False},
            "template",
        ),
        ({"institutions": {"a": "AB"}, "numeric": False}, "institutions"),  # check needs digits
        (
            {"institutions": CODES, "template": "{inst}{yyyy}{mm}{dd}{seq:012d}" + "0" * 20},
            "template",
        ),
        ({"institutions": CODES, "numeric": "yes"}, "numeric"),
        ({"institutions": CODES, "template": 12}, "template"),
        ({"institutions": CODES, "prefix": "8"}, "barcode"),
    ],
)
def test_unusable_schemes_are_refused_at_load(data: dict[str, object], field: str) -> None:
    """Each unusable scheme raises InputError naming the offending field."""
    with pytest.raises(InputError) as info:
        scheme_from_mapping(data)
    assert info.value.field == field
    assert info.value.expected


def test_yaml_errors_are_input_errors() -> None:
    """Broken YAML and a YAML list both raise InputError, not a YAML or type error."""
    with pytest.raises(InputError):
        scheme_from_yaml("template: [unclosed")
    with pytest.raises(InputError):
        scheme_from_yaml("- a\n- b\n")


def test_unknown_institution_and_out_of_range_seq() -> None:
    """Formatting for an unknown institution or a sequence outside 1..max raises InputError."""
    with pytest.raises(InputError) as info:
        format_barcode(DEFAULT, "hosp-unknown", date(2026, 11, 23), 1)
    assert info.value.field == "institution"
    assert "hosp-member-east" in (info.value.expected or "")
    for seq in (0, 100000):
        with pytest.raises(InputError):
            format_barcode(DEFAULT, "hosp-central", date(2026, 11, 23), seq)
