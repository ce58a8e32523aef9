"""Ledger entries: shape validation and the size cap.

An entry is one JSON object that holds metadata and hashes only (DESIGN §3). The ledger checks
its shape and size, never its content: the layers above keep patient data out of entries.
"""

from __future__ import annotations

import re
from typing import Any

from medledger.crypto.canonical import stable_canonical_bytes
from medledger.errors import EntryTooLarge, InvalidEntry

DEFAULT_MAX_ENTRY_BYTES = 64 * 1024
ENTRY_VERSION = 1

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_TS = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_HEX = re.compile(r"^[0-9a-f]+$")

# Optional top-level members and what each must be; anything else belongs in "meta".
_STRINGS = ("inst", "ref", "subject")


def validate_entry(
    obj: Any, *, max_bytes: int = DEFAULT_MAX_ENTRY_BYTES, where: str = "entry"
) -> bytes:
    """Check an entry's shape and size and return its RFC 8785 canonical bytes.

    Requires ``v`` = 1 and a dotted lowercase ``type`` such as ``record.put``. Optional members:
    ``inst``, ``ref``, ``subject`` (strings), ``ts`` (RFC 3339), ``payload_hash`` (lowercase
    hex) and ``meta`` (object). Raise InvalidEntry or EntryTooLarge naming the member.
    """
    if not isinstance(obj, dict):
        raise InvalidEntry(
            f"{where} must be a JSON object, got {_json_type(obj)}",
            field=where,
            value=obj,
            expected="JSON object",
        )
    v = obj.get("v")
    if v != ENTRY_VERSION or isinstance(v, bool):
        raise InvalidEntry(
            f"{where}.v must be {ENTRY_VERSION}", field=f"{where}.v", value=v, expected="1"
        )
    kind = obj.get("type")
    if not isinstance(kind, str) or not _TYPE.fullmatch(kind):
        raise InvalidEntry(
            f"{where}.type must be a dotted lowercase name",
            field=f"{where}.type",
            value=kind,
            expected="e.g. record.put, lineage.event, audit.batch",
        )
    for name, value in obj.items():
        _check_member(name, value, where)
    data = stable_canonical_bytes(obj)
    if len(data) > max_bytes:
        raise EntryTooLarge(
            f"{where} is {len(data)} bytes in canonical form, the limit is {max_bytes}",
            field=where,
            value=f"{len(data)} bytes",
            expected=f"at most {max_bytes} bytes",
        )
    return data


def _check_member(name: str, value: Any, where: str) -> None:
    field = f"{where}.{name}"
    if name in ("v", "type"):
        return
    if name in _STRINGS:
        if not isinstance(value, str) or not value:
            raise InvalidEntry(
                f"{field} must be a non-empty string", field=field, value=value, expected="string"
            )
    elif name == "ts":
        if not isinstance(value, str) or not _TS.fullmatch(value):
            raise InvalidEntry(
                f"{field} must be an RFC 3339 time",
                field=field,
                value=value,
                expected="e.g. 2026-11-22T08:00:00Z",
            )
    elif name == "payload_hash":
        if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
            raise InvalidEntry(
                f"{field} must be lowercase hex",
                field=field,
                value=value,
                expected="lowercase hex digest",
            )
    elif name == "meta":
        if not isinstance(value, dict):
            raise InvalidEntry(
                f"{field} must be a JSON object", field=field, value=value, expected="object"
            )
    else:
        raise InvalidEntry(
            f"{where} has unknown member {name!r}; put extra data under meta",
            field=field,
            value=name,
            expected="v, type, inst, ts, ref, subject, payload_hash, meta",
        )


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__
