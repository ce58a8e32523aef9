"""Signing-key files, key ids, and (re-exported) trust bundles.

A signing-key file holds one node's private key::

    {"format": "medledger-signing-key/1", "suite": "sm-v1", "alg": "sm2-sm3",
     "key_id": "…16 hex…", "node": "hospital-a", "private_key": "…hex…"}

It is created with mode 0600 and refused on read if group or other may access it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from medledger.crypto._docs import (
    MAX_FILE,
    bounded,
    exact_fields,
    expect,
    key_id,
    node_name,
    suite_for,
)
from medledger.crypto.canonical import parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.suite import SigningKey, Suite
from medledger.crypto.trust import TRUST_BUNDLE_FORMAT, TrustBundle, TrustedKey, load_trust_bundle
from medledger.errors import MalformedDocument, StateError, StorageError

__all__ = [
    "SIGNING_KEY_FORMAT",
    "TRUST_BUNDLE_FORMAT",
    "TrustBundle",
    "TrustedKey",
    "key_id",
    "load_trust_bundle",
    "read_signing_key",
    "write_signing_key",
]

SIGNING_KEY_FORMAT = "medledger-signing-key/1"
_FIELDS = ("format", "suite", "alg", "key_id", "node", "private_key")


def write_signing_key(
    path: str | os.PathLike[str], suite: Suite, key: SigningKey, *, node: str
) -> None:
    """Write ``key`` to a new file at ``path`` with mode 0600.

    Raise ``StateError`` if ``path`` exists (or its directory is missing or not writable) and
    ``StorageError`` if the disk fails. The file appears complete or not at all: the bytes go to
    a 0600 temporary file in the same directory, are fsynced, and are then hard-linked into
    place, which (unlike rename) fails rather than replaces when the name is taken.
    """
    doc = {
        "format": SIGNING_KEY_FORMAT,
        "suite": suite.name,
        "alg": suite.sig_alg,
        "key_id": key_id(suite, key.public_bytes),
        "node": node_name(node, "node"),
        "private_key": key.private_bytes().hex(),
    }
    write_private_file(path, doc, "key")


def _link_no_clobber(tmp: Path, target: Path) -> None:
    exists = StateError(f"refusing to overwrite existing key file {target}", path=str(target))
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise exists from None
    except OSError:
        # Some filesystems have no hard links; fall back to rename after a last check.
        if os.path.lexists(target):
            raise exists from None
        os.rename(tmp, target)


def _fsync_dir(directory: Path) -> None:
    # Make the new directory entry durable too, not just the file's bytes.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: str | os.PathLike[str], doc: dict[str, Any], what: str) -> None:
    """Write ``doc`` as JSON to a new file at ``path``, mode 0600, complete or not at all.

    The bytes go to a 0600 temporary file in the same directory (O_EXCL: never readable by
    others, not even between create and chmod), are fsynced, then hard-linked into place,
    which (unlike rename) fails rather than replaces when the name is taken. Raise
    ``StateError`` if ``path`` exists or its directory is unusable, ``StorageError`` if the
    disk fails.
    """
    target = Path(path)
    if os.path.lexists(target):
        raise StateError(f"refusing to overwrite existing {what} file {target}", path=str(target))
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
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


def read_private_file(target: Path, what: str) -> bytes:
    """Read a secret file, refusing one that is not a regular file or that others may read.

    Raise ``StateError`` naming the file and, for a loose mode, the chmod that fixes it.
    """
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise StateError(f"cannot read {what} file {target}: {e.strerror}", path=str(target)) from e
    try:
        # fstat the open file, not the path, so the file checked is the file read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{what} file {target} is not a regular file", path=str(target))
        mode = st.st_mode & 0o777
        if mode & 0o077:
            raise StateError(
                f"{what} file {target} has mode {mode:04o}, so other users may read the "
                f"secret in it; run: chmod 600 {target}",
                path=str(target),
                mode=f"{mode:04o}",
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_FILE + 1)


def read_signing_key(path: str | os.PathLike[str]) -> tuple[Suite, SigningKey, str, str]:
    """Read a signing-key file; return ``(suite, key, key_id, node)``.

    Raise ``StateError`` if the file cannot be read or group/other may access it
    (mode & 0o077), ``UnknownSuite`` for a suite nobody implements, and
    ``MalformedDocument`` for any other bad content.
    """
    target = Path(path)
    raw = read_private_file(target, "key")
    where = f"signing key {target}"
    doc = parse_json_object(bounded(raw, where), field=where, error=MalformedDocument)
    exact_fields(doc, _FIELDS)
    expect(doc["format"] == SIGNING_KEY_FORMAT, "format", doc["format"], SIGNING_KEY_FORMAT)
    suite = suite_for(doc["suite"], doc["alg"])
    try:
        private = from_hex(doc["private_key"], field="private_key")
    except MalformedDocument as e:
        # The default error echoes the bad value; for a private key that would leak it to logs.
        raise MalformedDocument(
            e.message, field="private_key", value="(redacted)", expected=e.expected
        ) from None
    key = suite.load_signing_key(private)
    kid = key_id(suite, key.public_bytes)
    expect(doc["key_id"] == kid, "key_id", doc["key_id"], f"{kid} (the id of this key)")
    return suite, key, kid, node_name(doc["node"], "node")
