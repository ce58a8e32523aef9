"""Helpers shared by the key-file and trust-bundle readers: key ids and field checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medledger.crypto.registry import get_suite
from medledger.crypto.suite import Suite
from medledger.errors import MalformedDocument, StateError

MAX_FILE = 1 << 20  # key files and bundles are tiny; refuse to slurp anything huge


def key_id(suite: Suite, public_bytes: bytes) -> str:
    """Return the key id: the first 16 hex characters of the suite hash of the public key."""
    return suite.hash(bytes(public_bytes)).hex()[:16]


def expect(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise ``MalformedDocument`` for field ``name`` unless ``ok``."""
    if not ok:
        raise MalformedDocument(
            f"{name}: expected {expected}", field=name, value=value, expected=expected
        )


def exact_fields(obj: dict[str, Any], names: tuple[str, ...], at: str = "") -> None:
    """Require exactly the fields ``names`` in ``obj`` (``at`` prefixes the field names)."""
    for name in names:
        expect(name in obj, at + name, None, "this field to be present")
    for name in obj:
        expect(name in names, at + name, obj[name], "no such field; fields: " + ", ".join(names))


def suite_for(name: Any, alg: Any = None, at: str = "") -> Suite:
    """Return suite ``name`` (``UnknownSuite`` if none); check ``alg`` matches it when given."""
    suite = get_suite(name)
    if alg is not None:
        expect(alg == suite.sig_alg, at + "alg", alg, f"{suite.sig_alg} (the {suite.name} one)")
    return suite


def node_name(node: Any, name: str) -> str:
    """Return ``node`` if it is a non-empty string; raise ``MalformedDocument`` otherwise."""
    expect(isinstance(node, str) and node != "", name, node, "a non-empty node name")
    return str(node)


def bounded(raw: bytes, where: str) -> bytes:
    """Return ``raw`` unless it is longer than ``MAX_FILE`` bytes."""
    expect(len(raw) <= MAX_FILE, where, f"{len(raw)}+ bytes", f"at most {MAX_FILE} bytes")
    return raw


def read_small(path: Path, what: str) -> bytes:
    """Return the bytes of the small file ``path``; raise ``StateError`` if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return bounded(f.read(MAX_FILE + 1), f"{what} {path}")
    except OSError as e:
        raise StateError(f"cannot read {what} {path}: {e.strerror}", path=str(path)) from e
