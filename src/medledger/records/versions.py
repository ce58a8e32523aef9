"""The record store's value types: versions, index rows, written and loaded results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Crypter(Protocol):
    """What the store needs from the key ring (records.keyring.KeyRing)."""

    def encrypt(self, subject: str, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, subject: str, blob: bytes, aad: bytes) -> bytes: ...

    def data_key(self, subject: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One search value of the current version (see records.search_params)."""

    param: str
    kind: str
    system: str | None
    value: str
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True, slots=True)
class Version:
    rtype: str
    rid: str
    vid: int
    ts: str
    deleted: bool
    inst: str
    subject: str
    payload_hash: str
    state: str
    ledger_index: int | None

    @property
    def ref(self) -> str:
        return f"{self.rtype}/{self.rid}/_history/{self.vid}"


@dataclass(frozen=True, slots=True)
class Written:
    """A write's outcome: the version and the ledger entry to append (None if nothing new)."""

    version: Version
    entry: bytes | None
    created: bool
    resource: dict[str, Any] | None = None  # the stored body (id and meta set), if written


@dataclass(frozen=True, slots=True)
class Loaded:
    version: Version
    resource: dict[str, Any]
    salt: bytes
