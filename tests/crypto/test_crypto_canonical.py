"""RFC 8785 canonical JSON (fast path vs the rfc8785 reference) and strict JSON parsing."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import canonical_bytes, parse_json_object
from medledger.crypto.canonical import _fast_path
from medledger.errors import InvalidEntry, MalformedDocument

LIMIT = 2**53 - 1

# Characters where naive JSON writers go wrong: controls, quote and backslash, DEL, the JS line
# separators, the top of the BMP (U+E000..U+FFFF sorts differently by code point and by UTF-16
# code unit against non-BMP characters), and non-BMP characters themselves.
TRICKY = [
    "\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f",
    "\x80", "\u00f6", "\u2028", "\u2029", "\u20ac", "\ud7ff", "\ue000", "\ufb33", "\ufeff",
    "\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "a", "A", "1",
]  # fmt: skip
# Where repr and ECMAScript layouts meet or part: the fast path's bounds, integral values, zero.
EDGE_FLOATS = [
    1e-4,
    9.999999999999999e-05,
    1e-5,
    1e-6,
    1e-7,
    1e16,
    9999999999999998.0,
    1e21,
    1e22,
    0.0,
    -0.0,
    1.0,
    -1.0,
    2.0**53,
    0.1,
    0.3,
    5e-324,
    1.7976931348623157e308,
    123456.789,
    -0.0001,
    0.00012345,
    1234567890123.4567,
]
chars = st.one_of(st.sampled_from(TRICKY), st.characters(exclude_categories=("Cs",)))
texts = st.text(alphabet=chars, max_size=12)
ints = st.one_of(
    st.integers(min_value=-LIMIT, max_value=LIMIT),
    st.sampled_from([0, -1, LIMIT, -LIMIT, LIMIT - 1, 2**31, -(2**31), 2**32]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, texts)


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Return nested JSON values (lists and str-keyed dicts) built from ``leaves``."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=6)
        ),
        max_leaves=30,
    )


@settings(max_examples=250, deadline=None)
@given(json_values(scalars))
def test_canonical_bytes_matches_rfc8785(value: Any) -> None:
    """For any float-free JSON value, canonical_bytes equals rfc8785.dumps byte for byte."""
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=250, deadline=None)
@given(json_values(scalars))
def test_fast_path_is_exact_or_declines(value: Any) -> None:
    """The json.dumps fast path either declines or gives exactly rfc8785.dumps."""
    fast = _fast_path(value)
    if fast is not None:
        assert fast == rfc8785.dumps(value)


bmp_low_texts = st.text(
    alphabet=st.characters(max_codepoint=0xD7FF, exclude_categories=("Cs",)), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), ints, texts),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(bmp_low_texts, inner, max_size=6)
        ),
        max_leaves=30,
    )
)
def test_fast_path_taken_for_plain_entries(value: Any) -> None:
    """With keys below U+D800 and no floats the fast path is used, and it matches rfc8785."""
    assert _fast_path(value) == rfc8785.dumps(value)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Clinical decimals: the fast path must take them (the reason it accepts floats at all).
decimals = st.one_of(
    st.floats(min_value=1e-4, max_value=1e16, exclude_max=True, allow_nan=False),
    st.floats(max_value=-1e-4, min_value=-1e16, exclude_min=True, allow_nan=False),
).filter(lambda f: not f.is_integer())


@settings(max_examples=500, deadline=None)
@given(st.one_of(finite_floats, decimals, st.sampled_from(EDGE_FLOATS)))
def test_fast_path_floats_are_exact_or_decline(value: float) -> None:
    """Any float, alone and inside a document: the fast path declines or equals rfc8785."""
    for doc in (value, [value], {"valueQuantity": {"value": value}}):
        fast = _fast_path(doc)
        if fast is not None:
            assert fast == rfc8785.dumps(doc)


@settings(max_examples=300, deadline=None)
@given(json_values(st.one_of(scalars, decimals)))
def test_fast_path_taken_for_documents_with_decimals(value: Any) -> None:
    """Documents whose floats are ordinary decimals stay on the fast path and match rfc8785."""
    if any(type(k) is str and k and max(k) >= "\ud800" for k in _keys(value)):
        return
    fast = _fast_path(value)
    assert fast is not None
    assert fast == rfc8785.dumps(value)


def _keys(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


@settings(max_examples=200, deadline=None)
@given(json_values(st.one_of(scalars, finite_floats)))
def test_values_with_floats_match_rfc8785(value: Any) -> None:
    """Values with floats (the slow path) still equal rfc8785.dumps."""
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_rfc8785_sorting_example() -> None:
    """RFC 8785 §3.2.3: properties sort by UTF-16 code units (U+1F600 before U+FB33)."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical_bytes(value) == expected.encode("utf-8")
    # The naive code-point order json.dumps would use puts U+FB33 first; make sure we did not.
    assert json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")) != expected


