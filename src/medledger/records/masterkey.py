"""The master key that wraps every patient's data key (envelope encryption at rest).

A master-key file holds one symmetric key for the suite's AEAD::

    {"format": "medledger-master-key/1", "suite": "sm-v1", "kid": "…16 hex…", "key": "…hex…"}

``kid`` is the first 16 hex characters of ``suite.hash(b"medledger-master-key/1" ‖ key)``: it
names the key in the ``record_keys`` table without revealing it, and the prefix keeps it from
ever equalling a signing-key id. The file is created with mode 0600, never overwrites, and is
refused on read if group or other may access it. The same JSON may come from the environment
variable ``MEDLEDGER_MASTER_KEY`` instead (container secrets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from medledger.crypto._docs import expect, suite_for
from medledger.crypto.suite import Suite
from medledger.records._secretfile import (
    check_format,
    read_secret_doc,
    secret_hex,
    write_secret_file,
)

__all__ = [
    "MASTER_KEY_ENV",
    "MASTER_KEY_FORMAT",
    "MasterKey",
    "generate_master_key",
    "load_master_key",
    "master_kid",
]

MASTER_KEY_FORMAT = "medledger-master-key/1"
MASTER_KEY_ENV = "MEDLEDGER_MASTER_KEY"
_FIELDS = ("format", "suite", "kid", "key")


def master_kid(suite: Suite, key: bytes) -> str:
    """Return the id of master ``key``: 16 hex of the suite hash of the format tag and key."""
    return suite.hash(MASTER_KEY_FORMAT.encode() + bytes(key)).hex()[:16]


@dataclass(frozen=True)
class MasterKey:
    """One master key: the suite whose AEAD it keys, its id, and the key bytes."""

    suite: Suite
    kid: str
    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        # Never the key, and the suite by name only (its object repr says nothing useful).
        return f"MasterKey(suite={self.suite.name!r}, kid={self.kid!r})"

    @classmethod
    def from_bytes(cls, suite: Suite, key: bytes) -> MasterKey:
        """Return the master key ``key`` for ``suite``, checking its size."""
        expect(
            len(key) == suite.aead_key_size,
            "key",
            f"{len(key)} bytes",
            f"{suite.aead_key_size} bytes (the {suite.aead_name} key size)",
        )
        return cls(suite, master_kid(suite, key), bytes(key))


def generate_master_key(path: str | os.PathLike[str], suite: Suite) -> MasterKey:
    """Create a random master key for ``suite`` and write it to the new file ``path`` (0600).

    Raise ``StateError`` if ``path`` exists or cannot be created, ``StorageError`` if the disk
    fails.
    """
    master = MasterKey.from_bytes(suite, os.urandom(suite.aead_key_size))
    write_secret_file(path, master_key_doc(master), "master key")
    return master


def master_key_doc(master: MasterKey) -> dict[str, str]:
    """Return the JSON document for ``master`` (what the file or the variable holds)."""
    return {
        "format": MASTER_KEY_FORMAT,
        "suite": master.suite.name,
        "kid": master.kid,
        "key": master.key.hex(),
    }


def load_master_key(path: str | os.PathLike[str] | None) -> MasterKey:
    """Load the master key from ``path``, or from ``$MEDLEDGER_MASTER_KEY`` when ``path`` is None.

    Raise ``StateError`` if there is neither, or the file is group/other-accessible;
    ``UnknownSuite`` for an unknown suite; ``MalformedDocument`` naming the field for any other
    bad content (a wrong ``kid`` included: it catches a key pasted into the wrong file).
    """
    doc = read_secret_doc(path, MASTER_KEY_ENV, "master key", _FIELDS)
    check_format(doc, MASTER_KEY_FORMAT)
    suite = suite_for(doc["suite"])
    key = secret_hex(doc, "key", suite.aead_key_size)
    master = MasterKey.from_bytes(suite, key)
    expect(doc["kid"] == master.kid, "kid", doc["kid"], f"{master.kid} (the id of this key)")
    return master
