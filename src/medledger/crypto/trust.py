"""Trust bundles (``medledger-keys/1``): the public keys a verifier accepts for one chain.

::

    {"format": "medledger-keys/1", "chain": "…", "suite": "intl-v1", "quorum": 2,
     "keys": [{"key_id": "…", "alg": "ed25519", "public_key": "…hex…", "node": "hospital-a"}]}

``quorum`` is how many distinct listed keys must sign a tree head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from medledger.crypto._docs import exact_fields, expect, key_id, node_name, read_small, suite_for
from medledger.crypto.canonical import parse_json_object
from medledger.crypto.hexcodec import from_hex
from medledger.crypto.suite import Suite, VerifyKey
from medledger.errors import MalformedDocument

__all__ = ["TRUST_BUNDLE_FORMAT", "TrustBundle", "TrustedKey", "load_trust_bundle"]

TRUST_BUNDLE_FORMAT = "medledger-keys/1"


@dataclass(frozen=True)
class TrustedKey:
    """One public key in a trust bundle."""

    key_id: str
    alg: str
    public_key: bytes
    node: str

    @classmethod
    def of(cls, suite: Suite, public_bytes: bytes, *, node: str) -> TrustedKey:
        """Describe the ``suite`` public key ``public_bytes`` held by ``node``."""
        pub = bytes(public_bytes)
        return cls(key_id(suite, pub), suite.sig_alg, pub, node)


@dataclass(frozen=True)
class TrustBundle:
    """The keys a verifier trusts for ``chain``, and the ``quorum`` of them a head needs.

    Construction checks everything (also when built in code rather than parsed), so a
    ``TrustBundle`` that exists is valid.
    """

    format: ClassVar[str] = TRUST_BUNDLE_FORMAT
    chain: str
    suite: str
    quorum: int
    keys: tuple[TrustedKey, ...]
    _verify_keys: dict[str, VerifyKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check every invariant and load each key once; raise ``MalformedDocument`` if not."""
        object.__setattr__(self, "keys", tuple(self.keys))
        expect(
            isinstance(self.chain, str) and self.chain != "",
            "chain",
            self.chain,
            "a non-empty string",
        )
        suite = suite_for(self.suite)
        expect(len(self.keys) > 0, "keys", [], "at least one key")
        loaded: dict[str, VerifyKey] = {}
        for i, k in enumerate(self.keys):
            at = f"keys[{i}]."
            expect(k.alg == suite.sig_alg, at + "alg", k.alg, suite.sig_alg)
            try:
                vk = suite.load_verify_key(k.public_key)
            except MalformedDocument as e:  # re-raise naming where in the bundle it is
                raise MalformedDocument(
                    f"{at}public_key: {e.message}",
                    field=at + "public_key",
                    value=k.public_key,
                    expected=e.expected,
                ) from None
            want = key_id(suite, k.public_key)
            expect(k.key_id == want, at + "key_id", k.key_id, f"{want} (the id of this key)")
            expect(want not in loaded, at + "key_id", k.key_id, "each key listed only once")
            node_name(k.node, at + "node")
            loaded[want] = vk
        n = len(self.keys)
        ok = type(self.quorum) is int and 1 <= self.quorum <= n
        expect(ok, "quorum", self.quorum, f"an integer from 1 to {n} (the number of keys)")
        object.__setattr__(self, "_verify_keys", loaded)

    def verify_key(self, key_id: str) -> VerifyKey | None:
        """Return the trusted key with this id, or None if the bundle does not list it."""
        return self._verify_keys.get(key_id)

    def to_json(self) -> dict[str, Any]:
        """Return the ``medledger-keys/1`` JSON object."""
        return {
            "format": TRUST_BUNDLE_FORMAT,
            "chain": self.chain,
            "suite": self.suite,
            "quorum": self.quorum,
            "keys": [
                {"key_id": k.key_id, "alg": k.alg, "public_key": k.public_key.hex(), "node": k.node}
                for k in self.keys
            ],
        }

    @classmethod
    def from_json(cls, obj: Any) -> TrustBundle:
        """Validate a parsed ``medledger-keys/1`` object and build the bundle from it.

        Raise ``MalformedDocument`` naming the field, the value and what was wanted, or
        ``UnknownSuite`` for a suite nobody implements.
        """
        expect(isinstance(obj, dict), "trust bundle", type(obj).__name__, "a JSON object")
        exact_fields(obj, ("format", "chain", "suite", "quorum", "keys"))
        expect(obj["format"] == TRUST_BUNDLE_FORMAT, "format", obj["format"], TRUST_BUNDLE_FORMAT)
        suite = suite_for(obj["suite"])
        entries = obj["keys"]
        expect(isinstance(entries, list), "keys", entries, "a list of keys")
        keys = []
        for i, e in enumerate(entries):
            at = f"keys[{i}]"
            expect(isinstance(e, dict), at, e, "a JSON object")
            exact_fields(e, ("key_id", "alg", "public_key", "node"), at + ".")
            for name in ("key_id", "alg"):
                expect(isinstance(e[name], str), f"{at}.{name}", e[name], "a string")
            pub = from_hex(e["public_key"], field=f"{at}.public_key")
            keys.append(TrustedKey(e["key_id"], e["alg"], pub, e["node"]))
        return cls(obj["chain"], suite.name, obj["quorum"], tuple(keys))


def load_trust_bundle(path: str | os.PathLike[str]) -> TrustBundle:
    """Read and validate the trust bundle file at ``path``.

    Raise ``StateError`` if it cannot be read, ``MalformedDocument`` or ``UnknownSuite`` if its
    contents are not a valid bundle.
    """
    target = Path(path)
    where = f"trust bundle {target}"
    raw = read_small(target, "trust bundle")
    return TrustBundle.from_json(parse_json_object(raw, field=where, error=MalformedDocument))