def test_rfc8785_serialization_example() -> None:
    """RFC 8785 §3.2.2: the sample with numbers, escapes and literals serializes as published."""
    parsed = parse_json_object(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}',
        field="sample",
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_bytes(parsed) == expected.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (math.nan, "finite"),
        ({"x": math.inf}, "finite"),
        (2**53, "2**53"),
        ({"n": -(2**60)}, "2**53"),
        ([10**5000], "2**53"),
        ({1: "non-str key"}, "string keys"),
        ({"s": "\ud800"}, "Unicode"),
        ({"\udc00": 1}, "Unicode"),
        ({"set": {1, 2}}, "JSON values only"),
    ],
)
def test_non_json_values_raise_invalid_entry(value: Any, needle: str) -> None:
    """NaN/Infinity, unsafe integers, non-str keys, lone surrogates and other types are refused."""
    with pytest.raises(InvalidEntry) as info:
        canonical_bytes(value)
    assert needle in str(info.value.expected)
    assert info.value.field == "entry"


def test_deep_and_circular_values_raise_invalid_entry() -> None:
    """Structures nested past the recursion limit, or containing themselves, are refused."""
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidEntry):
        canonical_bytes(deep)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidEntry):
        canonical_bytes(loop)


def test_moderately_deep_values_still_canonicalize() -> None:
    """Nesting beyond the fast path's depth falls back to rfc8785 and gives the same bytes."""
    value: Any = {"leaf": 1}
    for i in range(100):
        value = {"k": value, "i": i}
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_parse_accepts_object_in_str_and_bytes() -> None:
    """A JSON object parses from str or UTF-8 bytes (non-ASCII and escaped pairs included)."""
    assert parse_json_object('{"a": [1, 2.5, "\\ud83d\\ude00"]}', field="f") == {
        "a": [1, 2.5, "\U0001f600"]
    }
    assert parse_json_object('{"ö": "€"}'.encode(), field="f") == {"ö": "€"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": {"b": 1, "b": 1}}', "duplicate key 'b'"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": -Infinity}', "-Infinity"),
        ('{"a": 1e400}', "out of range"),
        ("[1, 2]", "not an object"),
        ('"just a string"', "not an object"),
        ("null", "not an object"),
        ("", "not valid JSON"),
        ('{"a": 1', "not valid JSON"),
        ('{"a": 1} trailing', "not valid JSON"),
        ("\ufeff{}", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "not valid UTF-8"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"\\udc00x": 1}', "lone surrogate"),
        ('{"a": "\udc00"}', "lone surrogate"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_parse_rejects_with_named_field(text: str | bytes, needle: str) -> None:
    """Strict parsing refuses bad input with the caller's error class, naming the field."""
    with pytest.raises(MalformedDocument) as info:
        parse_json_object(text, field="certificate", error=MalformedDocument)
    assert needle in info.value.message
    assert info.value.field == "certificate"
    assert info.value.expected is not None


def test_parse_defaults_to_invalid_entry() -> None:
    """Without an error class, parse_json_object raises InvalidEntry."""
    with pytest.raises(InvalidEntry) as info:
        parse_json_object("[]", field="entry")
    assert info.value.field == "entry"
