"""Read and write the small JSON secret files (master key, group secret) the records layer uses.

The habits are those of ``crypto/keys.py``: a new file appears complete or not at all, with mode
0600, and never replaces an existing one; a file that group or other may access is refused on
read. The same JSON may instead come from an environment variable (container secrets).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medledger.crypto._docs import bounded, exact_fields, expect
from medledger.crypto.canonical import parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.keys import read_private_file
from medledger.crypto.keys import write_private_file as write_secret_file
from medledger.errors import MalformedDocument, StateError

__all__ = ["check_format", "read_secret_doc", "secret_hex", "write_secret_file"]


def read_secret_doc(
    path: str | os.PathLike[str] | None, env: str, what: str, fields: tuple[str, ...]
) -> dict[str, Any]:
    """Return the document from the file ``path``, or from ``$env`` when ``path`` is None.

    The document has exactly ``fields``. Raise ``StateError`` if there is no such file or
    variable or the file's mode lets group/other read it, ``MalformedDocument`` for bad JSON.
    """
    if path is None:
        value = os.environ.get(env)
        if value is None or not value.strip():
            raise StateError(
                f"no {what}: pass a {what} file or set the environment variable {env}", env=env
            )
        where = f"{what} in ${env}"
        raw = value.encode("utf-8", "surrogateescape")
    else:
        where = f"{what} {path}"
        raw = read_private_file(Path(path), what)
    doc = parse_json_object(bounded(raw, where), field=where, error=MalformedDocument)
    try:
        exact_fields(doc, fields)
    except MalformedDocument as e:
        # An unexpected field might be a misspelt secret field: never echo its value.
        raise MalformedDocument(
            f"{where}: {e.message}", field=e.field, value="(redacted)", expected=e.expected
        ) from None
    return doc


def secret_hex(doc: dict[str, Any], field: str, size: int) -> bytes:
    """Decode the secret ``doc[field]`` as ``size`` bytes of lowercase hex, never echoing it."""
    try:
        return from_hex(doc[field], field=field, size=size)
    except MalformedDocument as e:
        # The default error echoes the bad value; for a secret that would leak it into logs.
        raise MalformedDocument(
            e.message, field=field, value="(redacted)", expected=e.expected
        ) from None


def check_format(doc: dict[str, Any], fmt: str) -> None:
    """Raise ``MalformedDocument`` unless ``doc["format"]`` is ``fmt``."""
    expect(doc["format"] == fmt, "format", doc["format"], fmt)
