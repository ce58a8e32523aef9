"""The signed block header (the signed tree head) and its exact signed bytes.

The ledger builds headers with this module and the offline verifier checks them with it, so
there is one definition of what a signature covers: the RFC 8785 canonical JSON of the header
object *without* its ``signatures`` member (see docs/certificate.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.suite import Suite
from medledger.crypto.trust import TrustBundle
from medledger.errors import MalformedDocument, SignatureInvalid

HEADER_VERSION = 1
ZERO_HASH = bytes(32)
_TS = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_CHAIN = re.compile(r"^[0-9a-f]{32}$")
_FIELDS = ("v", "chain", "height", "prev", "tree_size", "root", "ts", "proposer")


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A block header and the signatures over its canonical bytes."""

    chain: str
    height: int
    prev: bytes
    tree_size: int
    root: bytes
    ts: str
    proposer: str
    signatures: tuple[Signature, ...] = ()
    v: int = HEADER_VERSION

    def body(self) -> dict[str, Any]:
        """Return the header as JSON without signatures: exactly what is signed and hashed."""
        return {
            "v": self.v,
            "chain": self.chain,
            "height": self.height,
            "prev": self.prev.hex(),
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "ts": self.ts,
            "proposer": self.proposer,
        }

    def signing_bytes(self) -> bytes:
        """Return the bytes every signature covers: RFC 8785 canonical JSON of ``body()``."""
        return canonical_bytes(self.body())

    def header_hash(self, suite: Suite) -> bytes:
        """Return H(signing bytes): the value the next header's ``prev`` must hold."""
        return suite.hash(self.signing_bytes())

    def with_signatures(self, signatures: tuple[Signature, ...]) -> SignedHeader:
        return SignedHeader(
            self.chain,
            self.height,
            self.prev,
            self.tree_size,
            self.root,
            self.ts,
            self.proposer,
            signatures,
            self.v,
        )

    def to_json(self) -> dict[str, Any]:
        out = self.body()
        out["signatures"] = [{"key_id": s.key_id, "sig": s.sig.hex()} for s in self.signatures]
        return out

    @classmethod
    def from_json(cls, obj: Any, *, field: str = "header") -> SignedHeader:
        """Parse and shape-check a header; raise MalformedDocument naming the bad field."""
        if not isinstance(obj, dict):
            raise MalformedDocument(
                f"{field} must be a JSON object", field=field, value=obj, expected="object"
            )
        allowed = {*_FIELDS, "signatures"}
        extra = sorted(set(obj) - allowed)
        if extra:
            raise MalformedDocument(
                f"{field} has unknown member {extra[0]!r}",
                field=f"{field}.{extra[0]}",
                value=extra[0],
                expected="one of " + ", ".join(sorted(allowed)),
            )
        v = _int(obj, "v", field)
        if v != HEADER_VERSION:
            raise MalformedDocument(
                f"{field}.v is {v}, this verifier understands version {HEADER_VERSION}",
                field=f"{field}.v",
                value=v,
                expected=str(HEADER_VERSION),
            )
        sigs_raw = obj.get("signatures")
        if not isinstance(sigs_raw, list):
            raise MalformedDocument(
                f"{field}.signatures must be a list",
                field=f"{field}.signatures",
                value=sigs_raw,
                expected="list of {key_id, sig}",
            )
        sigs = tuple(_signature(s, f"{field}.signatures[{i}]") for i, s in enumerate(sigs_raw))
        return cls(
            chain=_match(obj, "chain", field, _CHAIN, "32 lowercase hex characters"),
            height=_int(obj, "height", field),
            prev=from_hex(obj.get("prev"), field=f"{field}.prev", size=32),
            tree_size=_int(obj, "tree_size", field),
            root=from_hex(obj.get("root"), field=f"{field}.root", size=32),
            ts=_match(obj, "ts", field, _TS, "RFC 3339 UTC time like 2026-11-22T08:00:00.000Z"),
            proposer=_match(obj, "proposer", field, _KEY_ID, "a 16-hex-character key id"),
            signatures=sigs,
            v=v,
        )


def verify_signatures(header: SignedHeader, trust: TrustBundle, suite: Suite) -> list[str]:
    """Return the trusted key ids whose signatures verify; raise unless a quorum signed.

    Signatures by unknown keys are ignored (a newer bundle may know them); a key counts once.
    """
    if header.chain != trust.chain:
        raise SignatureInvalid(
            f"header is for chain {header.chain}, the trust bundle is for chain {trust.chain}",
            check="header.chain",
        )
    message = header.signing_bytes()
    good: list[str] = []
    bad: list[str] = []
    for s in header.signatures:
        key = trust.verify_key(s.key_id)
        if key is None or s.key_id in good:
            continue
        (good if key.verify(s.sig, message) else bad).append(s.key_id)
    if len(good) < trust.quorum:
        detail = f"; invalid signature by {', '.join(bad)}" if bad else ""
        raise SignatureInvalid(
            f"header at height {header.height} has {len(good)} valid trusted signature(s), "
            f"quorum is {trust.quorum}{detail}",
            check="header.signatures",
            valid=good,
            invalid=bad,
        )
    return good


def _signature(obj: Any, field: str) -> Signature:
    if not isinstance(obj, dict) or set(obj) != {"key_id", "sig"}:
        raise MalformedDocument(
            f"{field} must be an object with exactly key_id and sig",
            field=field,
            value=obj,
            expected='{"key_id": hex16, "sig": hex}',
        )
    key_id = _match(obj, "key_id", field, _KEY_ID, "a 16-hex-character key id")
    return Signature(key_id, from_hex(obj["sig"], field=f"{field}.sig", size=64))


def _int(obj: dict[str, Any], name: str, field: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise MalformedDocument(
            f"{field}.{name} must be a non-negative integer below 2**53",
            field=f"{field}.{name}",
            value=value,
            expected="integer in 0 .. 2**53 - 1",
        )
    return value


def _match(obj: dict[str, Any], name: str, field: str, pattern: re.Pattern[str], want: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedDocument(
            f"{field}.{name} must be {want}", field=f"{field}.{name}", value=value, expected=want
        )
    return value
