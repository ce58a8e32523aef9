"""Institution signing keys: one key file per institution under ``DATA/institutions/``.

Each institution signs what it submits with its own key, in the node's crypto suite
(Ed25519 under ``intl-v1``, SM2 under ``sm-v1``). The private key lives only in
``DATA/institutions/<id>.key`` (mode 0600, directory 0700, the ``medledger-signing-key/1``
format of ``crypto.keys``); the directory records its key id and public key, which is all a
listing shows.

A key file already present for an institution that is not yet in the directory (left by an
interrupted ``institution add``, or provisioned by hand) is adopted if it is valid, private
and in the node's suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medledger.access.model import check_id
from medledger.crypto.keys import key_id, read_signing_key, write_signing_key
from medledger.crypto.suite import SigningKey, Suite
from medledger.errors import StateError

__all__ = ["KEY_DIR", "InstitutionKey", "create_or_adopt", "key_path", "load_key"]

KEY_DIR = "institutions"


@dataclass(frozen=True, slots=True)
class InstitutionKey:
    """The public half of an institution's key, and whether this call created the file."""

    institution: str
    suite: str
    key_id: str
    public_key: str  # hex
    path: Path
    created: bool


def key_path(data_dir: Path, institution: str) -> Path:
    """Return ``DATA/institutions/<id>.key`` (the id is validated: no path tricks)."""
    return Path(data_dir) / KEY_DIR / f"{check_id(institution, 'institution')}.key"


def create_or_adopt(data_dir: Path, suite: Suite, institution: str) -> InstitutionKey:
    """Create the institution's key file (0600), or adopt a valid one already there.

    Raise StateError if an existing file is readable by others, in another suite, or made
    for another institution.
    """
    path = key_path(data_dir, institution)
    folder = path.parent
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    if os.path.lexists(path):
        found, key, _kid, node = read_signing_key(path)
        if found.name != suite.name or node != institution:
            raise StateError(
                f"key file {path} holds a {found.name} key for {node!r}; expected a "
                f"{suite.name} key for {institution!r}. Move it away and try again",
                path=str(path),
            )
        return _public(institution, suite, key, path, created=False)
    key = suite.generate_signing_key()
    write_signing_key(path, suite, key, node=institution)
    return _public(institution, suite, key, path, created=True)


def load_key(data_dir: Path, institution: str) -> tuple[Suite, SigningKey, str]:
    """Return ``(suite, private key, key id)`` of the institution, for signing submissions."""
    suite, key, kid, node = read_signing_key(key_path(data_dir, institution))
    if node != institution:
        raise StateError(f"key file of {institution!r} names {node!r}", institution=institution)
    return suite, key, kid


def _public(
    institution: str, suite: Suite, key: SigningKey, path: Path, *, created: bool
) -> InstitutionKey:
    pub = key.public_bytes
    return InstitutionKey(institution, suite.name, key_id(suite, pub), pub.hex(), path, created)
