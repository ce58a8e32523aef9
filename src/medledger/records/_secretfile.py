"""Read and write the small JSON secret files (master key, group secret) the records layer uses.

The habits are those of ``crypto/keys.py``: a new file appears complete or not at all, with mode
0600, and never replaces an existing one; a file that group or other may access is refused on
read. The same JSON may instead come from an environment variable (container secrets).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from medledger.crypto._docs import bounded, exact_fields, expect
from medledger.crypto.canonical import parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.keys import _fsync_dir, _link_no_clobber, read_private_file
from medledger.errors import MalformedDocument, StateError, StorageError

__all__ = ["check_format", "read_secret_doc", "secret_hex", "write_secret_file"]


def write_secret_file(path: str | os.PathLike[str], doc: dict[str, Any], what: str) -> None:
    """Write ``doc`` as JSON to a new file at ``path`` with mode 0600.

    Raise ``StateError`` if ``path`` exists or its directory is missing or not writable, and
    ``StorageError`` if the disk fails.
    """
    target = Path(path)
    if os.path.lexists(target):
        raise StateError(f"refusing to overwrite existing {what} file {target}", path=str(target))
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        # O_EXCL with 0600 from the start: the secret is never readable by others, not even
        # for the moment between create and chmod.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            _link_no_clobber(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(target.parent)
    except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
        raise StateError(
            f"cannot write {what} file {target}: {e.strerror}", path=str(target)
        ) from e
    except OSError as e:
        raise StorageError(f"cannot write {what} file {target}: {e}", path=str(target)) from e


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
