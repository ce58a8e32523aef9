"""RFC 8785 (JCS) canonical JSON, and strict parsing of JSON objects.

``canonical_bytes`` is on the append hot path. For the common case (integers in the I-JSON safe
range, ordinary decimals, no key with a character at or above U+D800) ``json.dumps`` with
sorted keys already writes RFC 8785 bytes: its escaping of strings matches §3.2.2.2 exactly,
and sorting by code point equals sorting by UTF-16 code unit as long as no key holds a
surrogate pair or a character in U+E000..U+FFFF (the only place the two orders disagree).

Floats: ``repr`` and ECMAScript's Number::toString (RFC 8785 §3.2.2.3) both write the shortest
digits that round-trip; they differ only in layout. For a non-integral float with magnitude in
[1e-4, 1e16) both use plain decimal notation, so the bytes agree (clinical values such as 3.2
or 0.85 are all of this kind). Integral floats (ES writes ``1`` for 1.0), very small or large
magnitudes (exponent layouts differ), NaN and infinities decline the fast path. Everything
else goes through the reference ``rfc8785`` package, several times slower.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import rfc8785

from medledger.errors import InputError, InvalidEntry

__all__ = [
    "canonical_bytes",
    "parse_json_object",
    "stable_canonical_bytes",
]

# rfc8785 refuses integers outside ±(2**53 - 1); the fast path must refuse the same ones.
_INT_LIMIT = 2**53 - 1
# Deeper than this, hand over to rfc8785, which also turns a cycle into an error.
_MAX_FAST_DEPTH = 64
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, check_circular=False
).encode


def _plain(value: Any, depth: int) -> bool:
    """Return True if ``value`` holds only what json.dumps writes exactly as RFC 8785 does."""
    if depth > _MAX_FAST_DEPTH:
        return False
    t = type(value)
    if t is dict:
        items = value.items()
        for k, v in items:
            # Keys below U+D800 sort identically by code point and by UTF-16 code unit.
            if type(k) is not str or not (k.isascii() or max(k) < "\ud800"):
                return False
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if -_INT_LIMIT <= v <= _INT_LIMIT:
                    continue
                return False
            if tv is float:
                if _plain_float(v):
                    continue
                return False
            if not _plain(v, depth + 1):
                return False
        return True
    if t is list:
        for v in value:
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if -_INT_LIMIT <= v <= _INT_LIMIT:
                    continue
                return False
            if not _plain(v, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_INT_LIMIT <= value <= _INT_LIMIT)
    if t is float:
        return _plain_float(value)
    return False


def _plain_float(v: float) -> bool:
    """True if ``repr(v)`` is already the ECMAScript form (see the module docstring)."""
    return 1e-4 <= abs(v) < 1e16 and not v.is_integer()  # False for NaN and infinities too


def _fast_path(obj: Any) -> bytes | None:
    """Return the canonical bytes via json.dumps, or None if ``obj`` needs the slow path."""
    if not _plain(obj, 0):
        return None
    try:
        return _encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate: let rfc8785 produce the error


def canonical_bytes(obj: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``obj``.

    Raise ``InvalidEntry`` for anything JCS cannot express: NaN or infinite floats, integers
    beyond ±(2**53 - 1), non-string keys, lone surrogates, unsupported types, or nesting deep
    enough to exhaust the recursion limit.
    """
    fast = _fast_path(obj)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(obj)
    except rfc8785.IntegerDomainError as e:
        raise InvalidEntry(
            f"entry is not canonical JSON: {e}",
            field="entry",
            value=str(e).split(" ", 1)[0],
            expected="integers between -(2**53 - 1) and 2**53 - 1",
        ) from None
    except rfc8785.FloatDomainError as e:
        raise InvalidEntry(
            f"entry is not canonical JSON: {e}",
            field="entry",
            expected="finite numbers (no NaN or Infinity)",
        ) from None
    except UnicodeError:  # rfc8785 sorts keys by .encode("utf-16be"), which a lone surrogate breaks
        raise InvalidEntry(
            "entry is not canonical JSON: a key holds a lone surrogate",
            field="entry",
            expected="strings of valid Unicode (no lone surrogates)",
        ) from None
    except rfc8785.CanonicalizationError as e:
        raise InvalidEntry(
            f"entry is not canonical JSON: {e}",
            field="entry",
            expected="JSON values only: objects with string keys, arrays, strings of valid "
            "Unicode, finite numbers, true, false, null",
        ) from None
    except RecursionError:
        raise InvalidEntry(
            "entry is not canonical JSON: nested too deeply (or refers to itself)",
            field="entry",
            expected="a JSON value nested less deeply",
        ) from None
    except ValueError:  # e.g. an integer too long even to print in rfc8785's error message
        raise InvalidEntry(
            "entry is not canonical JSON: a number is out of range",
            field="entry",
            expected="integers between -(2**53 - 1) and 2**53 - 1",
        ) from None


def stable_canonical_bytes(obj: Any) -> bytes:
    """Return ``canonical_bytes(obj)``, also requiring that the bytes read back to themselves.

    A float such as 1e16 encodes as ``10000000000000000``, which reads back as an integer
    beyond 2**53 that JCS refuses: such a value could be stored but its certificate could
    never be verified. Only values off the fast path (unusual floats) need the round trip.
    """
    fast = _fast_path(obj)
    if fast is not None:
        return fast
    data = canonical_bytes(obj)
    try:
        again = canonical_bytes(json.loads(data))
    except InvalidEntry:
        again = b""
    if again != data:
        raise InvalidEntry(
            "entry holds a number that does not survive a JSON round trip (a float of "
            "magnitude 2**53 or more reads back as an integer JCS cannot express)",
            field="entry",
            expected="integers below 2**53, ordinary floats, or the number as a string",
        )
    return data


# A \uXXXX escape of a surrogate; only then can json.loads produce a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json_object(
    text: str | bytes, *, field: str, error: type[InputError] = InvalidEntry
) -> dict[str, Any]:
    """Parse ``text`` as one JSON object, strictly; raise ``error`` naming ``field`` otherwise.

    Refused: invalid UTF-8, a byte-order mark, duplicate keys, NaN/Infinity (and numbers that
    overflow to infinity), lone surrogates, and any top-level value that is not an object.
    """
    expected = "a JSON object (UTF-8, no duplicate keys, finite numbers)"

    def fail(problem: str, value: Any = None) -> InputError:
        return error(f"{field}: {problem}", field=field, value=value, expected=expected)

    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            # Decode ourselves: json.loads(bytes) would also accept UTF-16 and UTF-32.
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(f"not valid UTF-8 (byte {e.start})") from None
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise fail(f"not valid Unicode (lone surrogate at character {e.start})") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    raise fail(f"duplicate key {k!r}", k)
                seen.add(k)
        return out

    def constant(name: str) -> Any:
        raise fail(f"{name} is not a JSON number", name)

    def finite(literal: str) -> float:
        f = float(literal)
        if not math.isfinite(f):
            raise fail(f"number {literal} is out of range", literal)
        return f

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=finite)
    except json.JSONDecodeError as e:
        raise fail(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise fail("nested too deeply") from None
    except ValueError as e:  # e.g. an integer literal longer than Python's digit limit
        raise fail(f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise fail(f"top-level value is {type(obj).__name__}, not an object")
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_unicode(obj, fail)
    return obj


def _check_unicode(value: Any, fail: Callable[[str], InputError]) -> None:
    """Raise via ``fail`` if any key or string holds a lone surrogate."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise fail("string holds a lone surrogate (not valid Unicode)") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
