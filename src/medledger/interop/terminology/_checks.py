"""Check the text values of dictionaries and mappings, and read resource dicts defensively.

Codes and names come from hospital spreadsheets and from FHIR resources other systems sent, so
every value is checked once, here, with the same rules everywhere: a code is a FHIR ``code``
(no leading, trailing or doubled whitespace), names are trimmed text, and neither may hold
control characters (they break CSV, XLSX and HL7 alike).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from medledger.errors import InputError

__all__ = [
    "MAX_CODE",
    "MAX_TEXT",
    "check_code",
    "check_instance",
    "check_optional_text",
    "check_resource",
    "check_text",
    "get_list",
    "get_str",
    "need_str",
    "put_texts",
]

MAX_CODE = 64
"""Longest item code accepted; hospital item codes are far shorter."""
MAX_TEXT = 200
"""Longest item name, alias or comment accepted."""

_CODE = re.compile(r"\S+( \S+)*")
_BAD_CATEGORIES = frozenset({"Cc", "Cs"})
_NONCHARACTERS = frozenset({"\ufffe", "\uffff"})


def _bad_character(value: str) -> str | None:
    """Return the first character that no CSV, XLSX or HL7 field can carry, if any."""
    for char in value:
        if unicodedata.category(char) in _BAD_CATEGORIES or char in _NONCHARACTERS:
            return char
    return None


def _checked(value: object, field: str, what: str, article: str, limit: int, expected: str) -> str:
    """Return ``value`` if it is a string of 1 to ``limit`` characters without control
    characters; raise InputError naming ``field`` (``article`` reads e.g. ``an item code``)."""
    if not isinstance(value, str) or not value:
        raise InputError(
            f"{field}: {article} is required", field=field, value=value, expected=expected
        )
    if len(value) > limit:
        raise InputError(
            f"{field}: {what} is {len(value)} characters long",
            field=field,
            value=value,
            expected=expected,
        )
    bad = _bad_character(value)
    if bad is not None:
        raise InputError(
            f"{field}: {what} contains the control character U+{ord(bad):04X}",
            field=field,
            value=value,
            expected=expected,
        )
    return value


def check_code(value: object, field: str) -> str:
    """Return ``value`` if it is a valid item code; raise InputError naming ``field`` if not."""
    expected = (
        f"a code of 1 to {MAX_CODE} characters without control characters or spaces at the ends"
    )
    code = _checked(value, field, "item code", "an item code", MAX_CODE, expected)
    if not _CODE.fullmatch(code):
        raise InputError(
            f"{field}: item code {code!r} has spaces at an end or doubled spaces",
            field=field,
            value=code,
            expected=expected,
        )
    return code


def check_text(value: object, field: str, what: str = "name") -> str:
    """Return ``value`` if it is non-empty trimmed text without control characters."""
    expected = f"text of 1 to {MAX_TEXT} characters, trimmed, without control characters"
    text = _checked(value, field, what, f"a {what}", MAX_TEXT, expected)
    if text != text.strip():
        raise InputError(
            f"{field}: {what} {text!r} has spaces at an end",
            field=field,
            value=text,
            expected=expected,
        )
    return text


def check_optional_text(value: object, field: str, what: str = "name") -> str | None:
    """Return ``value`` (None allowed) if it is valid text as :func:`check_text` defines it."""
    return None if value is None else check_text(value, field, what)


def put_texts(resource: dict[str, Any], **texts: str | None) -> None:
    """Set each given text member of ``resource``, in order, checked as :func:`check_text`
    (the member's name is the field and what is named); None leaves a member out."""
    for key, value in texts.items():
        if value is not None:
            resource[key] = check_text(value, key, key)


def check_instance(value: object, kind: type[Any], field: str) -> None:
    """Raise InputError naming ``field`` unless ``value`` is a ``kind`` (e.g. a DictItem)."""
    if not isinstance(value, kind):
        name = kind.__name__
        raise InputError(
            f"{field}: expected a {name}", field=field, value=repr(value), expected=f"a {name}"
        )


def check_resource(resource: object, resource_type: str) -> None:
    """Raise InputError naming ``resourceType`` unless ``resource`` is a dict of that type."""
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        got = resource.get("resourceType") if isinstance(resource, dict) else resource
        raise InputError(
            f"expected a {resource_type} resource",
            field="resourceType",
            value=got,
            expected=resource_type,
        )


def get_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    """Return the string member ``key`` of ``obj``, None if absent."""
    return None if obj.get(key) is None else need_str(obj, key, where)


def need_str(obj: dict[str, Any], key: str, where: str) -> str:
    """Return the string member ``key`` of ``obj``; raise InputError naming the path if not."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise InputError(
            f"{where}.{key}: expected a string",
            field=f"{where}.{key}",
            value=value,
            expected="a JSON string",
        )
    return value


def get_list(obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """Return the array member ``key`` of ``obj`` (empty if absent); each item must be an object."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            f"{where}.{key}: expected an array",
            field=f"{where}.{key}",
            value=value,
            expected="a JSON array of objects",
        )
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            path = f"{where}.{key}[{index}]"
            raise InputError(
                f"{path}: expected an object", field=path, value=item, expected="a JSON object"
            )
    return value
